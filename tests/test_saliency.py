"""Grad-CAM saliency on real torchvision models: the maps against Grad-CAM's definition, frozen trunks, class mean
maps, overlays and the figure's pixels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facelab.data.batches import to_input
from facelab.evaluation.saliency import (
    CamLayer,
    cam_layer,
    cams,
    class_mean_maps,
    experiment_saliency,
    network_after,
    overlay,
    recording,
    saliency_figure,
    target_layer,
)
from facelab.models import build_model
from facelab.params import parse_recipe
from tests.conftest import tiny_raw_params


def recipe(name: str, **changes):
    """A recipe as params.yaml writes it, with random initial weights (no ImageNet file needed)."""
    return parse_recipe({**tiny_raw_params()["models"][name], "weights": "none", **changes})


def pixels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_model(recipe("resnet18_scratch"), 3).eval()


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(1)
    return build_model(recipe("vgg16_finetune"), 2).eval()


def test_network_after_the_layer_gives_the_models_logits(resnet, vgg):
    for model, arch, names in ((resnet, "resnet18", ("layer1", "layer2", "layer4")),
                               (vgg, "vgg16", ("features.15", "features.29"))):
        x = to_input(pixels(4, 48))
        for layer in [cam_layer(model, arch, 48)] + [CamLayer(name, (0, 0)) for name in names]:
            with torch.no_grad(), recording(target_layer(model, layer)) as seen:
                logits = model(x)
            with torch.no_grad():
                assert torch.allclose(network_after(model, arch, layer)(torch.cat(seen)), logits, atol=1e-5)


@pytest.mark.parametrize("arch, size, name, grid", [
    ("resnet18", 64, "layer2", (8, 8)),  # layer4 is 2 x 2 and layer3 4 x 4 at 64 px
    ("resnet18", 224, "layer4", (7, 7)),  # ImageNet's size: the last block, as Grad-CAM is usually shown
    ("resnet18", 16, "layer1", (4, 4)),  # no block reaches 7 x 7: the finest grid there is
    ("vgg16", 64, "features.22", (8, 8)),  # the ReLU after conv4_3, before the fourth max-pool
    ("vgg16", 224, "features.29", (14, 14)),  # the ReLU after the last convolution
])
def test_the_layer_is_the_deepest_with_a_grid_of_at_least_7_by_7(resnet, vgg, arch, size, name, grid):
    model = resnet if arch == "resnet18" else vgg
    layer = cam_layer(model, arch, size)
    assert (layer.name, layer.grid) == (name, grid)
    assert layer.caption() == f"Grad-CAM at {name} ({grid[0]}x{grid[1]} grid)"
    assert isinstance(target_layer(model, layer), torch.nn.ReLU if arch == "vgg16" else torch.nn.Sequential)


@pytest.mark.e2e  # trains a ResNet18 for a few epochs
def test_a_model_whose_class_is_one_corner_looks_at_that_corner():
    """Class 1: a bright 12 x 12 patch at rows and columns 10-21 of noise; class 0: noise alone. After a few
    epochs the model tells them apart, and its Grad-CAM map for class 1 is hottest on the patch. A 2 x 2 grid
    (layer4 at 64 px) could only light a whole 32 x 32 quadrant: the patch would be no hotter than the rest of it."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 120, (160, 64, 64, 3), dtype=torch.uint8, generator=generator)
    labels = torch.arange(160) % 2
    images[labels == 1, 10:22, 10:22] = 255
    torch.manual_seed(0)
    model = build_model(recipe("resnet18_scratch"), 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = to_input(images)
    for _ in range(3):
        for start in range(0, 160, 32):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[start:start + 32]), labels[start:start + 32]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == labels).float().mean() > 0.9
    maps = cams(model, "resnet18", x[labels == 1][:16], np.ones(16, dtype=int), batch_size=16).mean(0)
    patch = np.zeros((64, 64), bool)
    patch[10:22, 10:22] = True
    quadrant = np.zeros((64, 64), bool)
    quadrant[:32, :32] = True
    assert np.unravel_index(maps.argmax(), maps.shape)[0] < 32 and np.unravel_index(maps.argmax(), maps.shape)[1] < 32
    assert maps[patch].mean() > 1.3 * maps[quadrant & ~patch].mean()  # layer2: 1.62; layer3: 1.03, layer4: 1.00


def test_cams_follow_grad_cams_definition(resnet):
    """After layer4 (the layer at 224 px) ResNet only averages and applies fc, so the gradient of class c's score
    with respect to channel k is fc.weight[c, k] / (h * w) everywhere: Grad-CAM is relu(sum_k fc.weight[c, k] A_k),
    resized."""
    x = to_input(pixels(5, 224))
    targets = np.array([0, 1, 2, 0, 1])
    with torch.no_grad(), recording(resnet.layer4) as seen:
        resnet(x)
    activations = torch.cat(seen)
    weights = resnet.fc.weight.detach()[torch.from_numpy(targets)]
    expected = torch.relu(torch.einsum("nk,nkhw->nhw", weights, activations))
    expected = torch.nn.functional.interpolate(expected[:, None], size=(224, 224), mode="bilinear",
                                               align_corners=False)[:, 0].clamp(min=0)
    expected = expected / expected.flatten(1).amax(1).view(-1, 1, 1)
    maps = cams(resnet, "resnet18", x, targets, batch_size=2)
    assert maps.shape == (5, 224, 224) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, expected.numpy(), atol=1e-5)


def test_maps_of_two_classes_differ_on_the_same_images(resnet):
    x = to_input(pixels(6, 64, seed=2))
    first = cams(resnet, "resnet18", x, np.zeros(6, dtype=int), batch_size=6)
    second = cams(resnet, "resnet18", x, np.ones(6, dtype=int), batch_size=6)
    assert np.abs(first - second).mean() > 0.05


def test_cams_work_on_vgg16_with_frozen_features_and_leave_its_parameters_alone(vgg):
    model = vgg  # the recipe's model (2 classes): features frozen, as the recipe trains it
    assert not any(p.requires_grad for p in model.features.parameters())
    layer = target_layer(model, cam_layer(model, "vgg16", 48))
    assert isinstance(layer, torch.nn.ReLU) and model.features[list(model.features).index(layer) - 1].out_channels
    maps = cams(model, "vgg16", to_input(pixels(4, 48, seed=4)), np.array([0, 1, 1, 0]), batch_size=4)
    assert maps.shape == (4, 48, 48)
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(m.max() == pytest.approx(1.0) for m in maps if m.max() > 0) and maps.std() > 0.05
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.grad is None for p in model.parameters())  # the gradient went to the activations only


def test_cam_layer_refuses_an_unknown_architecture(resnet):
    with pytest.raises(ValueError, match="resnet18 or vgg16"):
        cam_layer(resnet, "alexnet", 64)


def test_class_mean_maps_average_only_the_correct_images_of_each_class():
    maps = np.zeros((5, 4, 4), dtype=np.float32)
    maps[0, :, :2] = maps[1, :, :2] = 1.0  # class 0, right: looks left
    maps[2, :, 2:] = 1.0                   # class 1, right: looks right
    maps[3] = 0.5                          # class 1 but predicted 0: a mistake, left out
    maps[4] = 0.25                         # class 1, right
    image = np.full((5, 4, 4, 3), 100, dtype=np.uint8)
    image[4] = 200
    means = class_mean_maps(maps, image, np.array([0, 0, 1, 1, 1]), np.array([0, 0, 1, 0, 1]), num_classes=3)
    assert list(means["counts"]) == [2, 2, 0]
    np.testing.assert_allclose(means["maps"][0], maps[0])
    np.testing.assert_allclose(means["maps"][1], (maps[2] + maps[4]) / 2)
    assert not means["maps"][2].any()
    assert means["images"][1].max() == 150 and means["images"][0].max() == 100


def test_overlay_keeps_the_image_size_and_shows_the_map():
    image = np.asarray(pixels(1, 48, seed=5)[0])
    hot, cold = np.ones((3, 3)), np.zeros((3, 3))  # a layer-sized map is resized to the image
    warm, cool = overlay(image, hot), overlay(image, cold)
    assert warm.shape == cool.shape == image.shape and warm.dtype == np.uint8
    # jet: 1 is dark red (0.5, 0, 0), 0 dark blue (0, 0, 0.5): red minus blue moves by 0.45 * 127 = 57 either way
    red_minus_blue = lambda x: x[..., 0].astype(float).mean() - x[..., 2].astype(float).mean()  # noqa: E731
    assert red_minus_blue(warm) == pytest.approx(0.55 * red_minus_blue(image) + 57, abs=1.5)
    assert red_minus_blue(cool) == pytest.approx(0.55 * red_minus_blue(image) - 57, abs=1.5)
    half = np.zeros((48, 48), dtype=np.float32)
    half[:, :24] = 1
    split = overlay(image, half).astype(int)
    assert np.array_equal(split[:, :24], warm[:, :24]) and np.array_equal(split[:, 24:], cool[:, 24:])


def test_saliency_figure_draws_the_class_maps_and_the_gallery_overlays(tmp_path, resnet):
    images = pixels(12, 64, seed=6)
    with torch.no_grad(), recording(resnet.layer4) as seen:
        predicted = resnet(to_input(images)).argmax(1).numpy()
    actual = predicted.copy()
    actual[:3] = (predicted[:3] + 1) % 3  # three mistakes, shown in the gallery row
    saliency = experiment_saliency(network_after(resnet, "resnet18", CamLayer("layer4", (2, 2))), torch.cat(seen),
                                   images.numpy(), actual,
                                   predicted, [0, 1, 2], num_classes=3, batch_size=4)
    assert saliency["gallery_maps"].shape == (3, 64, 64) and saliency["counts"].sum() == 9
    path = tmp_path / "saliency.png"
    saliency_figure(saliency, ["angry", "happy", "sad"], ["a.png", "b.png", "c.png"], "emotion / resnet18", path)
    figure = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert figure.shape[0] > 2 * 120 and figure.shape[1] > 3 * 120  # two rows, three tiles of ~120 px
    # jet's saturated reds and blues come only from overlays: the picture is not blank
    assert ((figure[..., 0] > 150) & (figure[..., 2] < 90)).sum() > 1000


@pytest.mark.e2e  # starts a Python process: the import must be the first in its process
def test_captum_is_imported_without_ipython_which_stays_importable():
    import subprocess
    import sys
    pytest.importorskip("IPython")  # where IPython is not installed, captum never imports it anyway
    code = ("import sys, facelab.evaluation.saliency; assert 'IPython' not in sys.modules, 'IPython was imported'; "
            "import IPython.display; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
