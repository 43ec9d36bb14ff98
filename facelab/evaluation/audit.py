"""Label audit (stage audit@<task>, `facelab audit DIR`): k-fold out-of-sample class probabilities for every image,
then cleanlab's confident learning names the images whose given class is likely wrong (LabelIssues record) and a
gallery shows them, most likely first.

The recipe is the cheapest that ranked flipped labels best (benchmarks/README.md, label noise): histograms of
oriented gradients (HOG) of the grey image at 64 x 64, standardised, PCA, a strongly regularised logistic regression
per fold. On the generated emotion faces it predicts out of sample as well as resnet18_scratch (0.91 accuracy), where
raw pixels reach 0.46; frozen VGG16 `features` (this machine has only stand-in random-init weights) cost 55 s of
encoding for 3000 images and ranked no better than pixels on FER2013."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from cleanlab.filter import find_label_issues
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from facelab import paths
from facelab.data.batches import prepared_classes, prepared_files, prepared_split
from facelab.data.label_drop import LabelDrop, write_label_drop
from facelab.errors import DataError
from facelab.evaluation.gallery import short_name
from facelab.evaluation.label_issues import AuditResults, AuditSettings, LabelIssue, LabelIssues, write_label_issues
from facelab.evaluation.mosaic import message, mosaic
from facelab.params import Split

FOLDS = 5          # out-of-sample: each image's probabilities come from a head that never saw it
SIDE, CELL, BINS = 64, 8, 9  # HOG of the grey image at SIDE px: (SIDE/CELL)^2 cells x BINS = 576 features, any img_size
COMPONENTS = 100   # PCA; on grey pixels 50 and 100 ranked FER2013's and Yale B's flips alike
C = 0.01           # logistic regression's inverse regularisation: on grey pixels C 1.0 flagged more clean Yale B images
CHUNK = 1024       # images turned into features at a time: the float copies of a large folder stay small
FILTER_BY = "prune_by_noise_rate"  # cleanlab's default
PER_ROW, GALLERY_MAX = 8, 32


def gradient_features(pixels: np.ndarray) -> np.ndarray:
    """(n, S, S, 3) uint8 -> (n, 576) float32 HOG features, CHUNK images at a time (hog)."""
    return np.concatenate([hog(np.asarray(pixels[start:start + CHUNK]))
                           for start in range(0, len(pixels), CHUNK)])


def hog(pixels: np.ndarray) -> np.ndarray:
    """HOG: the grey image area-resized to SIDE px, its gradient magnitude summed per CELL x CELL cell into BINS
    unsigned orientation bins, each cell's histogram scaled to unit length (Dalal and Triggs 2005, without their
    overlapping blocks)."""
    grey = torch.from_numpy(pixels.astype(np.float32).mean(-1))[:, None]
    grey = nn.functional.adaptive_avg_pool2d(grey, SIDE)
    across = nn.functional.pad(grey, (1, 1, 0, 0), mode="replicate")
    down = nn.functional.pad(grey, (0, 0, 1, 1), mode="replicate")
    gx, gy = across[..., 2:] - across[..., :-2], down[..., 2:, :] - down[..., :-2, :]
    angle = torch.atan2(gy, gx) % math.pi
    bins = (angle / math.pi * BINS).long().clamp(max=BINS - 1)
    histograms = torch.zeros(len(grey), BINS, SIDE, SIDE).scatter_(1, bins, torch.sqrt(gx ** 2 + gy ** 2))
    histograms = nn.functional.avg_pool2d(histograms, CELL)
    histograms = histograms / (histograms.norm(dim=1, keepdim=True) + 1e-3)
    return histograms.reshape(len(grey), -1).numpy()


def folds_for(labels: np.ndarray, classes: tuple[str, ...], where: str) -> int:
    """FOLDS, or fewer when a class has fewer images; a class with under 2 images cannot be audited."""
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        small = classes[int(counts.argmin())]
        raise DataError(f"{where}: class '{small}' has {int(counts.min())} image(s); the audit predicts each image "
                        f"from the others of its class, so it needs at least 2 per class: add images to '{small}'")
    return int(min(FOLDS, counts.min()))


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int,
                                seed: int) -> np.ndarray:
    """(n, num_classes): each image's class probabilities from a head fitted on the other folds (stratified)."""
    probabilities = np.zeros((len(labels), num_classes))
    with threadpool_limits(1, user_api="blas"):  # small matrices: 2 BLAS threads took 6 s, one 0.3 s (700 images)
        for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
            components = min(COMPONENTS, len(fit) - 1, features.shape[1])
            head = make_pipeline(StandardScaler(), PCA(components, random_state=seed),
                                 LogisticRegression(C=C, max_iter=500))
            head.fit(features[fit], labels[fit])
            probabilities[np.ix_(held, head.classes_)] = head.predict_proba(features[held])
    return probabilities


def ranked_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The rows cleanlab flags as likely mislabelled, lowest self-confidence (probability of the given class) first."""
    return np.asarray(find_label_issues(labels, probabilities, filter_by=FILTER_BY,
                                        return_indices_ranked_by="self_confidence"), dtype=np.int64)


def audit_images(pixels: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], files: list[str], seed: int,
                 where: str, handling: str | None = None) -> LabelIssues:
    """The audit of one labelled set: every image's out-of-sample probabilities, the flagged ones ranked.
    handling: data.<task>.label_issues for a pipeline audit (None outside the pipeline)."""
    start = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    folds = folds_for(labels, classes, where)
    probabilities = out_of_sample_probabilities(gradient_features(pixels), labels, len(classes), folds, seed)
    flagged = ranked_issues(labels, probabilities)
    issues = [LabelIssue(file=files[i], row=int(i), given=classes[labels[i]],
                         suggested=classes[int(probabilities[i].argmax())],
                         self_confidence=round(float(probabilities[i, labels[i]]), 4)) for i in flagged]
    settings = AuditSettings(features=f"HOG of the grey image at {SIDE} px ({CELL} px cells, {BINS} bins), "
                                      f"standardised, PCA {COMPONENTS}",
                             classifier=f"logistic regression C={C}", folds=folds, seed=seed, filter_by=FILTER_BY,
                             label_issues=handling)
    results = AuditResults(images=len(labels), flagged=len(issues), seconds=round(time.perf_counter() - start, 2),
                           issues=issues)
    return LabelIssues(settings=settings, results=results)


def audit_prepared(folder: Path, seeds: list[int], fractions: Split, data_seed: int,
                   handling: str) -> tuple[LabelIssues, np.ndarray]:
    """The audit of a prepared folder, with where each flagged image falls in each seed's split: counts per seed,
    split and class, and the flagged positions in each seed's test split. Returns the record and the pixels.
    handling: data.<task>.label_issues."""
    folder = Path(folder)
    classes = prepared_classes(folder)
    pixels = np.load(paths.prepared_images(folder), mmap_mode="r")
    labels = np.load(paths.prepared_labels(folder))
    files = prepared_files(folder)
    record = audit_images(pixels, labels, classes, files, data_seed, str(folder), handling)
    flagged = {issue.row for issue in record.results.issues}
    where: dict[int, dict[str, str]] = {row: {} for row in flagged}
    counts, positions = {}, {}
    for seed in seeds:
        rows = prepared_split(folder, seed, fractions)
        counts[str(seed)] = {split: {name: 0 for name in classes} for split in rows}
        for split, index in rows.items():
            for row in index:
                if int(row) in flagged:
                    where[int(row)][str(seed)] = split
                    counts[str(seed)][split][classes[labels[row]]] += 1
        positions[str(seed)] = [i for i, row in enumerate(rows["test"]) if int(row) in flagged]
    issues = [issue.model_copy(update={"splits": where[issue.row]}) for issue in record.results.issues]
    results = record.results.model_copy(update={"issues": issues, "counts": counts, "test_positions": positions})
    return record.model_copy(update={"results": results}), pixels


def audit_task(folder: Path, record_path: Path, gallery_path: Path, drop_path: Path, seeds: list[int],
               fractions: Split, handling: str, data_seed: int) -> LabelIssues:
    """The audit stage: audit the prepared folder, write the record, the gallery and what the runs leave out of
    train and val (drop_path: the flagged images under handling drop, none under report). fractions and handling:
    data.<task>.split and data.<task>.label_issues."""
    record, pixels = audit_prepared(folder, seeds, fractions, data_seed, handling)
    write_label_issues(record_path, record)
    issue_gallery(pixels, record, gallery_path)
    dropped = sorted(record.results.issues, key=lambda issue: issue.row) if handling == "drop" else []
    write_label_drop(drop_path, LabelDrop(label_issues=handling, rows=[issue.row for issue in dropped],
                                          files=[issue.file for issue in dropped]))
    return record


def drop_lines(record: LabelIssues) -> list[str]:
    """What the runs leave out under data.<task>.label_issues: drop, per seed: the flagged train and val images
    by class (flagged test images stay: the report scores the verdict with and without them)."""
    if record.settings.label_issues != "drop":
        return []
    lines = []
    found = record.results
    for seed, per_split in found.counts.items():
        detail = "; ".join(f"{split} " + ", ".join(f"{name} {n}" for name, n in per_split.get(split, {}).items())
                           for split in ("train", "val"))
        left_out = found.flagged_in(seed, "train") + found.flagged_in(seed, "val")
        lines.append(f"seed {seed}: {left_out} flagged image(s) left out of train and val ({detail}); "
                     f"{found.flagged_in(seed, 'test')} flagged test image(s) kept")
    return lines


def summary(record: LabelIssues) -> list[str]:
    """The audit's result in a few lines: how many flagged, the first few."""
    found = record.results
    lines = [f"{found.flagged} of {found.images} images are likely mislabelled ({found.seconds:.1f} s, "
             f"{record.settings.folds}-fold {record.settings.classifier} on {record.settings.features})"]
    lines += [f"  {issue.file}: {issue.given} -> {issue.suggested} (self-confidence {issue.self_confidence:.3f})"
              for issue in found.issues[:5]]
    return lines + (["  ..."] if found.flagged > 5 else [])


def issue_gallery(pixels: np.ndarray, record: LabelIssues, path: str | Path) -> None:
    """A PNG of the flagged images, most likely first, PER_ROW a row, captioned "given -> suggested" and the
    self-confidence; a message image when none is flagged."""
    issues = record.results.issues[:GALLERY_MAX]
    if not issues:
        message(f"no likely label errors among {record.results.images} images", path)
        return
    tiles = [(np.asarray(pixels[issue.row]),
              f"{short_name(issue.file)}\n{issue.given} \u2192 {issue.suggested}\np={issue.self_confidence:.2f}")
             for issue in issues]
    rows = [(f"#{start + 1}-{start + len(tiles[start:start + PER_ROW])}", tiles[start:start + PER_ROW])
            for start in range(0, len(tiles), PER_ROW)]
    mosaic(rows, f"likely label errors, most likely first: {len(issues)} of {record.results.flagged} flagged among "
                 f"{record.results.images} images (given \u2192 suggested; p = out-of-sample probability of the "
                 f"given class)", path)
