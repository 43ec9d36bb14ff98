"""Every claim the report states, recomputed from the raw files it was built from: the kept epoch and its rule, the
convergence epoch, the generalisation gap, the top confusion, the gradient range, the winner and its interval, the
pair p-values, and what it says about pretraining. Each doctored raw file must be caught."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from facelab.evaluation.scores import class_report, confusion
from facelab.evaluation.stats import BOOTSTRAP, SIGNIFICANCE, bootstrap_ci, holm, paired_bootstrap_diff
from facelab.reporting.document import write_report
from facelab.reporting.results import load_experiment

CLASSES = ["angry", "happy", "sad"]
RECIPES = ("resnet18_scratch", "resnet18_pretrained")


def experiment_files(root: Path, recipe: str, wrong: int, val_f1: list[float], weights: str, grad_max: float) -> None:
    """One experiment's files as train and evaluate write them, self-consistent: 60 test images, `wrong` of them
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
    out, plots = root / "metrics" / "emotion", root / "plots" / "emotion" / recipe
    out.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    for name, data in ((f"{recipe}.json", metrics), (f"{recipe}_details.json", details),
                       (f"{recipe}_classes.json", class_report(actual, predicted, tuple(CLASSES)))):
        (out / name).write_text(json.dumps(data))
    history.to_csv(plots / "history.csv", index=False)
    zs = (raw - raw.mean()) / raw.std()
    (plots / "confusion.json").write_text(json.dumps({"classes": CLASSES, "raw": raw.tolist(), "zscore": zs.tolist()}))
    pd.DataFrame({"actual": [CLASSES[i] for i in actual],
                  "predicted": [CLASSES[i] for i in predicted]}).to_csv(plots / "predictions.csv", index=False)


def build(root: Path, pretrained_weights: str = "imagenet") -> str:
    experiment_files(root, "resnet18_scratch", 6, [0.5, 0.8, 0.9, 0.85], "none", 2.5)
    experiment_files(root, "resnet18_pretrained", 20, [0.4, 0.6, 0.7, 0.75, 0.74], pretrained_weights, 4.0)
    write_report([load_experiment("emotion", r, root) for r in RECIPES], root / "reports", root / "zscore")
    return (root / "reports" / "report.md").read_text()


def raw_files(root: Path) -> dict:
    def read(recipe, name):
        return json.loads((root / "metrics" / "emotion" / f"{recipe}{name}.json").read_text())
    plots = {r: root / "plots" / "emotion" / r for r in RECIPES}
    return {r: {"history": pd.read_csv(plots[r] / "history.csv"), "metrics": read(r, ""), "details": read(r, "_details"),
                "confusion": json.loads((plots[r] / "confusion.json").read_text()),
                "predictions": pd.read_csv(plots[r] / "predictions.csv")} for r in RECIPES}


def problems(report: str, raw: dict) -> list[str]:
    """Each stated claim that the raw files contradict."""
    found = []
    for recipe, files in raw.items():
        history = files["history"]
        section = report[report.index(f"### emotion / {recipe}"):]
        epoch, rule = re.search(r"kept epoch (\d+) \((\w+):", section).groups()
        best = history.sort_values(["val/macro_f1", "val/loss"], ascending=[False, True]).iloc[0]
        if rule != files["details"]["select_by"] or int(epoch) != int(best["epoch"]):
            found.append(f"kept epoch {epoch} ({rule}) of {recipe}; the history's best val macro F1 is epoch "
                         f"{int(best['epoch'])}")
    for recipe, epoch, of in re.findall(r"(\w+) epoch (\d+) of (\d+) \(best val accuracy", report):
        history = raw[recipe]["history"]
        first = int(history.loc[history["val/acc"] >= 0.95 * history["val/acc"].max(), "epoch"].iloc[0])
        if (int(epoch), int(of)) != (first, int(history["epoch"].max())):
            found.append(f"convergence of {recipe}: epoch {epoch}, the history says {first}")
    gaps = re.search(r"\(train - val: (.*?)\)\.", report).group(1)
    for recipe, gap in re.findall(r"(\w+) ([+-][\d.]+)", gaps):
        metrics = raw[recipe]["metrics"]
        if abs(float(gap) - (metrics["train"]["acc"] - metrics["val"]["acc"])) > 5e-4:
            found.append(f"gap of {recipe}: {gap}")
    cells = {}
    for recipe, files in raw.items():
        counts = np.asarray(files["confusion"]["raw"], dtype=float)
        z = (counts - counts.mean()) / counts.std()
        np.fill_diagonal(z, -np.inf)
        i, j = np.unravel_index(np.argmax(z), z.shape)
        cells[recipe] = (f"{CLASSES[i]} -> {CLASSES[j]}", z[i, j])
    worst = max(cells, key=lambda r: cells[r][1])
    top = re.search(r"The most over-represented confusion is (.+?) \(z-score ([\d.-]+) in (\w+)\)", report)
    if top is None or (top.group(1), top.group(3)) != (cells[worst][0], worst) or \
            abs(float(top.group(2)) - cells[worst][1]) > 0.005:
        found.append(f"top confusion: report {top and top.groups()}, files {cells[worst]} in {worst}")
    span = re.search(r"gradient norms stayed in \[([\d.e-]+), ([\d.e-]+)\]", report).groups()
    norms = [files["details"]["health"][k] for files in raw.values() for k in ("min_grad_norm", "max_grad_norm")]
    if [float(x) for x in span] != [float(f"{min(norms):.3g}"), float(f"{max(norms):.3g}")]:
        found.append(f"gradient range {span}, files {min(norms)}, {max(norms)}")
    found += verdict_problems(report, raw)
    found += pretraining_problems(report, raw)
    return found


def verdict_problems(report: str, raw: dict) -> list[str]:
    index = {name: i for i, name in enumerate(CLASSES)}
    actual = raw[RECIPES[0]]["predictions"]["actual"].map(index).to_numpy()
    predicted = {r: raw[r]["predictions"]["predicted"].map(index).to_numpy() for r in RECIPES}
    f1 = {r: f1_score(actual, predicted[r], average="macro") for r in RECIPES}
    winner = max(f1, key=f1.get)
    other = next(r for r in RECIPES if r != winner)
    diff = paired_bootstrap_diff(actual, predicted[other], predicted[winner], 3, "macro_f1", **BOOTSTRAP)
    lo, hi = bootstrap_ci(actual, predicted[winner], 3, "macro_f1", **BOOTSTRAP)
    claim = f"test macro F1 {f1[winner]:.3f} [{lo:.3f}, {hi:.3f}]"
    verdict = f"{winner} is the best recipe" if diff["p_value"] < SIGNIFICANCE else "cannot be told apart"
    found = [] if verdict in report and claim in report else [f"verdict: expected '{verdict}' with '{claim}'"]
    row = re.search(r"\| (\w+) vs (\w+) \| ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\] \| ([^|]+) \| ([^|]+) \| (\w+) \|",
                    report)
    b, a, d, d_lo, d_hi, p, p_holm, different = (x.strip() for x in row.groups())
    pair = paired_bootstrap_diff(actual, predicted[a], predicted[b], 3, "macro_f1", **BOOTSTRAP)
    shown = "< 0.0005" if pair["p_value"] == 0 else f"{pair['p_value']:.2g}"
    if (float(d), float(d_lo), float(d_hi)) != tuple(round(v, 3) for v in (pair["diff"], *pair["ci"])) or p != shown:
        found.append(f"pair row {row.group(0)}; files: {pair}")
    if p_holm != ("< 0.0005" if holm([pair["p_value"]])[0] == 0 else f"{holm([pair['p_value']])[0]:.2g}"):
        found.append(f"Holm p {p_holm}")
    excludes_zero = float(d_lo) > 0 or float(d_hi) < 0
    if (different == "yes") != excludes_zero:
        found.append(f"the pair's CI [{d_lo}, {d_hi}] and its verdict '{different}' disagree")
    return found


def pretraining_problems(report: str, raw: dict) -> list[str]:
    starts = {raw[r]["details"]["recipe"]["weights"] for r in RECIPES}
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


def edit_history(raw):  # the best val macro F1 moves to epoch 2
    raw["resnet18_scratch"]["history"].loc[1, "val/macro_f1"] = 0.99


def edit_convergence(raw):
    raw["resnet18_pretrained"]["history"].loc[2, "val/acc"] = 0.76


def edit_gap(raw):
    raw["resnet18_scratch"]["metrics"]["train"]["acc"] = 0.7


def edit_confusion(raw):
    raw["resnet18_scratch"]["confusion"]["raw"][2][1] = 40  # now the most over-represented confusion of all


def edit_health(raw):
    raw["resnet18_scratch"]["details"]["health"]["max_grad_norm"] = 9.0


def edit_predictions(raw):
    raw["resnet18_scratch"]["predictions"].loc[20:45, "predicted"] = "sad"


def edit_weights(raw):
    raw["resnet18_pretrained"]["details"]["recipe"]["weights"] = "none"


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
