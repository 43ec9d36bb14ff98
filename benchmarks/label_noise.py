"""The label audit on deliberately flipped labels: precision and recall of the flips it flags, and its cost against
one training. Prints figures; nothing is written to the repository.

    python3 -m benchmarks.label_noise

Each set is a real class folder read in place from ../shared/data/real/ by prepare's own folder reader and decoder
(64 px). For each share, that share of the images (drawn from --seed) gets one of the other classes, drawn
uniformly; facelab.evaluation.audit.audit_images then audits the flipped labels.
- precision: flagged images that were flipped; recall: flipped images that were flagged. The sets' own label errors
  (FER2013 has many) count against precision: they are flagged but were not flipped here. To tell them apart, the
  unflipped set is audited too (share 0.00): its flags are the set's own suspects (`own`).
- `--probabilities cnn`: the same flips and filter, but each image's out-of-sample probabilities come from a
  training run (facelab's own train_loop, `--recipe` as params.yaml sets it, `--epochs`) on the other folds (85% of
  them to train, 15% to keep the best epoch and fit a temperature), not from the audit's HOG heads: how much better
  probabilities would help, at k trainings' cost. Only the 5% share by default (`--shares`).
- cost: the audit's seconds (features, 5 heads, cleanlab) beside one training's train_seconds as the run stage
  recorded it (metrics/<task>/<recipe>/seed<first seed>.json, the generated data in the working tree), and the
  audit's seconds on the prepared generated data the pipeline audits (data/prepared/<task>, when present).
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split

from facelab import paths
from facelab.data.batches import Inputs, SplitData
from facelab.data.sources import folder_images
from facelab.evaluation.audit import FOLDS, audit_images, ranked_issues
from facelab.evaluation.calibration import fit_temperature, scaled_probabilities
from facelab.evaluation.forward import forward_logits
from facelab.models import trained_model
from facelab.params import parse_params, raw_params
from facelab.training import loop

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


# flags(pixels, labels, filed, classes, files, name): the labels audited, and the set's labels as filed
Flags = Callable[[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], list[str], str],
                 tuple[list[int], list[float], float]]


def hog_flags(seed: int) -> Flags:
    """The audit itself (facelab.evaluation.audit.audit_images): flagged rows, most likely first, their
    self-confidence, and the audit's seconds."""
    def flags(pixels, labels, filed, classes, files, name):
        record = audit_images(pixels, labels, classes, files, seed, name)
        issues = record.results.issues
        return [issue.row for issue in issues], [issue.self_confidence for issue in issues], record.results.seconds
    return flags


def cnn_flags(seed: int, recipe_name: str, epochs: int, threads: int, save: Path | None) -> Flags:
    """cleanlab's flags on out-of-sample probabilities from k trainings of recipe_name (cnn_probabilities).
    save: a folder to keep each audit's labels and probabilities in (<set>-<n flipped>.npz), to try filters on."""
    raw = raw_params(ROOT / "params.yaml")
    raw["models"][recipe_name]["epochs"] = epochs
    raw["train"].update(threads=threads, device="cpu")
    raw["wandb"]["mode"] = "disabled"
    params = parse_params(raw)

    def flags(pixels, labels, filed, classes, files, name):
        start = time.perf_counter()
        probabilities = cnn_probabilities(pixels, labels, classes, seed, params, recipe_name)
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            np.savez(save / f"{name}-{int((labels != filed).sum())}.npz", labels=labels, original=filed,
                     probabilities=probabilities)
        ranked = ranked_issues(labels, probabilities)
        return (ranked.tolist(), [float(probabilities[i, labels[i]]) for i in ranked],
                time.perf_counter() - start)
    return flags


def cnn_probabilities(pixels: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], seed: int, params,
                      recipe_name: str) -> np.ndarray:
    """(n, classes): each image's temperature-scaled softmax from a model trained on the other FOLDS - 1 folds."""
    recipe, settings = params.models[recipe_name], params.train
    probabilities = np.zeros((len(labels), len(classes)))
    images = torch.from_numpy(np.ascontiguousarray(pixels))
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    for k, (rest, held) in enumerate(folds):
        train, val = train_test_split(rest, test_size=0.15, stratify=labels[rest], random_state=seed)
        splits = {name: SplitData(images[index], targets[index]) for name, index in
                  (("train", train), ("val", val), ("test", held))}
        result = loop.train_loop(f"fold {k}", recipe, settings, seed, splits, classes)
        model = trained_model(recipe, len(classes), result.state_dict)
        batch = settings.eval_batch_size
        logits = {name: forward_logits(model, Inputs(splits[name], None, batch, flips=False), batch)
                  for name in ("val", "test")}
        temperature = fit_temperature(logits["val"], labels[val])
        probabilities[held] = scaled_probabilities(logits["test"], temperature).numpy()
        accuracy = float((logits["test"].argmax(1).numpy() == labels[held]).mean())
        print(f"  fold {k}: {len(train)} train, {len(val)} val, {len(held)} held out; out-of-sample accuracy "
              f"(given labels) {accuracy:.3f}, kept epoch {result.summary['best_epoch']}, T {temperature:.2f}, "
              f"{result.summary['train_seconds']:.0f} s", flush=True)
    return probabilities


def noise_rows(flags: Flags, seed: int, sets: list[str], shares: tuple[float, ...], clean: bool) -> None:
    """Per set and share: flips, flags, precision and recall; then how much of the imprecision is the set's own:
    `own` the flagged images the audit also flags with no flip at all (the same folds), `precision new` the
    flipped share of the other flags, and `precision@k` the flipped share of the k least self-confident flags,
    k the number flipped (how well the ranking puts the flips first)."""
    print("set              share flipped flagged precision recall   own precision_new precision@k audit_s")
    for name in sets:
        classes = SETS[name]
        images = folder_images(REAL / name, classes, IMG_SIZE)
        pixels, files, labels = np.asarray(images.pixels), list(images.files), np.asarray(images.labels)
        own: set[int] = set()
        if clean:
            rows, _, seconds = flags(pixels, labels, labels, classes, files, name)
            own = set(rows)
            print(f"{name:16} {0.0:5.2f} {0:7d} {len(own):7d} {'':>9} {'':>6} {len(own):5d} {'':>13} {'':>11} "
                  f"{seconds:7.2f}", flush=True)
        for share in shares:
            noisy, flipped = flip(labels, share, len(classes), seed)
            rows, confidence, seconds = flags(pixels, noisy, labels, classes, files, name)
            flagged, flips = set(rows), set(flipped.tolist())
            hits, new = len(flagged & flips), flagged - own
            ranked = [row for _, row in sorted(zip(confidence, rows))][:len(flips)]
            print(f"{name:16} {share:5.2f} {len(flipped):7d} {len(flagged):7d} {hits / max(len(flagged), 1):9.3f} "
                  f"{hits / len(flipped):6.3f} {len(flagged & own) if clean else '':>5} "
                  f"{format(len(new & flips) / max(len(new), 1), '.3f') if clean else '':>13} "
                  f"{len(set(ranked) & flips) / len(flips):11.3f} {seconds:7.2f}", flush=True)


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
    parser.add_argument("--probabilities", choices=("hog", "cnn"), default="hog",
                        help="hog: the audit's own heads (default); cnn: k trainings of --recipe")
    parser.add_argument("--sets", nargs="+", choices=tuple(SETS), default=list(SETS))
    parser.add_argument("--shares", nargs="+", type=float, help=f"default: {SHARES} (hog), 0.05 (cnn)")
    parser.add_argument("--clean", action=argparse.BooleanOptionalAction, default=None,
                        help="also audit the unflipped set (the `own` columns); default: on for hog, off for cnn")
    parser.add_argument("--recipe", default="resnet18_scratch", help="cnn: the params.yaml recipe trained per fold")
    parser.add_argument("--epochs", type=int, default=15, help="cnn: epochs per fold")
    parser.add_argument("--threads", type=int, default=2, help="cnn: torch threads")
    parser.add_argument("--save", type=Path, help="cnn: keep each audit's labels and probabilities here (.npz)")
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"'{REAL}' is absent: the benchmark reads the shared real sets there")
    cnn = args.probabilities == "cnn"
    flags = cnn_flags(args.seed, args.recipe, args.epochs, args.threads, args.save) if cnn else hog_flags(args.seed)
    shares = tuple(args.shares) if args.shares else ((0.05,) if cnn else SHARES)
    noise_rows(flags, args.seed, args.sets, shares, not cnn if args.clean is None else args.clean)
    if not cnn:
        cost_rows(ROOT)


if __name__ == "__main__":
    main()
