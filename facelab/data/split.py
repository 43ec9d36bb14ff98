"""Stratified train/val/test split from a seed, or train/val around a source's own test split: pure, arrays in, index arrays out."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from facelab.params import Split
from facelab.errors import DataError

SPLITS = ("train", "val", "test")


def stratified_split(labels: np.ndarray, fractions: Split, seed: int,
                     class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Return sorted index arrays per split, each class spread over the splits by the fractions."""
    check_splittable(labels, fractions, class_names)
    indices = np.arange(len(labels))
    holdout = fractions.val + fractions.test
    train, rest = train_test_split(indices, test_size=holdout, stratify=labels, random_state=seed)
    val, test = train_test_split(rest, test_size=fractions.test / holdout,
                                 stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def split_with_fixed_test(labels: np.ndarray, is_test: np.ndarray, fractions: Split, seed: int,
                          class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The images marked is_test are the test split; the others go to train and val, stratified, in the
    ratio fractions.train : fractions.val (fractions.test is not used)."""
    check_fixed_test(labels, is_test, fractions, class_names)
    rest = np.flatnonzero(~is_test)
    val_share = fractions.val / (fractions.train + fractions.val)
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.flatnonzero(is_test)}


def check_splittable(labels: np.ndarray, fractions: Split, class_names: tuple[str, ...]) -> None:
    """Each class needs enough images that every split gets at least one of it."""
    smallest = min(fractions.train, fractions.val, fractions.test)
    needed = max(3, int(np.ceil(1 / smallest)))
    check_counts(labels, class_names, needed, "to split into train/val/test",
                 f"each class needs at least {needed} with these split fractions")


def check_fixed_test(labels: np.ndarray, is_test: np.ndarray, fractions: Split,
                     class_names: tuple[str, ...]) -> None:
    """Each class needs a test image in the release, and enough other images for train and val."""
    check_counts(labels[is_test], class_names, 1, "in the release's own test split",
                 "each class needs at least 1 test image")
    val_share = fractions.val / (fractions.train + fractions.val)
    needed = max(2, int(np.ceil(1 / min(val_share, 1 - val_share))))
    check_counts(labels[~is_test], class_names, needed, "outside the release's test split to split into train/val",
                 f"each class needs at least {needed} with these split fractions")


def check_counts(labels: np.ndarray, class_names: tuple[str, ...], needed: int, what: str, rule: str) -> None:
    counts = np.bincount(labels, minlength=len(class_names))
    short = [f"{name}: {count}" for name, count in zip(class_names, counts) if count < needed]
    if short:
        every = ", ".join(f"{name}: {count}" for name, count in zip(class_names, counts))
        raise DataError(f"too few images {what}: {', '.join(short)} ({rule}; images per class after "
                        f"removing unreadable files and duplicates: {every}); add images or change "
                        f"data.<task>.split")
