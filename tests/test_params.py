import pytest

from stages.params import ParamsError, RECIPES, TASKS, load_params, parse_params
from tests.conftest import ROOT


def test_repository_params_load_with_all_tasks_and_recipes():
    params = load_params(ROOT / "params.yaml")
    assert set(params.data) == set(TASKS) and set(params.models) == set(RECIPES)
    assert params.models["vgg16_finetune"].frozen == ("features",)
    assert params.models["resnet18_scratch"].weights == "none"
    assert params.data["face"].classes == ("other", "target")


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["models"]["resnet18_scratch"].update(learning_rat=0.1), "unknown key 'learning_rat'; did you mean 'lr'"),
    (lambda r: r["models"]["resnet18_scratch"].update(arch="resnet50"), "models.resnet18_scratch.arch: 'resnet50' is not one of"),
    (lambda r: r["data"]["face"]["split"].update(test=1.5), r"data.face.split.test: 1.5 must be inside \(0, 1\)"),
    (lambda r: r["data"]["face"]["split"].update(test=0.2), "must add up to 1"),
    (lambda r: r["data"]["emotion"].update(img_size=16), "data.emotion.img_size: 16 is under 32"),
    (lambda r: r["models"]["vgg16_finetune"].update(epochs="ten"), "models.vgg16_finetune.epochs: expected an integer"),
    (lambda r: r["wandb"].update(mode="cloud"), "wandb.mode: 'cloud' is not one of"),
    (lambda r: r["data"]["face"].update(source="folder", path=None), "source 'folder' needs a path"),
    (lambda r: r["data"]["face"].update(classes=["me", "others"]), "generated face data has classes"),
    (lambda r: r["models"].pop("resnet18_pretrained"), r"models: missing key\(s\) \['resnet18_pretrained'\]"),
])
def test_bad_params_fail_with_the_key_named(tiny_raw, edit, message):
    edit(tiny_raw)
    with pytest.raises(ParamsError, match=message):
        parse_params(tiny_raw)
