"""Every claim the report states, recomputed from the raw files it was built from (three seeds per recipe): each
run's kept epoch and its rule, the convergence epochs, the mean generalisation gap, the top confusion of the seeds'
summed counts, the gradient range, the winner by its mean and the interval over the seeds, the pair p-values, and
what it says about pretraining. Each doctored raw file must be caught."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import f1_score

from facelab import paths
from facelab.evaluation.scores import class_report, confusion
from facelab.evaluation.stats import BOOTSTRAP, SIGNIFICANCE, bootstrap_ci, holm, paired_bootstrap_diff
from facelab.reporting.document import write_report
from facelab.reporting.results import load_experiment

CLASSES = ["angry", "happy", "sad"]
RECIPES = ("resnet18_scratch", "resnet18_pretrained")
SEEDS = (42, 43, 44)


def experiment_files(root: Path, recipe: str, seed: int, wrong: int, val_f1: list[float], weights: str,
                     grad_max: float) -> None:
    """One run's files as train and evaluate write them, self-consistent: 60 test images, `wrong` of them
    misclassified (as the next class), history with a known best val macro F1."""
    actual = np.repeat([0, 1, 2], 20)
    predicted = actual.copy()
    predicted[:wrong] = (actual[:wrong] + 1) % 3
    epochs = np.arange(1, len(val_f1) + 1)
    history = pd.DataFrame({"epoch": epochs, "train/loss": 1 / epochs, "train/acc": 0.5 + 0.1 * epochs,
                            "val/loss": 1.5 / epochs, "val/acc": np.array(val_f1) + 0.01,
                            "val/macro_f1": val_f1, "lr": 0.001})
    best = int(history.loc[history["val/macro_f1"].idxmax(), "epoch"])
    acc, f1 = float((actual == predicted).mean()), float(f1_score(actual, predicted, average="macro"))
    test = {"acc": acc, "acc_ci": list(bootstrap_ci(actual, predicted, 3, "acc", **BOOTSTRAP)), "macro_f1": f1,
            "macro_f1_ci": list(bootstrap_ci(actual, predicted, 3, "macro_f1", **BOOTSTRAP)), "loss": 0.5}
    metrics = {"test": test, "val": {"loss": 0.4, "acc": 0.8, "macro_f1": 0.8},
               "train": {"loss": 0.2, "acc": 0.95 if weights == "imagenet" else 0.9, "macro_f1": 0.9},
               "best_epoch": best, "train_seconds": 10.0, "collapsed": False,
               "weights_verified": True if weights == "imagenet" else None,
               "vanishing_gradients": False, "exploding_gradients": False}
    health = {"min_grad_norm": 0.01, "max_grad_norm": grad_max, "vanishing_gradients": False,
              "exploding_gradients": False, "frozen_layers": []}
    details = {"test_images": 60, "epochs": len(val_f1), "images_per_second": 100.0, "health": health,
               "collapse": {"collapsed": False, "reason": None, "top_class_share": 0.4}, "wandb": None,
               "weights": {"weights": weights, "file": "resnet18-f37072fd.pth" if weights == "imagenet" else None,
                           "sha256": None, "verified": True if weights == "imagenet" else None},
               "recipe": {"arch": "resnet18", "weights": weights, "frozen": [], "lr": 0.001, "optimizer": "adam"},
               "select_by": "val_macro_f1", "tta_flip": False, "augment": None}
    raw = confusion(actual, predicted, 3)
    scored, plots = paths.evaluate_outputs("emotion", recipe, seed, root), paths.plots("emotion", recipe, seed, root)
    scored["metrics"].parent.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    for name, data in (("metrics", metrics), ("details", details),
                       ("classes", class_report(actual, predicted, tuple(CLASSES)))):
        scored[name].write_text(json.dumps(data))
    history.to_csv(plots / "history.csv", index=False)
    zs = (raw - raw.mean()) / raw.std()
    (plots / "confusion.json").write_text(json.dumps({"classes": CLASSES, "raw": raw.tolist(), "zscore": zs.tolist()}))
    pd.DataFrame({"actual": [CLASSES[i] for i in actual],
                  "predicted": [CLASSES[i] for i in predicted]}).to_csv(plots / "predictions.csv", index=False)


def build(root: Path, pretrained_weights: str = "imagenet") -> str:
    for seed, wrong_scratch, wrong_pretrained in zip(SEEDS, (6, 8, 5), (20, 24, 18)):
        experiment_files(root, "resnet18_scratch", seed, wrong_scratch, [0.5, 0.8, 0.9, 0.85], "none", 2.5)
        experiment_files(root, "resnet18_pretrained", seed, wrong_pretrained, [0.4, 0.6, 0.7, 0.75, 0.74 + seed / 1e3],
                         pretrained_weights, 4.0 + seed - 42)
    write_report([load_experiment("emotion", r, list(SEEDS), root) for r in RECIPES], root / "reports",
                 root / "zscore")
    return (root / "reports" / "report.md").read_text()


def raw_files(root: Path) -> dict:
    """recipe -> seed -> that run's files."""
    def run_files(recipe: str, seed: int) -> dict:
        scored, plots = (paths.evaluate_outputs("emotion", recipe, seed, root),
                         paths.plots("emotion", recipe, seed, root))
        return {"history": pd.read_csv(plots / "history.csv"), "metrics": json.loads(scored["metrics"].read_text()),
                "details": json.loads(scored["details"].read_text()),
                "confusion": json.loads(scored["confusion"].read_text()),
                "predictions": pd.read_csv(scored["predictions"])}
    return {r: {seed: run_files(r, seed) for seed in SEEDS} for r in RECIPES}


def problems(report: str, raw: dict) -> list[str]:
    """Each stated claim that the raw files contradict."""
    found = []
    for recipe, runs in raw.items():
        section = report[report.index(f"### emotion / {recipe}"):]
        kept = re.findall(r"kept epoch (\d+) \((\w+):", section)[:len(runs)]  # one per seed, in seed order
        for (epoch, rule), files in zip(kept, runs.values()):
            history = files["history"]
            best = history.sort_values(["val/macro_f1", "val/loss"], ascending=[False, True]).iloc[0]
            if rule != files["details"]["select_by"] or int(epoch) != int(best["epoch"]):
                found.append(f"kept epoch {epoch} ({rule}) of {recipe}; the history's best val macro F1 is epoch "
                             f"{int(best['epoch'])}")
    for recipe, epochs, of in re.findall(r"(\w+) epoch [\d.]+ on average \(([\d, ]+)\) of (\d+) \(best val accuracy",
                                         report):
        histories = [files["history"] for files in raw[recipe].values()]
        first = [int(h.loc[h["val/acc"] >= 0.95 * h["val/acc"].max(), "epoch"].iloc[0]) for h in histories]
        if ([int(e) for e in epochs.split(", ")], int(of)) != (first, max(int(h["epoch"].max()) for h in histories)):
            found.append(f"convergence of {recipe}: epochs {epochs}, the histories say {first}")
    gaps = re.search(r"\(train - val: (.*?)\)\.", report)
    assert gaps, "the report states no train - val gaps"
    for recipe, gap in re.findall(r"(\w+) ([+-][\d.]+)", gaps.group(1)):
        mean = np.mean([f["metrics"]["train"]["acc"] - f["metrics"]["val"]["acc"] for f in raw[recipe].values()])
        if abs(float(gap) - mean) > 5e-4:
            found.append(f"gap of {recipe}: {gap}")
    cells = {}
    for recipe, runs in raw.items():
        counts = np.sum([np.asarray(f["confusion"]["raw"], dtype=float) for f in runs.values()], axis=0)
        errors = ~np.eye(len(counts), dtype=bool)  # judged among the errors alone: the diagonal is left out
        z = np.full_like(counts, -np.inf)
        z[errors] = (counts[errors] - counts[errors].mean()) / counts[errors].std()
        i, j = np.unravel_index(np.argmax(z), z.shape)
        cells[recipe] = (f"{CLASSES[i]} -> {CLASSES[j]}", z[i, j])
    worst = max(cells, key=lambda r: cells[r][1])
    top = re.search(r"The most over-represented confusion is (.+?) \(z-score ([\d.-]+) in (\w+)\)", report)
    if top is None or (top.group(1), top.group(3)) != (cells[worst][0], worst) or \
            abs(float(top.group(2)) - cells[worst][1]) > 0.005:
        found.append(f"top confusion: report {top and top.groups()}, files {cells[worst]} in {worst}")
    stated = re.search(r"gradient norms stayed in \[([\d.e-]+), ([\d.e-]+)\]", report)
    assert stated, "the report states no gradient-norm range"
    span = stated.groups()
    norms = [f["details"]["health"][k] for runs in raw.values() for f in runs.values()
             for k in ("min_grad_norm", "max_grad_norm")]
    if [float(x) for x in span] != [float(f"{min(norms):.3g}"), float(f"{max(norms):.3g}")]:
        found.append(f"gradient range {span}, files {min(norms)}, {max(norms)}")
    found += verdict_problems(report, raw)
    found += pretraining_problems(report, raw)
    return found


def over_seeds(raw: dict, a: str, b: str) -> dict:
    """macro F1(b) - macro F1(a) over the seeds, recomputed here: each seed's paired bootstrap difference, their
    mean, and a t interval and p over the seeds (n - 1 degrees of freedom)."""
    index = {name: i for i, name in enumerate(CLASSES)}
    diffs = []
    for seed in SEEDS:
        actual = raw[a][seed]["predictions"]["actual"].map(index).to_numpy()
        ya, yb = (raw[r][seed]["predictions"]["predicted"].map(index).to_numpy() for r in (a, b))
        diffs.append(paired_bootstrap_diff(actual, ya, yb, 3, "macro_f1", **BOOTSTRAP)["diff"])
    mean, se = np.mean(diffs), np.std(diffs, ddof=1) / np.sqrt(len(diffs))
    half = scipy_stats.t.ppf(0.975, len(diffs) - 1) * se
    return {"diff": mean, "ci": (mean - half, mean + half), "p": 2 * scipy_stats.t.sf(abs(mean) / se, len(diffs) - 1)}


def verdict_problems(report: str, raw: dict) -> list[str]:
    index = {name: i for i, name in enumerate(CLASSES)}
    f1 = {r: [f1_score(f["predictions"]["actual"].map(index), f["predictions"]["predicted"].map(index),
                       average="macro") for f in raw[r].values()] for r in RECIPES}
    winner = max(f1, key=lambda r: np.mean(f1[r]))
    other = next(r for r in RECIPES if r != winner)
    found_over = over_seeds(raw, other, winner)
    claim = (f"test macro F1 {np.mean(f1[winner]):.3f} ± {np.std(f1[winner], ddof=1):.3f} (seeds "
             f"{', '.join(map(str, SEEDS))}: {', '.join(f'{v:.3f}' for v in f1[winner])})")
    verdict = f"{winner} is the best recipe" if found_over["p"] < SIGNIFICANCE else "cannot be told apart"
    found = [] if verdict in report and claim in report else [f"verdict: expected '{verdict}' with '{claim}'"]
    row = re.search(r"\| (\w+) vs (\w+) \| ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\] \| ([^|]+) \| ([^|]+) \| "
                    r"(\w+) \| ([^|]+) \| ([\d.]+) \((\w+)\) \|", report)
    assert row, "the report has no pairwise comparison row"
    b, a, d, d_lo, d_hi, p, p_holm, different, _, aso, ahead = (x.strip() for x in row.groups())
    pair = over_seeds(raw, a, b)
    if (float(d), float(d_lo), float(d_hi)) != tuple(round(v, 3) for v in (pair["diff"], *pair["ci"])) or \
            p != f"= {pair['p']:.2g}":
        found.append(f"pair row {row.group(0)}; files: {pair}")
    if p_holm != f"= {holm([pair['p']])[0]:.2g}":
        found.append(f"Holm p {p_holm}")
    excludes_zero = float(d_lo) > 0 or float(d_hi) < 0
    if (different == "yes") != excludes_zero:
        found.append(f"the pair's CI [{d_lo}, {d_hi}] and its verdict '{different}' disagree")
    if ahead != winner or not 0 <= float(aso) <= 1:
        found.append(f"ASO tested {ahead} as the better recipe (eps_min {aso}); the mean macro F1 says {winner}")
    return found


def pretraining_problems(report: str, raw: dict) -> list[str]:
    starts = {f["details"]["recipe"]["weights"] for r in RECIPES for f in raw[r].values()}
    claims_effect = bool(re.search(r"Starting from ImageNet weights (helps|hurts|makes no difference)", report))
    if claims_effect != (starts == {"imagenet", "none"}):
        return [f"pretraining: the report {'claims' if claims_effect else 'denies'} an effect; the models' "
                f"starting weights are {sorted(starts)}"]
    return []


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("claims")
    return root, build(root)


def test_every_claim_of_the_report_holds_against_its_raw_files(built):
    root, report = built
    assert "Starting from ImageNet weights hurts" in report and "is the best recipe" in report
    assert problems(report, raw_files(root)) == []


def edit_history(raw):  # the best val macro F1 of one seed moves to epoch 2
    raw["resnet18_scratch"][43]["history"].loc[1, "val/macro_f1"] = 0.99


def edit_convergence(raw):
    raw["resnet18_pretrained"][44]["history"].loc[2, "val/acc"] = 0.76


def edit_gap(raw):
    raw["resnet18_scratch"][42]["metrics"]["train"]["acc"] = 0.7


def edit_confusion(raw):
    raw["resnet18_scratch"][42]["confusion"]["raw"][2][1] = 40  # now the most over-represented confusion of all


def edit_health(raw):
    raw["resnet18_scratch"][44]["details"]["health"]["max_grad_norm"] = 9.0


def edit_predictions(raw):
    raw["resnet18_scratch"][43]["predictions"].loc[20:45, "predicted"] = "sad"


def edit_weights(raw):
    for files in raw["resnet18_pretrained"].values():
        files["details"]["recipe"]["weights"] = "none"


@pytest.mark.parametrize("doctor", [edit_history, edit_convergence, edit_gap, edit_confusion, edit_health,
                                    edit_predictions, edit_weights])
def test_a_doctored_raw_file_is_caught(built, doctor):
    root, report = built
    raw = raw_files(root)
    doctor(raw)
    assert problems(report, raw)


def test_no_pretraining_claim_when_no_model_started_from_imagenet(tmp_path):
    report = build(tmp_path, pretrained_weights="none")
    assert "Pretraining is not measured here: no two recipes of one architecture differ in their starting " \
           "weights (weights: none)." in report
    assert problems(report, raw_files(tmp_path)) == []
