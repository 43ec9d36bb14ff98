"""Stage prepare@<task>: decode the task's images once, drop unusable files and duplicates, split, write data/prepared/<task>/ and metrics/<task>/data.json."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

from facelab import paths
from facelab.cli import stage_args, stage_main
from facelab.data.prepared import counts, header, load_images, manifest, split_rows, summary, write_splits
from facelab.data.quality import check_bad_fraction, data_report, dedupe
from facelab.files import atomic_dir, atomic_path, read_json, remove_debris, scratch_path, write_csv, write_json
from facelab.errors import DataError
from facelab.params import DataParams, load_params


def run(task: str, data: DataParams, seed: int, out_dir: str | Path,
        metrics_path: Optional[str | Path] = None) -> dict:
    """Prepare one task into out_dir; return its counts per split and class.

    metrics_path: where the data report goes (counts, every file not used and why; see quality.data_report).
    Every decoded image goes to a scratch file beside out_dir, removed at the end; only labels, names and digests
    are held in memory per image."""
    for stale in remove_debris(out_dir) + (remove_debris(metrics_path) if metrics_path else []):
        print(f"[{task}] removed {stale}, left by an interrupted run")
    with scratch_path(out_dir, "pixels") as scratch:
        loaded = load_images(task, data, seed, scratch)
        bad_fraction = check_bad_fraction(loaded, data.max_bad_fraction, f"data.{task}")
        dedup = dedupe(loaded.digests, loaded.labels, loaded.files, data.classes, prefer=loaded.test)
        try:
            splits = split_rows(loaded, dedup.keep, data, seed)
        except DataError as error:  # too few images: say what was dropped on the way, the old outputs stay
            report = data_report(loaded, dedup, {}, header(task, data, loaded), data.classes, bad_fraction)
            dropped = "; ".join(summary(report))
            raise DataError(f"{error}. What prepare found: {dropped}") from error
        result = counts(loaded.labels, splits, data.classes)
        report = data_report(loaded, dedup, result, header(task, data, loaded), data.classes, bad_fraction)
        # Both outputs are written in full under temporary names first: if the report cannot be written (a
        # read-only folder, a full disk), the data folder is not replaced either, and the pair stays consistent.
        with atomic_path(metrics_path) if metrics_path is not None else contextlib.nullcontext() as report_tmp:
            with atomic_dir(out_dir) as tmp:
                write_splits(tmp, loaded, splits)
                write_csv(tmp / "manifest.csv", manifest(loaded, splits, data.classes))
                write_json(tmp / "classes.json", {"classes": list(data.classes), "img_size": data.img_size,
                                                   "faces": data.faces})
                if report_tmp is not None:
                    report_tmp.write_text(json.dumps(report, indent=2) + "\n")
    return result


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=False)
    params = load_params(args.params)
    metrics_path = paths.data_report(args.task)
    result = run(args.task, params.data[args.task], params.seed, paths.prepared(args.task), metrics_path)
    for split, per_class in result.items():
        print(f"[{args.task}] {split}: " + ", ".join(f"{k} {v}" for k, v in per_class.items()))
    for line in summary(read_json(metrics_path)) + [f"details: {metrics_path}"]:
        print(f"[{args.task}] {line}")


if __name__ == "__main__":
    main()
