"""Prepared arrays in, model-ready batches out: loading a split, seeded shuffling, flip augmentation, normalisation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from stages.cli import UserError
from stages.files import read_json
from stages.recipes import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class SplitData:
    images: torch.Tensor  # (N, H, W, 3) uint8
    labels: torch.Tensor  # (N,) int64


def load_prepared(folder: str | Path) -> tuple[dict[str, SplitData], tuple[str, ...]]:
    """Read data/prepared/<task>/: the three splits and the class names."""
    folder = Path(folder)
    if not (folder / "classes.json").is_file():
        raise UserError(f"'{folder}' holds no prepared data; run `dvc repro prepare` first")
    splits = {split: SplitData(torch.from_numpy(np.load(folder / f"{split}_x.npy")),
                               torch.from_numpy(np.load(folder / f"{split}_y.npy")))
              for split in ("train", "val", "test")}
    return splits, tuple(read_json(folder / "classes.json")["classes"])


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW normalised with the ImageNet statistics."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class Inputs:
    """What the trainable part of a model sees for one split: normalised images, or the output of a
    frozen trunk computed once (for each flip) and reused every epoch."""

    def __init__(self, data: SplitData, trunk: nn.Module | None, batch_size: int, flips: bool):
        self.data = data
        self.cache = None
        if trunk is not None:
            self.cache = {False: encode(trunk, data.images, batch_size, flip=False)}
            if flips:
                self.cache[True] = encode(trunk, data.images, batch_size, flip=True)

    def __len__(self) -> int:
        return len(self.data.labels)

    def batch(self, index: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs for these image indices; `flip` marks the ones to mirror left-right."""
        if self.cache is None:
            x = to_input(self.data.images[index])
            if flip is not None:
                x[flip] = x[flip].flip(-1)
            return x
        x = self.cache[False][index]
        if flip is not None:
            x = torch.where(flip.view(-1, 1, 1, 1), self.cache[True][index], x)
        return x


@torch.no_grad()
def encode(trunk: nn.Module, images: torch.Tensor, batch_size: int, flip: bool) -> torch.Tensor:
    trunk.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size])
        outputs.append(trunk(x.flip(-1) if flip else x))
    return torch.cat(outputs)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator,
                     hflip: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """One epoch of (indices, flip mask) in a seeded random order; each image flipped with p=1/2."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        flip = torch.rand(len(index), generator=generator) < 0.5 if hflip else None
        yield index, flip


def ordered_batches(n: int, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, n, batch_size):
        yield torch.arange(start, min(start + batch_size, n))
