"""Data quality for prepare: drop exact duplicates, stop on too many unreadable files, and build metrics/<task>/data.json."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from facelab.data.images import Images, Skipped
from facelab.errors import DataError

SHOWN_FILES = 10  # files named in an error message; data.json lists them all


@dataclass(frozen=True)
class Dedup:
    """Which images to keep; `duplicates`: same pixels, same class (one kept); `conflicts`: same pixels, different classes (all dropped)."""
    keep: np.ndarray
    duplicates: list[dict]
    conflicts: list[dict]


def dedupe(digests: list[str], labels: np.ndarray, files: list[str], classes: tuple[str, ...],
           prefer: Optional[np.ndarray] = None) -> Dedup:
    """Keep one image of each group of pixel-identical images; drop every image of a group whose labels disagree.

    prefer: where True, that copy is the one kept (the release's test copy stays in the test split)."""
    groups = defaultdict(list)
    for i, digest in enumerate(digests):
        groups[digest].append(i)
    keep, duplicates, conflicts = [], [], []
    for members in groups.values():
        if len(members) == 1:
            keep.append(members[0])
        elif len({int(labels[i]) for i in members}) > 1:
            conflicts.append({"files": [files[i] for i in members],
                              "classes": [classes[labels[i]] for i in members]})
        else:
            first = next((i for i in members if prefer is not None and prefer[i]), members[0])
            keep.append(first)
            duplicates.append({"class": classes[labels[first]], "kept": files[first],
                               "removed": [files[i] for i in members if i != first]})
    return Dedup(np.array(sorted(keep), np.int64), duplicates, conflicts)


def check_bad_fraction(images: Images, max_fraction: float, where: str) -> float:
    """The share of files that could not be read; above max_fraction, an error naming the worst classes and files."""
    bad = [s for s in images.skipped if s.counted]
    total = len(images.labels) + len(bad)
    fraction = len(bad) / total if total else 0.0
    if fraction <= max_fraction:
        return fraction
    per_class = Counter(s.label for s in bad)
    worst = sorted(bad, key=lambda s: (-per_class[s.label], s.file))[:SHOWN_FILES]
    listed = "; ".join(f"{s.file} ({s.reason}: {s.detail})" for s in worst)
    more = f" and {len(bad) - len(worst)} more" if len(bad) > len(worst) else ""
    by_class = ", ".join(f"{name}: {n}" for name, n in per_class.most_common())
    raise DataError(f"{len(bad)} of {total} files cannot be used ({fraction:.1%}, over "
                    f"{where}.max_bad_fraction = {max_fraction:g}); unusable files per class: {by_class}; "
                    f"{listed}{more}. Remove or replace them, or raise {where}.max_bad_fraction to "
                    f"go on without them (data.json then lists them all)")


def class_table(loaded: Images, dedup: Dedup, classes: tuple[str, ...]) -> dict:
    """Per class: files found, skipped, duplicate copies removed, conflicting copies dropped, images used."""
    table = {name: {"found": 0, "skipped": 0, "duplicates_removed": 0, "conflicts_dropped": 0, "used": 0}
             for name in classes}
    for skipped in loaded.skipped:
        table[skipped.label]["skipped"] += 1
    for label in loaded.labels:
        table[classes[label]]["found"] += 1
    for group in dedup.duplicates:
        table[group["class"]]["duplicates_removed"] += len(group["removed"])
    for group in dedup.conflicts:
        for name in group["classes"]:
            table[name]["conflicts_dropped"] += 1
    for label in loaded.labels[dedup.keep]:
        table[classes[label]]["used"] += 1
    for row in table.values():
        row["found"] += row["skipped"]
    return table


def data_report(loaded: Images, dedup: Dedup, split_counts: dict, header: dict, classes: tuple[str, ...],
                bad_fraction: float) -> dict:
    """The content of metrics/<task>/data.json: numbers first (DVC shows them), then every file not used and why."""
    table = class_table(loaded, dedup, classes)
    total = {key: sum(row[key] for row in table.values()) for key in next(iter(table.values()))}
    return {
        **header,
        "counts": split_counts,
        "total": total,
        "classes": table,
        "bad_fraction": round(bad_fraction, 6),
        "skipped_by_reason": dict(Counter(s.reason for s in loaded.skipped).most_common()),
        "not_used": dict(loaded.not_used),
        "warnings": list(loaded.warnings),
        "skipped": [skipped_row(s) for s in loaded.skipped],
        "duplicates": dedup.duplicates,
        "conflicts": dedup.conflicts,
    }


def skipped_row(skipped: Skipped) -> dict:
    return {"file": skipped.file, "class": skipped.label, "reason": skipped.reason,
            "detail": skipped.detail, "counts_as_bad": skipped.counted}
