import dataclasses

import pytest
import torch
from torch import nn
from torchvision.models import VGG, ResNet

from facelab.errors import WeightsUnavailable
from facelab.models import build_model, trained_model, weights_file


@pytest.mark.e2e  # the stand-in ImageNet files (VGG16's is 528 MB) are written once per run: about 4 s
def test_pretrained_recipes_load_the_cached_imagenet_file(tiny_params, torch_home):
    cached = torch.load(weights_file("resnet18"), weights_only=True)
    model = build_model(tiny_params.models["resnet18_pretrained"], num_classes=3)
    assert isinstance(model, ResNet)
    assert weights_file("resnet18").parent == torch_home / "hub" / "checkpoints"
    assert torch.equal(model.conv1.weight, cached["conv1.weight"])
    assert model.fc.out_features == 3
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.e2e  # reads the 528 MB stand-in VGG16 file
def test_vgg16_finetune_freezes_features_and_has_a_new_head(tiny_params, torch_home):
    model = build_model(tiny_params.models["vgg16_finetune"], num_classes=2)
    cached = torch.load(weights_file("vgg16"), weights_only=True)
    assert isinstance(model, VGG)
    first_conv, hidden, head = model.features[0], model.classifier[0], model.classifier[-1]
    assert isinstance(first_conv, nn.Conv2d) and isinstance(hidden, nn.Linear) and isinstance(head, nn.Linear)
    assert torch.equal(first_conv.weight, cached["features.0.weight"])
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert hidden.out_features == 32 and head.out_features == 2
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


def test_scratch_recipe_needs_no_weights_file(tiny_params, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = build_model(tiny_params.models["resnet18_scratch"], num_classes=3)
    assert isinstance(model, ResNet)
    assert model.fc.out_features == 3 and not (tmp_path / "hub").exists()


def test_missing_weights_name_the_file_the_folder_and_the_way_out(tiny_params, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # no network here, and none wanted in tests: an unreachable URL makes the download fail fast
    monkeypatch.setattr("facelab.models.IMAGENET_WEIGHTS", {
        "resnet18": type("W", (), {"url": "http://127.0.0.1:9/resnet18-f37072fd.pth"})()})
    with pytest.raises(WeightsUnavailable) as error:
        build_model(tiny_params.models["resnet18_pretrained"], num_classes=3)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "-S models.resnet18_pretrained.weights=none" in message
    assert not list((tmp_path / "hub" / "checkpoints").glob("*"))  # no partial file left


def test_trained_model_holds_the_state_dict_every_key_and_shape(tiny_params):
    # random initial weights: what is tested is that every tensor of a state dict lands in the model built on meta
    recipe = dataclasses.replace(tiny_params.models["vgg16_finetune"], weights="none")
    trained = build_model(recipe, num_classes=2).state_dict()
    model = trained_model(recipe, 2, trained)
    tensors = list(model.parameters()) + list(model.buffers())
    assert not any(t.is_meta for t in tensors)  # nothing left unassigned from the meta build
    assert all(torch.equal(model.state_dict()[key], value) for key, value in trained.items())
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    del trained["classifier.3.bias"]
    with pytest.raises(RuntimeError, match="classifier.3.bias"):
        trained_model(recipe, 2, trained)


def test_a_weights_files_sha256_is_remembered_beside_it_while_its_size_and_time_are_unchanged(tmp_path):
    import hashlib
    import json
    import os

    from facelab.models import file_sha256

    weights = tmp_path / "resnet18-f37072fd.pth"
    weights.write_bytes(b"stand-in weights")
    assert file_sha256(weights) == hashlib.sha256(b"stand-in weights").hexdigest()
    record = tmp_path / "resnet18-f37072fd.pth.sha256"
    remembered = json.loads(record.read_text())
    record.write_text(json.dumps({**remembered, "sha256": "remembered"}))
    assert file_sha256(weights) == "remembered"  # not read again
    weights.write_bytes(b"other weights!!")  # another size: hashed again
    assert file_sha256(weights) == hashlib.sha256(b"other weights!!").hexdigest()
    stat = weights.stat()
    weights.write_bytes(b"other weights??")  # the same size, another modification time: hashed again
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert file_sha256(weights) == hashlib.sha256(b"other weights??").hexdigest()
