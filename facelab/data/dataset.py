"""A task's data set as prepare builds it: decode its source, split the usable rows, write the arrays, manifest and
counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facelab import paths
from facelab.data.images import Images
from facelab.data.pixels import save_rows
from facelab.data.public import fer2013_images, lfw_images
from facelab.data.sources import folder_images, generated_images, source_root
from facelab.data.split import grouped, split_with_fixed_test, stratified_split
from facelab.names import SPLITS
from facelab.params import DataParams


def load_images(task: str, data: DataParams, seed: int, scratch: Path | None = None) -> Images:
    """Decode every image of the task's source once, at data.img_size, one at a time.

    scratch: a file for the pixels (then a read-only memmap of it; see facelab.data.pixels); None keeps them in
    memory."""
    root = source_root(task, data)
    if root is None:
        return generated_images(task, data, seed, scratch)
    if data.source == "lfw":
        return lfw_images(root, data, seed, scratch)
    if data.source == "fer2013":
        return fer2013_images(root, data, scratch)
    return folder_images(root, data.classes, data.img_size, scratch, data.faces, data.min_side)


def split_rows(images: Images, keep: np.ndarray, data: DataParams, seed: int,
               groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The rows of `images` in each split, ascending: the rows in `keep` split by the source's own test split when
    it has one, else stratified by data.split. groups: a group id per row of keep (near-duplicates), never cut."""
    labels = images.labels[keep]
    if images.test is not None:
        index = grouped(split_with_fixed_test, labels, groups, data.split, seed, data.classes,
                        is_test=images.test[keep])
    else:
        index = grouped(stratified_split, labels, groups, data.split, seed, data.classes)
    return {split: keep[i] for split, i in index.items()}


def header(task: str, data: DataParams, images: Images) -> dict:
    test = ("the source's own test split; train/val from the rest in the ratio of data.split.train:val"
            if images.test is not None else "stratified by data.split")
    return {"task": task, "source": data.source, "path": data.path, "img_size": data.img_size,
            "test_split": test, "max_bad_fraction": data.max_bad_fraction}


def write_splits(folder: Path, images: Images, splits: dict[str, np.ndarray]) -> None:
    for split, rows in splits.items():
        save_rows(paths.prepared_images(folder, split), images.pixels, rows)
        np.save(paths.prepared_labels(folder, split), images.labels[rows])


def manifest(images: Images, splits: dict[str, np.ndarray], classes: tuple[str, ...]) -> pd.DataFrame:
    rows = [(images.files[i], classes[images.labels[i]], split)
            for split in SPLITS for i in splits[split]]
    return pd.DataFrame(rows, columns=["file", "class", "split"])


def counts(labels: np.ndarray, splits: dict[str, np.ndarray], classes: tuple[str, ...]) -> dict:
    return {split: {name: int((labels[index] == k).sum()) for k, name in enumerate(classes)}
            for split, index in splits.items()}


def summary(report: dict) -> list[str]:
    """What prepare prints after the counts: files not used, near-duplicate groups, and every warning."""
    total = report["total"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in report["skipped_by_reason"].items()) or "none"
    ignored = f"{total['ignored']} ignored (not image files), " if total.get("ignored") else ""
    lines = [f"{total['found']} files: {total['used']} used, {ignored}{total['skipped']} skipped ({reasons}), "
             f"{total['duplicates_removed']} duplicate copies removed, "
             f"{total['conflicts_dropped']} dropped for conflicting labels"]
    near = report.get("near_duplicates") or {}
    if near.get("groups") or near.get("conflict_groups"):
        done = "kept together in one split" if near["mode"] == "group" else f"{near['removed']} copies removed"
        lines.append(f"near-duplicates (data.<task>.near_duplicates: {near['mode']}): {near['groups']} group(s) of "
                     f"{near['images']} images, {done}; {near['conflict_groups']} group(s) with two classes dropped")
        lines += [f"  near-duplicates in {group['class']}: " + ", ".join(group["files"][:4])
                  + (" ..." if len(group["files"]) > 4 else "") for group in near["examples"][:3]]
    if report.get("first_frame_only"):
        lines.append(f"{len(report['first_frame_only'])} animated file(s): only the first frame is used")
    return lines + [f"warning: {text}" for text in report["warnings"]]
