"""Saliency: where a model looks, by Grad-CAM (captum) on the deepest block whose maps are still a grid of at least
MIN_GRID x MIN_GRID at the model's input size; per-image maps, mean maps per class, overlays and one figure per
experiment."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from facelab.data.batches import Inputs
from facelab.evaluation.forward import forward_logits
from facelab.evaluation.mosaic import mosaic

# captum.attr imports IPython, where installed, for notebook HTML that facelab never shows: 0.6 s of jedi in every
# evaluate process. A None entry makes that import fail, and captum goes on without it, as it does where IPython
# is not installed; the entry is removed at once, so IPython stays importable.
_hide_ipython = "IPython" not in sys.modules
if _hide_ipython:
    # ignore: typeshed types sys.modules' values as modules, without the import system's None marker
    sys.modules["IPython"] = None  # type: ignore[assignment]
try:
    from captum.attr import LayerAttribution, LayerGradCam
finally:
    if _hide_ipython:
        del sys.modules["IPython"]

OVERLAY_ALPHA = 0.45     # heat map's share of an overlay pixel: the face stays readable underneath
COLORMAP = "jet"         # Grad-CAM's customary map (Selvaraju et al. 2017): red where the evidence is
FIGURE_COLUMNS = 8       # overlays per row, as many as a row of the mistake gallery
# The coarsest grid a map may have. At 64 px ResNet18's last block (layer4) is 2 x 2: every map is one of four
# blobs, which cannot tell the eyes from the mouth. 7 x 7 is the grid Grad-CAM was shown on (Selvaraju et al. 2017:
# VGG16's last block at 224 px), where ResNet18 also uses layer4.
MIN_GRID = 7
RESNET_BLOCKS = ("layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class CamLayer:
    """The layer Grad-CAM reads (a submodule name) and the grid of its maps (rows, columns) at an input size."""
    name: str
    grid: tuple[int, int]

    def caption(self) -> str:
        return f"Grad-CAM at {self.name} ({self.grid[0]}x{self.grid[1]} grid)"


def candidate_layers(model: nn.Module, arch: str) -> list[str]:
    """The blocks Grad-CAM may read, shallow to deep. resnet18: its four residual stages. vgg16: the ReLU after
    each convolution in `features`, not the convolution itself: that ReLU is in place, so it overwrites the
    convolution's output tensor after a hook on the convolution has seen it; the ReLU's output is the rectified
    maps, as a ResNet stage's is."""
    if arch == "resnet18":
        return list(RESNET_BLOCKS)
    if arch == "vgg16":
        features = cast(nn.Sequential, model.features)  # torchvision's VGG: an nn.Sequential
        return [f"features.{i + 1}" for i, module in enumerate(features)
                if isinstance(module, nn.Conv2d) and i + 1 < len(features) and isinstance(features[i + 1], nn.ReLU)]
    raise ValueError(f"no Grad-CAM layer for architecture '{arch}'; expected resnet18 or vgg16")


def cam_layer(model: nn.Module, arch: str, size: int) -> CamLayer:
    """The deepest candidate layer whose maps are at least MIN_GRID x MIN_GRID for size x size inputs (the shallowest
    one when none is: the finest grid there is). Grids are measured by one forward pass of a blank image, so a
    changed stem (models.<recipe>.stem) is measured, not assumed."""
    names = candidate_layers(model, arch)
    grids: dict[str, tuple[int, int]] = {}

    def measure(name: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:  # None: the output is left as it is
            grids[name] = (int(output.shape[-2]), int(output.shape[-1]))
        return hook

    hooks = [model.get_submodule(name).register_forward_hook(measure(name)) for name in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    fine = [name for name in names if min(grids[name]) >= MIN_GRID]
    name = fine[-1] if fine else names[0]
    return CamLayer(name, grids[name])


def target_layer(model: nn.Module, layer: CamLayer) -> nn.Module:
    return model.get_submodule(layer.name)


def network_after(model: nn.Module, arch: str, layer: CamLayer) -> nn.Sequential:
    """Everything the model runs after the layer, sharing its modules: rest(activations) == model(images).
    Grad-CAM's weights are the gradients of a class score with respect to those activations, so this part
    alone decides them, and the activations can come from a pass the caller made anyway (evaluate's)."""
    if arch == "resnet18":
        later = RESNET_BLOCKS[RESNET_BLOCKS.index(layer.name) + 1:]
        return nn.Sequential(*(model.get_submodule(name) for name in later), model.get_submodule("avgpool"),
                             nn.Flatten(1), model.get_submodule("fc"))
    if arch == "vgg16":
        features = cast(nn.Sequential, model.features)  # torchvision's VGG: an nn.Sequential
        after = int(layer.name.split(".")[1]) + 1
        return nn.Sequential(*features[after:], model.get_submodule("avgpool"), nn.Flatten(1),
                             model.get_submodule("classifier"))
    raise ValueError(f"no Grad-CAM layer for architecture '{arch}'; expected resnet18 or vgg16")


@contextmanager
def recording(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collects the layer's output of every forward pass made inside the block, in call order (a test-time
    flip makes two calls per batch). Copies: a later in-place op must not change what was recorded."""
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.detach().clone()))
    try:
        yield seen
    finally:
        hook.remove()


def predict_recording(model: nn.Module, layer: CamLayer, inputs: Inputs, batch_size: int,
                      tta_flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """forward.forward_logits's logits, and the layer's activations of the same pass (for cams_from_activations):
    Grad-CAM then costs no second forward pass. With tta_flip each batch runs twice (the images, then their
    mirrors): the maps are drawn on the images as they are, so only every first call's activations are kept."""
    with recording(target_layer(model, layer)) as seen:
        logits = forward_logits(model, inputs, batch_size, tta_flip)
    kept = seen[0::2] if tta_flip else seen
    return logits, torch.cat(kept) if kept else torch.zeros(0)


def cams(model: nn.Module, arch: str, images: torch.Tensor, targets, batch_size: int) -> np.ndarray:
    """Grad-CAM of each image for its target class, (N, H, W) float32 at the input's size in [0, 1]: see
    cams_from_activations. `images` are normalised NCHW floats (facelab.data.inputs.to_input).

    The forward pass needs no gradient, so a frozen trunk (requires_grad False) is no obstacle: the
    gradient is taken with respect to the recorded activations, never the parameters (no .grad is written)."""
    if images.ndim != 4:
        raise ValueError(f"need (N, C, H, W) images, got shape {tuple(images.shape)}")
    layer = cam_layer(model, arch, images.shape[-1])
    model.eval()
    with torch.no_grad(), recording(target_layer(model, layer)) as seen:
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    activations = torch.cat(seen) if seen else images.new_zeros(0)
    return cams_from_activations(network_after(model, arch, layer), activations, targets,
                                 (images.shape[-2], images.shape[-1]), batch_size)


def cams_from_activations(rest: nn.Sequential, activations: torch.Tensor, targets, size: tuple[int, int],
                          batch_size: int) -> np.ndarray:
    """captum's LayerGradCam on recorded activations (its input to `rest`): per image the
    activation maps weighted by the mean gradient of the target class's score, rectified, resized to `size`
    and scaled by the map's own maximum (all zeros where no part of the image speaks for the class)."""
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    if len(targets) != len(activations):
        raise ValueError(f"{len(activations)} images but {len(targets)} targets")
    if not len(targets):
        return np.zeros((0, *size), dtype=np.float32)
    rest.eval()
    grad_cam = LayerGradCam(rest, rest[0])
    out = []
    for start in range(0, len(activations), batch_size):
        part = slice(start, start + batch_size)
        # relu: Grad-CAM keeps only evidence for the class; negative evidence is another class's map
        attribution = grad_cam.attribute(activations[part], target=targets[part], relu_attributions=True,
                                         attribute_to_layer_input=True)
        out.append(LayerAttribution.interpolate(attribution.detach(), size, "bilinear")[:, 0])
    maps = torch.cat(out).clamp_(min=0)
    peak = maps.flatten(1).amax(1).view(-1, 1, 1)
    return torch.where(peak > 0, maps / peak.clamp(min=1e-12), torch.zeros_like(maps)).numpy().astype(np.float32)


def class_mean_maps(maps: np.ndarray, pixels: np.ndarray, actual, predicted, num_classes: int) -> dict:
    """Per class, over its correctly classified images: the mean Grad-CAM map ("where the model looks for
    'happy'"), the mean image to draw it on, and how many images that is. A class with none right gets an
    all-zero map and a zero count."""
    maps, pixels = np.asarray(maps), np.asarray(pixels)
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    if not len(maps) == len(pixels) == len(actual) == len(predicted):
        raise ValueError(f"maps ({len(maps)}), pixels ({len(pixels)}), actual ({len(actual)}) and predicted "
                         f"({len(predicted)}) must describe the same images")
    mean_maps = np.zeros((num_classes, *maps.shape[1:]), dtype=np.float32)
    mean_images = np.zeros((num_classes, *pixels.shape[1:]), dtype=np.uint8)
    counts = np.zeros(num_classes, dtype=np.int64)
    for c in range(num_classes):
        rows = (actual == c) & (predicted == c)
        counts[c] = rows.sum()
        if counts[c]:
            mean_maps[c] = maps[rows].mean(axis=0)
            mean_images[c] = np.round(pixels[rows].astype(np.float64).mean(axis=0)).astype(np.uint8)
    return {"maps": mean_maps, "images": mean_images, "counts": counts}


def experiment_saliency(rest: nn.Sequential, activations: torch.Tensor, pixels, actual, predicted, gallery,
                        num_classes: int, batch_size: int) -> dict:
    """What one experiment's saliency figure needs, from the Grad-CAM layer's activations of every test image
    (recorded while evaluate predicted them): the class mean maps over the correctly classified images, and
    a map of each gallery image for the class the model predicted (what it saw in its mistake).
    `pixels` are the prepared uint8 (N, H, W, 3) test images; `rest` is network_after(model, arch, layer)."""
    pixels = np.asarray(pixels)
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    gallery = np.asarray(gallery, dtype=np.int64)
    if not len(activations) == len(pixels) == len(actual) == len(predicted):
        raise ValueError(f"activations ({len(activations)}), pixels ({len(pixels)}), actual ({len(actual)}) and "
                         f"predicted ({len(predicted)}) must describe the same test images")
    needed = np.union1d(np.flatnonzero(actual == predicted), gallery)
    maps = np.zeros((len(actual), *pixels.shape[1:3]), dtype=np.float32)
    # correct images: predicted is their class; gallery images: the class the model wrongly chose
    maps[needed] = cams_from_activations(rest, activations[torch.from_numpy(needed)], predicted[needed],
                                         pixels.shape[1:3], batch_size)
    means = class_mean_maps(maps, pixels, actual, predicted, num_classes)
    return {**means, "gallery_maps": maps[gallery], "gallery_images": pixels[gallery]}


def overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The image with the map drawn over it in colour, uint8 (H, W, 3) of the image's size; a smaller map
    (the layer's own resolution) is resized to the image first."""
    import matplotlib  # colormaps only: no pyplot, no backend

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != image.shape[:2]:
        cam = torch.nn.functional.interpolate(torch.from_numpy(cam)[None, None], size=image.shape[:2],
                                              mode="bilinear", align_corners=False)[0, 0].numpy()
    heat = matplotlib.colormaps[COLORMAP](np.clip(cam, 0, 1))[..., :3] * 255
    return np.round((1 - OVERLAY_ALPHA) * image + OVERLAY_ALPHA * heat).astype(np.uint8)


def saliency_figure(saliency: dict, classes, captions, title: str, path: str | Path) -> None:
    """One PNG per experiment: a row of per-class mean maps, each over its class's mean correct image, then
    the gallery images' overlays (`captions`: one per gallery image), FIGURE_COLUMNS to a row."""
    counts = saliency["counts"]
    means = [(overlay(image, cam) if count else np.full_like(image, 255),  # blank: no correct image to average
              f"{name}: mean of {count}\ncorrect" if count else f"{name}:\nnone correct")
             for name, image, cam, count in zip(classes, saliency["images"], saliency["maps"], counts)]
    tiles = [(overlay(image, cam), caption)
             for image, cam, caption in zip(saliency["gallery_images"], saliency["gallery_maps"], captions)]
    rows = [("where it looks\nper class", means)]
    rows += [("mistakes" if start == 0 else "", tiles[start:start + FIGURE_COLUMNS])
             for start in range(0, len(tiles), FIGURE_COLUMNS)]
    mosaic(rows, title, path)
