"""Stage report: read metrics/ and plots/ of the six experiments; write reports/index.html and its figures."""
from __future__ import annotations

import argparse
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from stages.files import atomic_dir, read_json  # noqa: E402
from stages.params import RECIPES, TASKS  # noqa: E402


def load_experiment(task: str, recipe: str, root: Path = Path(".")) -> dict:
    plots = root / "plots" / task / recipe
    return {
        "task": task, "recipe": recipe,
        "metrics": read_json(root / "metrics" / task / f"{recipe}.json"),
        "classes": read_json(root / "metrics" / task / f"{recipe}_classes.json"),
        "history": pd.read_csv(plots / "history.csv"),
        "confusion": read_json(plots / "confusion.json"),
    }


def run(experiments: list[dict], out_dir: str | Path) -> None:
    """Render every experiment's figures and the page into out_dir, atomically."""
    with atomic_dir(out_dir) as tmp:
        (tmp / "figures").mkdir()
        for exp in experiments:
            stem = f"{exp['task']}_{exp['recipe']}"
            plot_curves(exp["history"], tmp / "figures" / f"{stem}_curves.png")
            plot_confusion(exp["confusion"], tmp / "figures" / f"{stem}_confusion.png")
        (tmp / "index.html").write_text(render_html(experiments))


def plot_curves(history: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, metric in zip(axes, ("loss", "acc")):
        ax.plot(history["epoch"], history[f"train_{metric}"], "o-", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], "s-", label="val")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_confusion(confusion: dict, path: Path) -> None:
    classes = confusion["classes"]
    fig, axes = plt.subplots(1, 2, figsize=(4 + 2 * len(classes), 2 + len(classes)))
    for ax, key, fmt in zip(axes, ("raw", "zscore"), ("{:.0f}", "{:.2f}")):
        matrix = np.asarray(confusion[key], dtype=float)
        ax.imshow(matrix, cmap="Blues" if key == "raw" else "RdBu_r")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(classes)), classes, rotation=30)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title("confusion (counts)" if key == "raw" else "confusion (z-score)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def metrics_table(experiments: list[dict]) -> str:
    head = ("<tr><th>task</th><th>recipe</th><th>test acc</th><th>test macro F1</th><th>test loss</th>"
            "<th>val acc</th><th>train acc</th><th>best epoch</th><th>train s</th><th>images/s</th></tr>")
    rows = [
        f"<tr><td>{e['task']}</td><td>{e['recipe']}</td><td>{m['test']['acc']:.4f}</td>"
        f"<td>{m['test']['macro_f1']:.4f}</td><td>{m['test']['loss']:.4f}</td><td>{m['val']['acc']:.4f}</td>"
        f"<td>{m['train']['acc']:.4f}</td><td>{m['best_epoch']}/{m['epochs']}</td>"
        f"<td>{m['train_seconds']:.1f}</td><td>{m['images_per_second']:.1f}</td></tr>"
        for e in experiments for m in [e["metrics"]]]
    return f"<table>{head}{''.join(rows)}</table>"


def class_table(report: dict, classes: list[str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{report[c]['precision']:.3f}</td>"
                   f"<td>{report[c]['recall']:.3f}</td><td>{report[c]['f1-score']:.3f}</td>"
                   f"<td>{report[c]['support']:.0f}</td></tr>" for c in classes)
    return ("<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
            f"{rows}</table>")


def render_html(experiments: list[dict]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>facelab report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style>",
             "</head><body><h1>facelab: six experiments</h1><h2>Test metrics</h2>",
             metrics_table(experiments)]
    for task in dict.fromkeys(e["task"] for e in experiments):
        parts.append(f"<h2 id='{task}'>Task: {task}</h2>")
        for exp in (e for e in experiments if e["task"] == task):
            stem = f"{task}_{exp['recipe']}"
            parts += [f"<h3 id='{stem}'>{task} / {exp['recipe']}</h3>",
                      f"<img src='figures/{stem}_curves.png' alt='{stem} curves'>",
                      f"<img src='figures/{stem}_confusion.png' alt='{stem} confusion'>",
                      class_table(exp["classes"], exp["confusion"]["classes"])]
    parts.append("</body></html>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    experiments = [load_experiment(task, recipe) for task in TASKS for recipe in RECIPES]
    run(experiments, args.out)
    print(f"report: {args.out}/index.html ({len(experiments)} experiments)")


if __name__ == "__main__":
    main()
