"""prepare@<task>'s work: decode the task's images once, drop unusable files and duplicates, write the prepared folder
(every usable image once, with what the split needs) and the data report. The split is per seed: train and evaluate
draw it from this folder (facelab.data.batches.load_prepared)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from facelab import paths
from facelab.data.dataset import check_split, counts, header, load_images, manifest, summary, write_prepared
from facelab.data.phash import hashes
from facelab.data.quality import check_bad_fraction, data_counts, dedupe, near_dedupe
from facelab.errors import DataError
from facelab.files import atomic_dir, atomic_path, remove_debris, scratch_path, write_csv, write_json
from facelab.params import DataParams


@dataclass(frozen=True)
class Prepared:
    """What prepare_task made: the images per class (all used, and the source's own test split when it has one),
    and the data report it wrote beside them."""
    counts: dict[str, dict[str, int]]
    report: dict  # quality.data_counts: counts, every file not used and why, warnings

    def lines(self) -> list[str]:
        """What the prepare stage prints: the counts per class, then the files not used and every warning."""
        return ([f"{which}: " + ", ".join(f"{k} {v}" for k, v in per_class.items())
                 for which, per_class in self.counts.items()] + summary(self.report))


def prepare_task(task: str, data: DataParams, data_seed: int, out_dir: str | Path,
                 metrics_path: str | Path | None = None) -> Prepared:
    """Prepare one task into out_dir; return its counts per class, and its data report.

    data_seed (params: data_seed): draws the data itself (the generated faces, LFW's sample of other people), not
    the split.
    metrics_path: where the data report goes (counts, every file not used and why; see quality.data_counts).
    Every decoded image goes to a scratch file beside out_dir, removed at the end; only labels, names and digests
    are held in memory per image."""
    for stale in remove_debris(out_dir) + (remove_debris(metrics_path) if metrics_path else []):
        print(f"[{task}] removed {stale}, left by an interrupted run")
    with scratch_path(out_dir, "pixels") as scratch:
        loaded = load_images(task, data, data_seed, scratch)
        bad_fraction = check_bad_fraction(loaded, data.max_bad_fraction, f"data.{task}")
        dedup = dedupe(loaded.digests, loaded.labels, loaded.files, data.classes, prefer=loaded.test)
        dedup = near_dedupe(dedup, hashes(loaded.pixels), loaded.labels, loaded.files, data.classes,
                            data.near_duplicates, data.cut_copies, prefer=loaded.test, pixels=loaded.pixels,
                            sizes=loaded.sizes)
        try:
            check_split(loaded, dedup.keep, data, data_seed, dedup.groups)
        except DataError as error:  # too few images: say what was dropped on the way, the old outputs stay
            report = data_counts(loaded, dedup, {}, header(task, data, loaded), data.classes, bad_fraction)
            dropped = "; ".join(summary(report))
            raise DataError(f"{error}. What prepare found: {dropped}") from error
        result = counts(loaded, dedup.keep, data.classes)
        report = data_counts(loaded, dedup, result, header(task, data, loaded), data.classes, bad_fraction)
        # Both outputs are written in full under temporary names first: if the report cannot be written (a
        # read-only folder, a full disk), the data folder is not replaced either, and the pair stays consistent.
        with (atomic_path(metrics_path) if metrics_path is not None else contextlib.nullcontext() as report_tmp,
              atomic_dir(out_dir) as tmp):
            # the files' sizes are kept for evaluate's search for cut copies, so only where prepare searched too
            write_prepared(tmp, loaded if data.cut_copies == "search" else dataclasses.replace(loaded, sizes=None),
                           dedup.keep, dedup.groups)
            write_csv(paths.prepared_manifest(tmp), manifest(loaded, dedup.keep, dedup.groups, data.classes))
            write_json(paths.prepared_classes(tmp), {"classes": list(data.classes), "img_size": data.img_size,
                                                     "faces": data.faces, "faces_fallback": data.faces_fallback,
                                                     "min_side": data.min_side})
            if report_tmp is not None:
                report_tmp.write_text(json.dumps(report, indent=2) + "\n")
    return Prepared(result, report)
