"""A task's data set as prepare builds it: decode its source, check the usable rows can be split, write the arrays,
manifest and counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facelab import paths
from facelab.data.images import Images
from facelab.data.pixels import save_rows
from facelab.data.public import fer2013_images, lfw_images
from facelab.data.sources import folder_images, generated_images, source_root
from facelab.data.split import split_prepared
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
    return folder_images(root, data.classes, data.img_size, scratch, data.faces, data.min_side, data.faces_fallback)


def check_split(images: Images, keep: np.ndarray, data: DataParams, seed: int,
                groups: np.ndarray | None = None) -> None:
    """Raise DataError when the rows in `keep` cannot be split by data.split (too few images of a class): the split
    itself is train's and evaluate's, per seed, but whether one exists does not depend on the seed."""
    split_prepared(images.labels[keep], groups, None if images.test is None else images.test[keep], data.split,
                   seed, data.classes)


def header(task: str, data: DataParams, images: Images) -> dict:
    test = ("the source's own test split; train/val from the rest in the ratio of data.split.train:val"
            if images.test is not None else "stratified by data.split")
    return {"task": task, "source": data.source, "path": data.path, "img_size": data.img_size,
            "test_split": test, "max_bad_fraction": data.max_bad_fraction,
            "label_issues": f"{paths.label_issues(task).as_posix()} and {paths.label_issues_gallery(task).as_posix()} "
                            f"(stage audit@{task}): the images whose given class is likely wrong"}


def write_prepared(folder: Path, images: Images, keep: np.ndarray, groups: np.ndarray | None) -> None:
    """The rows in `keep` (ascending), in that order: pixels, labels, near-duplicate groups (every row its own
    group when there are none), for a source with its own test split which rows are in it, and for a source of
    files their pixel sizes."""
    save_rows(paths.prepared_images(folder), images.pixels, keep)
    np.save(paths.prepared_labels(folder), images.labels[keep])
    np.save(paths.prepared_groups(folder), np.arange(len(keep)) if groups is None else np.asarray(groups, np.int64))
    if images.test is not None:
        np.save(paths.prepared_own_test(folder), images.test[keep])
    if images.sizes is not None:
        np.save(paths.prepared_sizes(folder), images.sizes[keep])


def manifest(images: Images, keep: np.ndarray, groups: np.ndarray | None, classes: tuple[str, ...]) -> pd.DataFrame:
    """File, class and near-duplicate group of each prepared row, in the arrays' row order."""
    group = np.arange(len(keep)) if groups is None else groups
    return pd.DataFrame({"file": [images.files[i] for i in keep], "class": [classes[images.labels[i]] for i in keep],
                         "group": group})


def counts(images: Images, keep: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Images per class: every usable one, and those in the source's own test split when it has one (the split
    into train, val and test is per seed: the model card holds each run's)."""
    labels = images.labels[keep]
    result = {"used": per_class(labels, classes)}
    if images.test is not None:
        result["own_test"] = per_class(labels[images.test[keep]], classes)
    return result


def per_class(labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, int]:
    return {name: int((labels == k).sum()) for k, name in enumerate(classes)}


def summary(report: dict) -> list[str]:
    """What prepare prints after the counts: files not used, near-duplicate groups, and every warning."""
    total = report["total"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in report["skipped_by_reason"].items()) or "none"
    ignored = f"{total['ignored']} ignored (not image files), " if total.get("ignored") else ""
    lines = [f"{total['found']} files: {total['used']} used, {ignored}{total['skipped']} skipped ({reasons}), "
             f"{total['duplicates_removed']} duplicate copies removed, "
             f"{total['conflicts_dropped']} dropped for conflicting labels"]
    if total.get("test_copies_removed"):
        lines.append(f"{total['test_copies_removed']} copies of the source's own test images removed from outside "
                     f"its test split (the test split stays as released; data.json: test_copies)")
    near = report.get("near_duplicates") or {}
    if near.get("groups") or near.get("conflict_groups"):
        done = "kept together in one split" if near["mode"] == "group" else f"{near['removed']} copies removed"
        lines.append(f"near-duplicates (data.<task>.near_duplicates: {near['mode']}): {near['groups']} group(s) of "
                     f"{near['images']} images, {done}; {near['conflict_groups']} group(s) with two classes dropped")
        lines += [f"  near-duplicates in {group['class']}: " + ", ".join(group["files"][:4])
                  + (" ..." if len(group["files"]) > 4 else "") for group in near["examples"][:3]]
    cuts = near.get("cut_copies") or {}
    if cuts.get("mode") == "skip":
        lines.append("copies cut out of a photo: not searched (data.<task>.cut_copies: skip)")
    elif cuts.get("sizes", 0) > 1:
        lines.append(f"copies cut out of a photo: {cuts['images']} files at {cuts['sizes']} sizes, "
                     f"{cuts['regions']:,} anchored regions hashed, {cuts['checked']:,} candidate pairs checked, "
                     f"{cuts['found']} copies found")
    if report.get("first_frame_only"):
        lines.append(f"{len(report['first_frame_only'])} animated file(s): only the first frame is used")
    return lines + [f"warning: {text}" for text in report["warnings"]]
