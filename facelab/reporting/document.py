"""The comparison report: the experiments' metrics and plots in, the document (blocks; see reporting.render) and its figures out."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from facelab import paths
from facelab.files import atomic_dir, read_json
from facelab.reporting.comparison import compare_task
from facelab.reporting.figures import plot_confusion, plot_curves, plot_zscore
from facelab.reporting.render import render_html, render_markdown

HISTOGRAMS = ("gradients", "parameters")  # train-stage figures, shown when the run wrote them
SECTIONS = (("log", "Epoch log"), ("summary", "Run summary"),  # (anchor suffix, title), in the assignment's order
            ("confusion", "Confusion matrix: counts and z-scores"),
            ("health", "Gradient and parameter distributions"),
            ("curves", "Loss and accuracy curves"), ("classes", "Per-class precision, recall and F1"))
AVERAGES = ("macro avg", "weighted avg")


def load_experiment(task: str, recipe: str, root: Path = Path(".")) -> dict:
    """One experiment's files as a dict; the health block and histogram figures may be absent."""
    plots = paths.plots(task, recipe, root)
    scored = paths.evaluate_outputs(task, recipe, root)
    metrics = read_json(scored["metrics"])
    return {
        "task": task, "recipe": recipe, "metrics": metrics, "health": metrics.get("health"),
        "classes": read_json(scored["classes"]),
        "history": pd.read_csv(plots / "history.csv"),
        "confusion": read_json(plots / "confusion.json"),
        "images": {name: plots / f"{name}.png" for name in HISTOGRAMS if (plots / f"{name}.png").is_file()},
    }


def write_report(experiments: list[dict], out_dir: str | Path, zscore_dir: str | Path) -> dict[str, list[str]]:
    """Write the report and the z-score plots, each folder atomically; return each task's comparison."""
    comparisons = {task: compare_task([e for e in experiments if e["task"] == task])
                   for task in dict.fromkeys(e["task"] for e in experiments)}
    with atomic_dir(out_dir) as tmp:
        for exp in experiments:
            write_figures(exp, tmp / "figures")
        blocks = document(experiments, comparisons)
        (tmp / "index.html").write_text(render_html(blocks))
        (tmp / "report.md").write_text(render_markdown(blocks))
    with atomic_dir(zscore_dir) as tmp:
        for exp in experiments:
            plot_zscore(exp["confusion"], tmp / exp["task"] / f"{exp['recipe']}.png",
                        f"{exp['task']}/{exp['recipe']}: confusion z-score")
    return comparisons


def stem(exp: dict) -> str:
    return f"{exp['task']}_{exp['recipe']}"


def write_figures(exp: dict, folder: Path) -> None:
    plot_curves(exp["history"], folder / f"{stem(exp)}_curves.png")
    plot_confusion(exp["confusion"], folder / f"{stem(exp)}_confusion.png")
    for name, source in exp["images"].items():
        shutil.copyfile(source, folder / f"{stem(exp)}_{name}.png")


def document(experiments: list[dict], comparisons: dict[str, list[str]]) -> list[tuple]:
    blocks = [("heading", 1, f"facelab: {len(experiments)} experiments", "top"),
              ("heading", 2, "Test metrics", "test_metrics"), metrics_table(experiments)]
    for task, sentences in comparisons.items():
        blocks.append(("heading", 2, f"Task: {task}", task))
        for exp in (e for e in experiments if e["task"] == task):
            blocks += experiment_blocks(exp)
        blocks += [("heading", 3, f"{task}: comparison", f"{task}_comparison"), ("list", sentences)]
    return blocks


def experiment_blocks(exp: dict) -> list[tuple]:
    """One recipe's subsection: its sections in the order of SECTIONS."""
    content = {"log": [log_table(exp["history"])], "summary": summary_blocks(exp),
               "confusion": [("image", f"figures/{stem(exp)}_confusion.png", f"{stem(exp)} confusion")],
               "health": health_blocks(exp), "curves": curve_blocks(exp), "classes": [class_table(exp)]}
    blocks = [("heading", 3, f"{exp['task']} / {exp['recipe']}", stem(exp))]
    for key, title in SECTIONS:
        blocks += [("heading", 4, title, f"{stem(exp)}_{key}"), *content[key]]
    return blocks


def log_table(history: pd.DataFrame) -> tuple:
    rows = [[str(int(row.epoch)), *(f"{row[c]:.4f}" for c in history.columns[1:])] for _, row in history.iterrows()]
    return ("table", list(history.columns), rows)


def summary_blocks(exp: dict) -> list[tuple]:
    """Last epoch from the history; the kept model (lowest val loss) from the metrics; then time and speed."""
    metrics, last = exp["metrics"], exp["history"].iloc[-1]
    epoch, best = int(last["epoch"]), metrics["best_epoch"]
    rows = [[f"{split}, last epoch ({epoch})", f"{last[f'{split}/loss']:.4f}", f"{last[f'{split}/acc']:.4f}", ""]
            for split in ("train", "val")]
    rows += [[f"{split}, kept model (epoch {best})", *(f"{metrics[split][k]:.4f}" for k in ("loss", "acc", "macro_f1"))]
             for split in ("train", "val", "test")]
    return [("table", ["", "loss", "accuracy", "macro F1"], rows),
            ("text", f"Trained {metrics['epochs']} epochs in {metrics['train_seconds']:.1f} s "
                     f"({metrics['images_per_second']:.1f} images/second); best epoch {best}.")]


def health_blocks(exp: dict) -> list[tuple]:
    images = [("image", f"figures/{stem(exp)}_{name}.png", f"{stem(exp)} {name}") for name in exp["images"]]
    health = exp["health"]
    if not health:
        return [("text", "Gradient health was not recorded for this run."), *images]
    norms = [health.get(key) for key in ("min_grad_norm", "max_grad_norm")]
    span = ", ".join("n/a" if n is None else f"{n:.3g}" for n in norms)
    frozen = health.get("frozen_layers") or []
    items = [f"gradient norm of trained layers (min, max): {span}",
             f"vanishing gradients: {'yes' if health.get('vanishing_gradients') else 'no'}",
             f"exploding gradients: {'yes' if health.get('exploding_gradients') else 'no'}",
             f"frozen layers ({len(frozen)}): {', '.join(frozen) if frozen else 'none'}"]
    return [("list", items), *images]


def curve_blocks(exp: dict) -> list[tuple]:
    last = exp["history"].iloc[-1]
    gap = {m: last[f"train/{m}"] - last[f"val/{m}"] for m in ("loss", "acc")}
    return [("image", f"figures/{stem(exp)}_curves.png", f"{stem(exp)} curves"),
            ("text", f"Generalisation gap at the last epoch (train - val): accuracy {gap['acc']:+.4f}, "
                     f"loss {gap['loss']:+.4f}.")]


def class_table(exp: dict) -> tuple:
    report = exp["classes"]
    names = [*exp["confusion"]["classes"], *(a for a in AVERAGES if a in report)]
    rows = [[name, *(f"{report[name][k]:.3f}" for k in ("precision", "recall", "f1-score")),
             f"{report[name]['support']:.0f}"] for name in names]
    return ("table", ["class", "precision", "recall", "F1", "support"], rows)


def metrics_table(experiments: list[dict]) -> tuple:
    rows = [[e["task"], e["recipe"], *(f"{m['test'][k]:.4f}" for k in ("acc", "macro_f1", "loss")),
             f"{m['val']['acc']:.4f}", f"{m['train']['acc']:.4f}", f"{m['best_epoch']}/{m['epochs']}"]
            for e in experiments for m in [e["metrics"]]]
    return ("table", ["task", "recipe", "test acc", "test macro F1", "test loss", "val acc", "train acc",
                      "best epoch"], rows)
