"""Stage prepare@<task>: decode the task's images once, drop unusable files and duplicates, split, write data/prepared/<task>/ and metrics/<task>/data.json."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from stages.cli import stage_main
from stages.files import atomic_dir, read_json, scratch_path, write_csv, write_json
from stages.images import Images
from stages.params import TASKS, DataParams, load_params
from stages.pixels import save_rows
from stages.public_data import fer2013_images, lfw_images
from stages.quality import check_bad_fraction, data_report, dedupe
from stages.sources import folder_images, generated_images
from stages.split import SPLITS, split_with_fixed_test, stratified_split


def run(task: str, data: DataParams, seed: int, out_dir: str | Path,
        metrics_path: Optional[str | Path] = None) -> dict:
    """Prepare one task into out_dir; return its counts per split and class.

    metrics_path: where the data report goes (counts, every file not used and why; see quality.data_report).
    Every decoded image goes to a scratch file beside out_dir, removed at the end; only labels, names and digests
    are held in memory per image."""
    with scratch_path(out_dir, "pixels") as scratch:
        loaded = load_images(task, data, seed, scratch)
        bad_fraction = check_bad_fraction(loaded, data.max_bad_fraction, f"data.{task}")
        dedup = dedupe(loaded.digests, loaded.labels, loaded.files, data.classes, prefer=loaded.test)
        splits = split_rows(loaded, dedup.keep, data, seed)
        with atomic_dir(out_dir) as tmp:
            write_splits(tmp, loaded, splits)
            write_csv(tmp / "manifest.csv", manifest(loaded, splits, data.classes))
            write_json(tmp / "classes.json", {"classes": list(data.classes), "img_size": data.img_size})
    result = counts(loaded.labels, splits, data.classes)
    if metrics_path is not None:
        write_json(metrics_path, data_report(loaded, dedup, result, header(task, data, loaded), data.classes,
                                             bad_fraction))
    return result


def load_images(task: str, data: DataParams, seed: int, scratch: Optional[Path] = None) -> Images:
    """Decode every image of the task's source once, at data.img_size, one at a time.

    scratch: a file for the pixels (then a read-only memmap of it; see stages.pixels); None keeps them in memory."""
    if data.source == "generated":
        return generated_images(task, data, seed, scratch)
    if data.source == "lfw":
        return lfw_images(data, seed, scratch)
    if data.source == "fer2013":
        return fer2013_images(data, scratch)
    return folder_images(Path(data.path).expanduser(), data.classes, data.img_size, scratch)


def split_rows(images: Images, keep: np.ndarray, data: DataParams, seed: int) -> dict[str, np.ndarray]:
    """The rows of `images` in each split, ascending: the rows in `keep` split by the source's own test split when
    it has one, else stratified by data.split."""
    labels = images.labels[keep]
    if images.test is not None:
        index = split_with_fixed_test(labels, images.test[keep], data.split, seed, data.classes)
    else:
        index = stratified_split(labels, data.split, seed, data.classes)
    return {split: keep[i] for split, i in index.items()}


def header(task: str, data: DataParams, images: Images) -> dict:
    test = ("the source's own test split; train/val from the rest in the ratio of data.split.train:val"
            if images.test is not None else "stratified by data.split")
    return {"task": task, "source": data.source, "path": data.path, "img_size": data.img_size,
            "test_split": test, "max_bad_fraction": data.max_bad_fraction}


def write_splits(folder: Path, images: Images, splits: dict[str, np.ndarray]) -> None:
    for split, rows in splits.items():
        save_rows(folder / f"{split}_x.npy", images.pixels, rows)
        np.save(folder / f"{split}_y.npy", images.labels[rows])


def manifest(images: Images, splits: dict[str, np.ndarray], classes: tuple[str, ...]) -> pd.DataFrame:
    rows = [(images.files[i], classes[images.labels[i]], split)
            for split in SPLITS for i in splits[split]]
    return pd.DataFrame(rows, columns=["file", "class", "split"])


def counts(labels: np.ndarray, splits: dict[str, np.ndarray], classes: tuple[str, ...]) -> dict:
    return {split: {name: int((labels[index] == k).sum()) for k, name in enumerate(classes)}
            for split, index in splits.items()}


def summary(report: dict) -> list[str]:
    """What prepare prints after the counts: files not used, and every warning."""
    total = report["total"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in report["skipped_by_reason"].items()) or "none"
    lines = [f"{total['found']} files: {total['used']} used, {total['skipped']} skipped ({reasons}), "
             f"{total['duplicates_removed']} duplicate copies removed, "
             f"{total['conflicts_dropped']} dropped for conflicting labels"]
    return lines + [f"warning: {text}" for text in report["warnings"]]


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    metrics_path = Path("metrics") / args.task / "data.json"
    result = run(args.task, params.data[args.task], params.seed, Path("data/prepared") / args.task, metrics_path)
    for split, per_class in result.items():
        print(f"[{args.task}] {split}: " + ", ".join(f"{k} {v}" for k, v in per_class.items()))
    for line in summary(read_json(metrics_path)) + [f"details: {metrics_path}"]:
        print(f"[{args.task}] {line}")


if __name__ == "__main__":
    main()
