"""Stratified train/val/test split from a seed: pure, array in, index arrays out."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from stages.params import Split
from stages.sources import DataError

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


def check_splittable(labels: np.ndarray, fractions: Split, class_names: tuple[str, ...]) -> None:
    """Each class needs enough images that every split gets at least one of it."""
    counts = np.bincount(labels, minlength=len(class_names))
    smallest = min(fractions.train, fractions.val, fractions.test)
    needed = max(3, int(np.ceil(1 / smallest)))
    short = [f"{name}: {count}" for name, count in zip(class_names, counts) if count < needed]
    if short:
        raise DataError(f"too few images to split into train/val/test: {', '.join(short)} "
                        f"(each class needs at least {needed} with these split fractions); "
                        f"add images or change data.<task>.split")
