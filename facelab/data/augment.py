"""Training augmentation on batches already in memory: one epoch's random draws (seeded, on the CPU), applied to whole
batches on the run's device."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch.nn import functional as F

from facelab.params import AUGMENT_OFF, Augment

# Random erasing's rectangle, as torchvision's RandomErasing draws it: 2% to 33% of the image, aspect 0.3 to 3.3.
ERASE_AREA = (0.02, 0.33)
ERASE_LOG_ASPECT = (math.log(0.3), math.log(3.3))
# Random resized crop's aspect ratio range (torchvision's RandomResizedCrop default).
CROP_LOG_ASPECT = (math.log(3 / 4), math.log(4 / 3))


@dataclass(frozen=True)
class Draws:
    """One row per image position of an epoch's shuffled order; None where that augmentation is off."""
    flip: torch.Tensor | None = None      # (n,) bool: mirror left-right
    theta: torch.Tensor | None = None     # (n, 2, 3): output -> input sampling grid (crop, rotation)
    gain: torch.Tensor | None = None      # (n,) brightness factor
    contrast: torch.Tensor | None = None  # (n,) contrast factor around the image's mean grey
    erase: torch.Tensor | None = None     # (n, 4) top, bottom, left, right as fractions; empty rows erase nothing

    def __getitem__(self, part) -> Draws:
        return Draws(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[part]
                        for f in fields(self)})

    def to(self, device: torch.device) -> Draws:
        return Draws(**{f.name: None if getattr(self, f.name) is None
                        else getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    @property
    def pixels(self) -> bool:
        """Whether anything besides the mirror is drawn (then images must be recomputed, not looked up)."""
        return any(getattr(self, name) is not None for name in ("theta", "gain", "contrast", "erase"))


def geometric(augment: Augment) -> bool:
    return tuple(augment.crop_scale) != (1.0, 1.0) or augment.rotation > 0


def beyond_flip(augment: Augment) -> list[str]:
    """The settings that change pixels other than by a mirror (all need the whole network per step)."""
    return [f.name for f in fields(augment)
            if f.name != "hflip" and getattr(augment, f.name) != getattr(AUGMENT_OFF, f.name)]


def draw(augment: Augment, n: int, generator: torch.Generator) -> Draws:
    """The random numbers of one epoch, all drawn at once from `generator` in a fixed order. With only
    hflip on, this draws exactly what the flip-only pipeline drew before the other augmentations existed."""
    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(*shape, generator=generator, dtype=torch.float64)

    flip = torch.rand(n, generator=generator) < 0.5 if augment.hflip else None
    theta = None
    if geometric(augment):
        area = uniform(*augment.crop_scale, n)
        aspect = torch.exp(uniform(*CROP_LOG_ASPECT, n))
        width, height = torch.sqrt(area * aspect).clamp(max=1), torch.sqrt(area / aspect).clamp(max=1)
        cx, cy = uniform(-1, 1, n) * (1 - width), uniform(-1, 1, n) * (1 - height)
        angle = uniform(-augment.rotation, augment.rotation, n) * math.pi / 180
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([width * cos, -height * sin, cx], 1),
                             torch.stack([width * sin, height * cos, cy], 1)], 1).float()
    gain = uniform(1 - augment.brightness, 1 + augment.brightness, n).float() if augment.brightness else None
    contrast = uniform(1 - augment.contrast, 1 + augment.contrast, n).float() if augment.contrast else None
    erase = None
    if augment.erasing:
        on = torch.rand(n, generator=generator, dtype=torch.float64) < augment.erasing
        area = uniform(*ERASE_AREA, n)
        aspect = torch.exp(uniform(*ERASE_LOG_ASPECT, n))
        height, width = torch.sqrt(area * aspect).clamp(max=1), torch.sqrt(area / aspect).clamp(max=1)
        top, left = uniform(0, 1, n) * (1 - height), uniform(0, 1, n) * (1 - width)
        erase = torch.stack([top, top + height * on, left, left + width * on], 1).float()
    return Draws(flip, theta, gain, contrast, erase)


def apply(x: torch.Tensor, draws: Draws, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """x: a batch of float NCHW images in [0, 1]; returns it augmented and normalised with mean/std.

    Geometry is one grid_sample per batch (crop, aspect and rotation in one affine map, reflected at the
    borders); brightness and contrast act on [0, 1] pixels and are clipped there; erasing sets a rectangle
    to the normalised mean (0), as torchvision's RandomErasing does after Normalize."""
    if draws.theta is not None:
        grid = F.affine_grid(draws.theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if draws.flip is not None:
        x = torch.where(draws.flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if draws.gain is not None:
        x = x * draws.gain.view(-1, 1, 1, 1)
    if draws.contrast is not None:
        grey = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - grey) * draws.contrast.view(-1, 1, 1, 1) + grey
    if draws.gain is not None or draws.contrast is not None:
        x = x.clamp(0, 1)
    x = (x - mean) / std
    if draws.erase is not None:
        x = x.masked_fill(erase_mask(draws.erase, x.shape[-2], x.shape[-1]), 0)
    return x


def erase_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(n, 1, H, W) bool: the pixels whose centres fall inside each image's rectangle."""
    ys = (torch.arange(height, device=boxes.device) + 0.5) / height
    xs = (torch.arange(width, device=boxes.device) + 0.5) / width
    inside_y = (ys >= boxes[:, 0:1]) & (ys < boxes[:, 1:2])  # (n, H)
    inside_x = (xs >= boxes[:, 2:3]) & (xs < boxes[:, 3:4])  # (n, W)
    return (inside_y[:, :, None] & inside_x[:, None, :])[:, None]
