"""The label audit on deliberately flipped labels: precision and recall of the flips it flags, and its cost against
one training. Prints figures; nothing is written to the repository.

    python3 -m benchmarks.label_noise

Each set is a real class folder read in place from ../shared/data/real/ by prepare's own folder reader and decoder
(64 px). For each share, that share of the images (drawn from --seed) gets one of the other classes, drawn
uniformly; facelab.evaluation.audit.audit_images then audits the flipped labels.
- precision: flagged images that were flipped; recall: flipped images that were flagged. The sets' own label errors
  (FER2013 has many) count against precision: they are flagged but were not flipped here. To tell them apart, the
  unflipped set is audited too (share 0.00): its flags are the set's own suspects (`own`).
- cost: the audit's seconds (features, 5 heads, cleanlab) beside one training's train_seconds as the run stage
  recorded it (metrics/<task>/<recipe>/seed<first seed>.json, the generated data in the working tree), and the
  audit's seconds on the prepared generated data the pipeline audits (data/prepared/<task>, when present).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from facelab import paths
from facelab.data.sources import folder_images
from facelab.evaluation.audit import audit_images

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
SETS = {"emotion-fer2013": ("angry", "happy", "sad"), "face-yaleb": ("other", "target")}
SHARES = (0.02, 0.05, 0.10)
IMG_SIZE = 64


def flip(labels: np.ndarray, share: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The labels with round(share * n) of them moved to another class, and which."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), int(round(share * len(labels))), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, len(flipped))) % num_classes
    return noisy, flipped


def noise_rows(seed: int) -> None:
    """Per set and share: flips, flags, precision and recall; then how much of the imprecision is the set's own:
    `own` the flagged images the audit also flags with no flip at all (the same folds), `precision new` the
    flipped share of the other flags, and `precision@k` the flipped share of the k least self-confident flags,
    k the number flipped (how well the ranking puts the flips first)."""
    print("set              share flipped flagged precision recall   own precision_new precision@k audit_s")
    for name, classes in SETS.items():
        images = folder_images(REAL / name, classes, IMG_SIZE)
        pixels, files = np.asarray(images.pixels), list(images.files)
        clean = audit_images(pixels, images.labels, classes, files, seed, name)
        own = {issue.row for issue in clean.results.issues}
        print(f"{name:16} {0.0:5.2f} {0:7d} {len(own):7d} {'':>9} {'':>6} {len(own):5d} {'':>13} {'':>11} "
              f"{clean.results.seconds:7.2f}")
        for share in SHARES:
            noisy, flipped = flip(images.labels, share, len(classes), seed)
            record = audit_images(pixels, noisy, classes, files, seed, name)
            issues = record.results.issues
            flagged, flips = {issue.row for issue in issues}, set(flipped.tolist())
            hits, new = len(flagged & flips), flagged - own
            ranked = [issue.row for issue in sorted(issues, key=lambda issue: issue.self_confidence)][:len(flips)]
            print(f"{name:16} {share:5.2f} {len(flipped):7d} {len(flagged):7d} {hits / max(len(flagged), 1):9.3f} "
                  f"{hits / len(flipped):6.3f} {len(flagged & own):5d} {len(new & flips) / max(len(new), 1):13.3f} "
                  f"{len(set(ranked) & flips) / len(flips):11.3f} {record.results.seconds:7.2f}")


def cost_rows(root: Path) -> None:
    print("task     images audit_s | recipe train_seconds (run stage, first seed)")
    for task in ("face", "emotion"):
        folder = paths.prepared(task, root)
        if not paths.prepared_labels(folder).is_file():
            continue
        pixels, labels = np.load(paths.prepared_images(folder)), np.load(paths.prepared_labels(folder))
        classes = tuple(json.loads(paths.prepared_classes(folder).read_text())["classes"])
        start = time.perf_counter()
        audit_images(pixels, labels, classes, [str(i) for i in range(len(labels))], 0, task)
        seconds = time.perf_counter() - start
        trained: dict[str, float] = {}
        for path in sorted((root / "metrics" / task).glob("*/seed*.json")):
            if path.stem[4:].isdigit():  # seed<N>.json, not its _details/_classes
                trained.setdefault(path.parent.name, json.loads(path.read_text())["train_seconds"])
        print(f"{task:8} {len(labels):6d} {seconds:7.2f} | "
              + ", ".join(f"{recipe} {value:.1f}" for recipe, value in trained.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="draws the flips (and the audit's folds)")
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"'{REAL}' is absent: the benchmark reads the shared real sets there")
    noise_rows(args.seed)
    cost_rows(ROOT)


if __name__ == "__main__":
    main()
