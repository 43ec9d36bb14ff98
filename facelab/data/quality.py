"""Data quality for prepare: drop exact duplicates, group or drop near-duplicates, stop on too many unreadable
files, and build metrics/<task>/data.json."""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from facelab.data.cuts import Photos
from facelab.data.images import NO_FACE, Images, Skipped
from facelab.data.near import near_search
from facelab.errors import DataError

SHOWN_FILES = 10  # files named in an error message; data.json lists them all
SHOWN_GROUPS = 20  # near-duplicate groups given as examples in data.json and the log


@dataclass(frozen=True)
class Dedup:
    """Which images to keep; `duplicates`: same pixels, same class (one kept); `conflicts`: same pixels, different
    classes (all dropped). `near`: near-duplicate groups and what was done with them (see near_dedupe); `groups`:
    a group id per row of `keep` that the split must not cut (None: every image on its own). `test_copies`: copies
    outside a source's own test split of an image in it (same pixels or near-duplicates), dropped so that the
    release's test split stays as released (keep_release_test)."""
    keep: np.ndarray
    duplicates: list[dict]
    conflicts: list[dict]
    near: dict = field(default_factory=dict)
    groups: np.ndarray | None = None
    test_copies: list[dict] = field(default_factory=list)


def keep_release_test(members: list[int], prefer: np.ndarray | None, labels: np.ndarray, files: list[str],
                      classes: tuple[str, ...], match: str, test_copies: list[dict]) -> list[int] | None:
    """For a group of copies when the source has its own test split (prefer: the release's test images): None when
    no member is a test image (the caller decides as usual); else the test members, all kept whatever their classes
    (scores on a released test split stay comparable with published ones), and the other members dropped and
    listed in test_copies (they would put a test image's copy in train or val)."""
    if prefer is None or not any(prefer[i] for i in members):
        return None
    test = [i for i in members if prefer[i]]
    others = [i for i in members if not prefer[i]]
    if others:
        test_copies.append({"match": match, "test": [files[i] for i in test],
                            "removed": [files[i] for i in others], "classes": [classes[labels[i]] for i in others]})
    return test


def dedupe(digests: list[str], labels: np.ndarray, files: list[str], classes: tuple[str, ...],
           prefer: np.ndarray | None = None) -> Dedup:
    """Keep one image of each group of pixel-identical images; drop every image of a group whose labels disagree.

    prefer: the source's own test split (the release's test images): a group with a test image keeps its test
    images as released and drops the others (keep_release_test)."""
    groups = defaultdict(list)
    for i, digest in enumerate(digests):
        groups[digest].append(i)
    keep: list[int] = []
    duplicates: list[dict] = []
    conflicts: list[dict] = []
    test_copies: list[dict] = []
    for members in groups.values():
        test = keep_release_test(members, prefer, labels, files, classes, "same pixels", test_copies)
        if test is not None:
            keep += test
        elif len(members) == 1:
            keep.append(members[0])
        elif len({int(labels[i]) for i in members}) > 1:
            conflicts.append({"files": [files[i] for i in members],
                              "classes": [classes[labels[i]] for i in members]})
        else:
            first = next((i for i in members if prefer is not None and prefer[i]), members[0])
            keep.append(first)
            duplicates.append({"class": classes[labels[first]], "kept": files[first],
                               "removed": [files[i] for i in members if i != first]})
    return Dedup(np.array(sorted(keep), np.int64), duplicates, conflicts, test_copies=test_copies)


def near_dedupe(dedup: Dedup, packed: np.ndarray, labels: np.ndarray, files: list[str], classes: tuple[str, ...],
                mode: str, cut_copies: str, prefer: np.ndarray | None = None, pixels: np.ndarray | None = None,
                sizes: np.ndarray | None = None) -> Dedup:
    """Near-duplicates among the kept images (packed: facelab.data.phash.hashes of every image, by row; pixels and
    sizes, the images and their files' sizes, by row: with cut_copies (data.<task>.cut_copies) "search", copies cut
    out of a photo are searched for too, facelab.data.cuts.Photos; "skip": the hashes alone).

    mode (data.<task>.near_duplicates): "group" keeps every copy and hands the split their groups, so a group is
    never cut across train/val/test; "drop" keeps one copy of each group (the release's test copy when there is
    one); "keep" does neither. In "group" and "drop", a group whose copies carry different classes is dropped
    whole, as exact copies with different classes are. prefer: the source's own test split; a group with a test
    image keeps its test images as released and drops the others, in every mode but "keep"
    (keep_release_test)."""
    if mode == "keep":
        return dataclasses.replace(dedup, near={"mode": mode})
    rows = dedup.keep
    # every row kept (no exact duplicates): no copy of the hashes, which are most of prepare's memory here
    photos = None
    if cut_copies == "search" and pixels is not None and sizes is not None:
        photos = Photos(pixels, rows, sizes[rows])
    ids, cuts = near_search(packed if len(rows) == len(packed) else packed[rows], photos=photos)
    members = defaultdict(list)
    for row, group in zip(rows, ids):
        members[int(group)].append(int(row))
    keep, groups, examples, conflicts = [], [], [], []
    removed: Counter[str] = Counter()  # class: copies dropped
    test_copies = list(dedup.test_copies)
    for group, rows_in in members.items():
        names = [files[i] for i in rows_in]
        test = keep_release_test(rows_in, prefer, labels, files, classes, "near-duplicate", test_copies)
        if test is not None:
            keep += test
            groups += [group] * len(test)
            continue
        if len({int(labels[i]) for i in rows_in}) > 1:
            conflicts.append({"files": names, "classes": [classes[labels[i]] for i in rows_in]})
            continue
        if mode == "drop" and len(rows_in) > 1:
            first = rows_in[0]
            removed[classes[labels[first]]] += len(rows_in) - 1
            rows_in = [first]
        keep += rows_in
        groups += [group] * len(rows_in)
        if len(names) > 1:
            examples.append({"class": classes[labels[rows_in[0]]], "files": names} |
                            ({"kept": files[rows_in[0]]} if mode == "drop" else {}))
    order = np.argsort(keep, kind="stable")
    near = {"mode": mode, "groups": len(examples), "images": sum(len(e["files"]) for e in examples),
            "removed": sum(removed.values()), "removed_by_class": dict(removed), "conflict_groups": len(conflicts),
            "conflicts_dropped": sum(len(c["files"]) for c in conflicts),
            "examples": examples[:SHOWN_GROUPS], "conflicts": conflicts}
    if cuts is not None:  # files with their sizes: what the search for copies cut out of a photo did
        near["cut_copies"] = {"mode": cut_copies} | cuts._asdict()
    elif sizes is not None:  # files with their sizes, not searched
        near["cut_copies"] = {"mode": cut_copies}
    return dataclasses.replace(dedup, keep=np.array(keep, np.int64)[order], near=near, test_copies=test_copies,
                               groups=np.array(groups, np.int64)[order] if mode == "group" else None)


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
                    f"{listed}{more}. {detector_note(bad, total, max_fraction, where)}Remove or replace them, or "
                    f"raise {where}.max_bad_fraction to go on without them (data.json then lists them all)")


def detector_note(bad: list[Skipped], total: int, max_fraction: float, where: str) -> str:
    """When the face detector's misses alone are over the limit, say that the detector, not the photos, failed."""
    misses = sum(s.reason == NO_FACE for s in bad)
    if not misses or (len(bad) - misses) / total > max_fraction:
        return ""
    needed = np.ceil(100 * (misses / total + max_fraction)) / 100
    raise_it = (f", or raise {where}.max_bad_fraction to {needed:.2f} to train without them" if needed < 1 else "")
    aligned = any("faces: align" in s.detail for s in bad if s.reason == NO_FACE)
    finder = "MTCNN misses" if aligned else "OpenCV's Haar cascades miss"
    return (f"{misses} of these are photos in which the face detector found no face ({where}.faces: "
            f"{'align' if aligned else 'detect'}); without those misses the folder would pass. {finder} small, "
            f"turned or dark faces: crop those photos to the face by hand, set {where}.faces_fallback: center to use "
            f"their centre square{raise_it}. ")


def class_table(loaded: Images, dedup: Dedup, classes: tuple[str, ...]) -> dict:
    """Per class: files found, skipped, duplicate copies removed, conflicting copies dropped, copies of the release's
    test images removed from outside it, images used."""
    table = {name: {"found": 0, "ignored": 0, "skipped": 0, "duplicates_removed": 0, "near_duplicates_removed": 0,
                    "conflicts_dropped": 0, "test_copies_removed": 0, "used": 0} for name in classes}
    for skipped in loaded.skipped:
        table[skipped.label]["skipped"] += 1
    for ignored in loaded.ignored:
        table[ignored.label]["ignored"] += 1
    for label in loaded.labels:
        table[classes[label]]["found"] += 1
    for group in dedup.duplicates:
        table[group["class"]]["duplicates_removed"] += len(group["removed"])
    for group in dedup.conflicts + dedup.near.get("conflicts", []):
        for name in group["classes"]:
            table[name]["conflicts_dropped"] += 1
    for copies in dedup.test_copies:
        for name in copies["classes"]:
            table[name]["test_copies_removed"] += 1
    for name, removed in dedup.near.get("removed_by_class", {}).items():
        table[name]["near_duplicates_removed"] += removed
    for label in loaded.labels[dedup.keep]:
        table[classes[label]]["used"] += 1
    for row in table.values():
        row["found"] += row["skipped"] + row["ignored"]
    return table


def data_counts(loaded: Images, dedup: Dedup, split_counts: dict, header: dict, classes: tuple[str, ...],
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
        "ignored": [{"file": s.file, "class": s.label, "detail": s.detail} for s in loaded.ignored],
        "first_frame_only": [{"file": name, "frames": n} for name, n in loaded.first_frame.items()],
        "duplicates": dedup.duplicates,
        "conflicts": dedup.conflicts,
        "near_duplicates": dedup.near,
        "test_copies": dedup.test_copies,
    }


def skipped_row(skipped: Skipped) -> dict:
    return {"file": skipped.file, "class": skipped.label, "reason": skipped.reason,
            "detail": skipped.detail, "counts_as_bad": skipped.counted}
