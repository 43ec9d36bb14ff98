"""Recipes: the one factory that builds every model from its recipe (arch, weights, frozen layers, head)."""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models

from facelab.errors import ParamsError, WeightsUnavailable
from facelab.files import write_text
from facelab.params import Recipe

# torchvision's weights API: the URL names the file that torch.hub caches under $TORCH_HOME/hub/checkpoints/.
IMAGENET_WEIGHTS = {
    "vgg16": models.VGG16_Weights.IMAGENET1K_V1,
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
}
# The normalisation the ImageNet weights were trained with (torchvision's transforms for them);
# scratch models use it too so every recipe sees the same input scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)



def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's model for training: ImageNet weights if asked, a new head, frozen layers."""
    if recipe.weights == "imagenet":
        model = with_weights(lambda: models.get_model(recipe.arch, weights=None), imagenet_state_dict(recipe.arch))
    else:
        model = models.get_model(recipe.arch, weights=None)
    replace_stem(model, recipe)
    replace_head(model, recipe, num_classes)
    freeze(model, recipe.frozen)
    return model


def architecture(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's network with its new head, randomly initialised (build it under torch.device("meta")
    to get the shapes alone)."""
    model = models.get_model(recipe.arch, weights=None)
    replace_stem(model, recipe)
    replace_head(model, recipe, num_classes)
    return model


def trained_model(recipe: Recipe, num_classes: int, state_dict: dict) -> nn.Module:
    """The recipe's architecture holding a trained state dict (its tensors, not copies), for
    evaluation: every key and shape must match."""
    return with_weights(lambda: architecture(recipe, num_classes), state_dict)


def with_weights(architecture, state_dict: dict) -> nn.Module:
    """architecture() holding `state_dict`, built without the random initialisation those weights
    replace (VGG16's alone took 2.8 s on 2 CPU cores): on the meta device, then assigned."""
    with torch.device("meta"):
        model = architecture()
    model.load_state_dict(state_dict, assign=True)  # strict: a missing key raises, naming it
    return model


def replace_stem(model: nn.Module, recipe: Recipe) -> None:
    """models.<recipe>.stem small: ResNet's first convolution becomes 3x3 with stride 1 (newly initialised, as
    torchvision initialises convolutions) and its max-pool goes, so a small image keeps its resolution into layer1
    (at 64 px: 64 x 64 instead of 16 x 16; about 16 times the computation after the stem)."""
    if recipe.stem == "imagenet":
        return
    conv = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # torchvision's ResNet init
    model.conv1 = conv
    model.maxpool = nn.Identity()


def replace_head(model: nn.Module, recipe: Recipe, num_classes: int) -> None:
    """A new, randomly initialised head for our classes; the rest keeps its weights.

    head_hidden 0 replaces only the last layer; otherwise the whole classifier becomes
    Linear -> ReLU -> Dropout -> Linear, the usual small head for transfer learning on few images."""
    attr = "classifier" if recipe.arch == "vgg16" else "fc"
    old = model.get_submodule(attr)
    first, last = (old[0], old[-1]) if isinstance(old, nn.Sequential) else (old, old)
    # torchvision's heads: ResNet's fc is a Linear, VGG's classifier a Sequential that starts and ends with one
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear), f"unexpected {attr}: {old}"
    if recipe.head_hidden == 0:
        if isinstance(old, nn.Sequential):
            old[-1] = nn.Linear(last.in_features, num_classes)
        else:
            setattr(model, attr, nn.Linear(first.in_features, num_classes))
        return
    setattr(model, attr, nn.Sequential(
        nn.Linear(first.in_features, recipe.head_hidden), nn.ReLU(inplace=True),
        nn.Dropout(recipe.dropout), nn.Linear(recipe.head_hidden, num_classes)))


def frozen_trunk(model: nn.Module, recipe: Recipe) -> tuple[nn.Module | None, nn.Module]:
    """Split off a frozen, deterministic prefix whose output can be computed once and reused.

    Only VGG16's `features` qualifies (no BatchNorm, no Dropout): caching its output gives the
    same numbers as recomputing it every epoch. Anything else trains end to end."""
    if recipe.arch == "vgg16" and "features" in recipe.frozen:
        head = nn.Sequential(model.get_submodule("avgpool"), nn.Flatten(1), model.get_submodule("classifier"))
        return model.get_submodule("features"), head
    return None, model


def freeze(model: nn.Module, frozen: tuple[str, ...]) -> None:
    modules = dict(model.named_modules())
    for name in frozen:
        if name not in modules or not name:
            top = [n for n in modules if n and "." not in n]
            raise ParamsError(f"models.<recipe>.frozen: '{name}' is not a module of this model; "
                              f"top-level modules are {top}")
        for parameter in modules[name].parameters():
            parameter.requires_grad_(False)


def frozen_modules(model: nn.Module, frozen: tuple[str, ...]) -> list[nn.Module]:
    """Modules to keep in eval mode while training, so frozen BatchNorm/Dropout stay fixed."""
    modules = dict(model.named_modules())
    return [modules[name] for name in frozen]


def weights_file(arch: str) -> Path:
    """Where torch.hub keeps the ImageNet file for `arch` ($TORCH_HOME/hub/checkpoints/<name>)."""
    name = Path(urlparse(IMAGENET_WEIGHTS[arch].url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def imagenet_state_dict(arch: str) -> dict:
    """Load the cached ImageNet state dict (downloading it first if needed), tensors only."""
    return torch.load(ensure_imagenet_weights(arch), map_location="cpu", weights_only=True)


def hash_prefix(path: Path) -> str:
    """The hex digits in a torchvision weights file's name (<name>-<8 hex>.pth): the start of its sha256."""
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None:
        raise ValueError(f"'{path.name}' has no hash prefix: torchvision names its weights <name>-<8 hex digits>.pth")
    return match.group(1)


def ensure_imagenet_weights(arch: str) -> Path:
    """The cached ImageNet file for `arch`; downloaded (hash-checked, as torch.hub does) if missing."""
    weights = IMAGENET_WEIGHTS[arch]
    path = weights_file(arch)
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, str(path), hash_prefix(path), progress=False)
        return path
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash is a RuntimeError
        raise WeightsUnavailable(
            f"ImageNet weights for {arch} are not available: '{path.name}' is not in '{path.parent}' "
            f"and downloading {weights.url} failed ({error}). Either copy that file into "
            f"'{path.parent}' (set TORCH_HOME to use another cache), or run without pretrained "
            f"weights: dvc exp run -S models.vgg16_finetune.weights=none "
            f"-S models.resnet18_pretrained.weights=none") from error


def weights_provenance(recipe: Recipe) -> dict:
    """Where a recipe's starting weights came from: for ImageNet weights the cached file's name, its sha256
    and whether it is the file torchvision publishes (its sha256 starts with the 8 hex digits in the file
    name, the check torch.hub makes on download). A file copied in by hand, or a stand-in, is unverified:
    it still trains, but its results do not measure ImageNet pretraining."""
    if recipe.weights != "imagenet":
        return {"weights": recipe.weights, "file": None, "sha256": None, "verified": None}
    path = ensure_imagenet_weights(recipe.arch)
    digest = file_sha256(path)
    return {"weights": recipe.weights, "file": path.name, "sha256": digest,
            "verified": digest.startswith(hash_prefix(path))}


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered beside it (<file>.sha256: size, modification time and digest) and reused while
    its size and modification time (in ns) are unchanged: VGG16's 528 MB takes 1.85 s to hash, in every run. Where
    the folder is read-only it is computed each time."""
    record = path.with_name(path.name + ".sha256")
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        known = json.loads(record.read_text())
        if {k: known.get(k) for k in key} == key and isinstance(known.get("sha256"), str):
            return known["sha256"]
    except (OSError, ValueError):
        pass  # none yet, or unreadable: computed below
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    with contextlib.suppress(OSError):  # a read-only cache folder: nothing remembered
        write_text(record, json.dumps({**key, "sha256": digest.hexdigest()}))
    return digest.hexdigest()
