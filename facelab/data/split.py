"""Stratified train/val/test split from a seed, or train/val around a source's own test split, never cutting a group of
near-duplicates: pure, arrays in, index arrays out."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from facelab.errors import DataError
from facelab.params import Split


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


def grouped(split, labels: np.ndarray, groups: np.ndarray | None, *args, is_test: np.ndarray | None = None):
    """`split` (stratified_split or split_with_fixed_test) applied to whole groups: each group is split as one
    unit with its first member's label (a group's members share their class), then every member follows it.
    Without groups of two or more, this is exactly `split` on the images, so results do not move.
    is_test (split_with_fixed_test): a group with a member in the release's test split is all test."""
    if groups is None or len(np.unique(groups)) == len(groups):
        return split(labels, *args) if is_test is None else split(labels, is_test, *args)
    units, first, unit_of = np.unique(groups, return_index=True, return_inverse=True)
    if is_test is None:
        index = split(labels[first], *args)
    else:
        unit_test = np.zeros(len(units), bool)
        np.logical_or.at(unit_test, unit_of, is_test)
        index = split(labels[first], unit_test, *args)
    return {name: np.flatnonzero(np.isin(unit_of, chosen)) for name, chosen in index.items()}


def split_prepared(labels: np.ndarray, groups: np.ndarray | None, own_test: np.ndarray | None, fractions: Split,
                   seed: int, class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A prepared data set's rows in each split, ascending: around the source's own test split when it has one
    (own_test), else stratified by the fractions; a group of near-duplicates never cut. The same inputs and seed
    give the same split, whoever asks (train, evaluate, prepare's check)."""
    if own_test is not None:
        return grouped(split_with_fixed_test, labels, groups, fractions, seed, class_names, is_test=own_test)
    return grouped(stratified_split, labels, groups, fractions, seed, class_names)


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
