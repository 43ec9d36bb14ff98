"""Prepared arrays in, model-ready batches out: loading a split, seeded shuffling, augmentation, normalisation."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from facelab import paths
from facelab.accel import CPU, Accel
from facelab.data import augment as augmentation
from facelab.data.augment import Draws
from facelab.data.inputs import imagenet_stats, to_input
from facelab.data.split import split_prepared
from facelab.data.trunks import trunk_outputs
from facelab.errors import UserError
from facelab.files import read_json
from facelab.modelcard import DataSplit
from facelab.names import SPLITS
from facelab.params import Augment, Split


@dataclass(frozen=True)
class SplitData:
    images: torch.Tensor  # (N, H, W, 3) uint8
    labels: torch.Tensor  # (N,) int64
    rows: np.ndarray | None = None  # the images' rows in the prepared folder they came from (None: not from one)
    folder: Path | None = None  # that folder

    def to(self, device: torch.device) -> SplitData:
        """The split moved once, as uint8 (4x smaller than floats), e.g. to the GPU."""
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device))


def load_prepared(folder: str | Path, seed: int, fractions: Split,
                  leave_out: Sequence[int] = ()) -> tuple[dict[str, SplitData], tuple[str, ...]]:
    """Read data/prepared/<task>/ split by `seed` and data.<task>.split (prepared_split): the three splits and the
    class names. leave_out: prepared rows taken out of train and val after the split is drawn (the audit's
    flagged images under data.<task>.label_issues: drop, facelab.data.label_drop); the test split stays whole and
    the split of every other image is the same as without them."""
    folder = Path(folder)
    rows = prepared_split(folder, seed, fractions, leave_out)
    images, labels = np.load(paths.prepared_images(folder), mmap_mode="r"), np.load(paths.prepared_labels(folder))
    splits = {split: SplitData(torch.from_numpy(np.ascontiguousarray(images[rows[split]])),
                               torch.from_numpy(labels[rows[split]]), rows[split], folder)
              for split in SPLITS}
    return splits, prepared_classes(folder)


def left_out_of_training(splits: dict[str, SplitData], rows: Sequence[int]) -> list[int]:
    """Of the rows load_prepared was asked to leave out, those it took out of train and val: every row but the test
    split's (which it keeps), ascending."""
    test = splits["test"].rows
    return np.setdiff1d(np.asarray(rows, np.int64), test if test is not None else np.zeros(0, np.int64)).tolist()


def prepared_split(folder: str | Path, seed: int, fractions: Split,
                   leave_out: Sequence[int] = ()) -> dict[str, np.ndarray]:
    """The prepared folder's rows in each split for one run: stratified by the fractions (or around the source's
    own test split), near-duplicate groups never cut (facelab.data.split.split_prepared). Every recipe of a seed
    gets the same split, so recipes stay paired on the same test images. leave_out: rows then taken out of train
    and val (never test), every other row staying where it was."""
    folder = Path(folder)
    classes = prepared_classes(folder)
    own_test = paths.prepared_own_test(folder)
    rows = split_prepared(np.load(paths.prepared_labels(folder)), np.load(paths.prepared_groups(folder)),
                          np.load(own_test) if own_test.is_file() else None, fractions, seed, classes)
    if not len(leave_out):
        return rows
    out = np.asarray(leave_out, np.int64)
    return {split: index if split == "test" else index[~np.isin(index, out)] for split, index in rows.items()}


def data_split(splits: dict[str, SplitData], fractions: Split, classes: tuple[str, ...],
               left_out: Sequence[int] = (), label_issues: str | None = None) -> DataSplit:
    """A model card's record of a run's split: the shares asked for, and the images each split got per class;
    left_out: the prepared rows load_prepared was asked to leave out of train and val (label_issues: the
    data.<task>.label_issues of the audit that named them; None: no audit record)."""
    counts = {name: {label: int((data.labels == k).sum()) for k, label in enumerate(classes)}
              for name, data in splits.items()}
    return DataSplit(fractions=dataclasses.asdict(fractions), counts=counts, label_issues=label_issues,
                     left_out=sorted(int(row) for row in left_out))


def split_files(folder: str | Path, rows: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """The file names of each split's images (prepared_split's rows), in the split arrays' row order."""
    files = np.asarray(prepared_files(folder))
    return {split: files[index].tolist() for split, index in rows.items()}


def prepared_files(folder: str | Path) -> list[str]:
    """The prepared folder's file names (its manifest), one per row of its arrays, in row order."""
    return pd.read_csv(paths.prepared_manifest(Path(folder)))["file"].astype(str).tolist()


def prepared_classes(folder: Path) -> tuple[str, ...]:
    if not paths.prepared_classes(folder).is_file():
        raise UserError(f"'{folder}' holds no prepared data; run `dvc repro prepare` first")
    return tuple(read_json(paths.prepared_classes(folder))["classes"])


class Inputs:
    """What the trainable part of a model sees for one split: normalised images, or the output of a
    frozen trunk computed once (for each flip) and reused every epoch. Everything lives on
    accel.device: batches are gathered, flipped and normalised there, whole batches at a time."""

    def __init__(self, data: SplitData, trunk: nn.Module | None, batch_size: int, flips: bool,
                 accel: Accel = CPU, memo: Path | None = None):
        """memo: where the trunk's outputs per prepared image are shared between runs (facelab.data.trunks)."""
        self.data = data.to(accel.device)
        self.accel = accel
        self.cache = None
        if trunk is not None:
            self.cache = {flip: trunk_outputs(trunk, self.data.images, batch_size, flip, accel, data.rows,
                                              data.folder, memo)
                          for flip in ((False, True) if flips else (False,))}

    def __len__(self) -> int:
        return len(self.data.labels)

    def batch(self, index: torch.Tensor, draws: Draws | None = None) -> torch.Tensor:
        """Inputs for these image indices, augmented by `draws` (one row per index; None: as they are)."""
        device = self.accel.device
        index = index.to(device, non_blocking=True)
        draws = draws.to(device) if draws is not None else Draws()
        flip = draws.flip
        if self.cache is None:
            if draws.pixels:
                x = self.data.images[index].permute(0, 3, 1, 2).float().div_(255)
                x = augmentation.apply(x, draws, *imagenet_stats(device))
                return x.contiguous(memory_format=self.accel.memory_format)
            x = to_input(self.data.images[index], self.accel.memory_format)
            if flip is not None:
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)  # keeps to_input's layout
            return x
        if draws.pixels:
            raise ValueError("a cached trunk's output can only be mirrored; draw only flips for it")  # a bug
        x = self.cache[False][index]
        if flip is not None:
            x = torch.where(flip.view(-1, 1, 1, 1), self.cache[True][index], x)
        return x

    def labels(self, index: torch.Tensor) -> torch.Tensor:
        return self.data.labels[index.to(self.accel.device, non_blocking=True)]


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, augment: Augment,
                     device: torch.device = CPU.device) -> Iterator[tuple[torch.Tensor, Draws]]:
    """One epoch of (indices, augmentation draws) in a seeded random order.

    The whole epoch is drawn at once on the CPU (the same numbers on every device) and moved
    to `device` in one copy: on a GPU, a copy per batch from pageable memory can make the CPU wait
    for the kernels already queued."""
    order = torch.randperm(n, generator=generator).to(device)
    draws = augmentation.draw(augment, n, generator).to(device)
    for start in range(0, n, batch_size):
        part = slice(start, start + batch_size)
        yield order[part], draws[part]


def ordered_batches(n: int, batch_size: int, device: torch.device = CPU.device) -> Iterator[torch.Tensor]:
    for start in range(0, n, batch_size):
        yield torch.arange(start, min(start + batch_size, n), device=device)
