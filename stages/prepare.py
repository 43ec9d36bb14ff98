"""Stage prepare@<task>: decode the task's images once, split them, write data/prepared/<task>/ (uint8 arrays, manifest)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from stages.cli import stage_main
from stages.files import atomic_dir, write_csv, write_json
from stages.params import TASKS, DataParams, load_params
from stages.sources import Images, load_images
from stages.split import SPLITS, stratified_split


def run(task: str, data: DataParams, seed: int, out_dir: str | Path) -> dict:
    """Prepare one task into out_dir; return its counts per split and class."""
    images = load_images(task, data, seed)
    splits = stratified_split(images.labels, data.split, seed, data.classes)
    with atomic_dir(out_dir) as tmp:
        write_splits(tmp, images, splits)
        write_csv(tmp / "manifest.csv", manifest(images, splits, data.classes))
        write_json(tmp / "classes.json", {"classes": list(data.classes), "img_size": data.img_size})
    return counts(images.labels, splits, data.classes)


def write_splits(folder: Path, images: Images, splits: dict[str, np.ndarray]) -> None:
    for split, index in splits.items():
        np.save(folder / f"{split}_x.npy", images.pixels[index])
        np.save(folder / f"{split}_y.npy", images.labels[index])


def manifest(images: Images, splits: dict[str, np.ndarray], classes: tuple[str, ...]) -> pd.DataFrame:
    rows = [(images.files[i], classes[images.labels[i]], split)
            for split in SPLITS for i in splits[split]]
    return pd.DataFrame(rows, columns=["file", "class", "split"])


def counts(labels: np.ndarray, splits: dict[str, np.ndarray], classes: tuple[str, ...]) -> dict:
    return {split: {name: int((labels[index] == k).sum()) for k, name in enumerate(classes)}
            for split, index in splits.items()}


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    result = run(args.task, params.data[args.task], params.seed, Path("data/prepared") / args.task)
    for split, per_class in result.items():
        print(f"[{args.task}] {split}: " + ", ".join(f"{k} {v}" for k, v in per_class.items()))


if __name__ == "__main__":
    main()
