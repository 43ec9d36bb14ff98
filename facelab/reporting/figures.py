"""Report figures: learning curves (every seed's) with the generalisation gap shaded, annotated confusion heatmaps
(counts, z-scores), test scores (a dot per seed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay

from facelab.names import key
from facelab.plotting import pyplot, save

CURVE_METRICS = (("loss", "loss"), ("acc", "accuracy"))


def plot_curves(histories: dict[int, pd.DataFrame], path: str | Path) -> None:
    """Train and val loss and accuracy per epoch, one pair of lines per seed (histories: seed -> history); the
    band between them is the generalisation gap. The title's gap is the mean over the seeds."""
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.2))
    several = len(histories) > 1
    for ax, (column, label) in zip(axes, CURVE_METRICS):
        gaps = []
        for i, (seed, history) in enumerate(histories.items()):
            epochs, train, val = history["epoch"], history[key("train", column)], history[key("val", column)]
            name = f" (seed {seed})" if several else ""
            ax.plot(epochs, train, "o-", color="C0", alpha=0.9 if not several else 0.6, markersize=3 if several else 6,
                    label=f"train{name}" if i == 0 or not several else None)
            ax.plot(epochs, val, "s-", color="C1", alpha=0.9 if not several else 0.6, markersize=3 if several else 6,
                    label=f"val{name}" if i == 0 or not several else None)
            ax.fill_between(epochs, train, val, color="grey", alpha=0.2 / len(histories),
                            label="gap (train - val)" if i == 0 else None)
            gaps.append(float(train.iloc[-1] - val.iloc[-1]))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        mean = f"mean over {len(gaps)} seeds " if several else ""
        ax.set_title(f"{label}: last-epoch gap {mean}{np.mean(gaps):+.3f}", fontsize=9 if several else None)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def heatmap(ax, matrix: np.ndarray, classes: list[str], zscore: bool) -> None:
    """One annotated matrix (scikit-learn's ConfusionMatrixDisplay), rows actual and columns predicted;
    z-scores on a scale centred at 0, so white means "the mean cell"."""
    limit = max(float(np.abs(matrix).max()), 1e-9)
    scale = {"vmin": -limit, "vmax": limit} if zscore else {"vmin": 0}
    shown = ConfusionMatrixDisplay(matrix, display_labels=classes).plot(
        ax=ax, cmap="RdBu_r" if zscore else "Blues", colorbar=False, xticks_rotation=30,
        values_format=".2f" if zscore else ".0f", im_kw=scale)
    top = limit if zscore else max(float(matrix.max()), 1e-9)
    for (i, j), text in np.ndenumerate(shown.text_):  # white on dark cells, at both ends of a diverging scale
        text.set_color("white" if abs(matrix[i, j]) / top > 0.6 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("confusion (z-score)" if zscore else "confusion (counts)")


def plot_confusion(confusion: dict, path: str | Path) -> None:
    """Counts and z-scores side by side, from confusion.json's {"classes", "raw", "zscore"}."""
    classes = confusion["classes"]
    fig, axes = pyplot().subplots(1, 2, figsize=(4 + 2 * len(classes), 2 + len(classes)))
    heatmap(axes[0], np.asarray(confusion["raw"], dtype=float), classes, zscore=False)
    heatmap(axes[1], np.asarray(confusion["zscore"], dtype=float), classes, zscore=True)
    fig.tight_layout()
    save(fig, path)


def plot_zscore(confusion: dict, path: str | Path, title: str = "") -> None:
    """The z-score matrix alone, as an image plot for `dvc plots diff`."""
    classes = confusion["classes"]
    fig, ax = pyplot().subplots(figsize=(2.5 + len(classes), 2 + len(classes)))
    heatmap(ax, np.asarray(confusion["zscore"], dtype=float), classes, zscore=True)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save(fig, path)


def plot_scores(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Grouped bars of test accuracy and macro F1 per recipe: with one seed whiskers at their 95% bootstrap
    intervals, with several the bar at the mean and a dot per seed. rows: leaderboard rows
    (reporting.comparison.leaderboard: "recipe", "experiment" (reporting.results.Experiment), "collapsed")."""
    fig, ax = pyplot().subplots(figsize=(2.2 + 1.6 * len(rows), 3.2))
    x = np.arange(len(rows))
    for offset, (metric, label) in zip((-0.18, 0.18), (("acc", "accuracy"), ("macro_f1", "macro F1"))):
        runs = [row["experiment"].runs for row in rows]
        values = np.array([np.mean([getattr(run.metrics.test, metric) for run in each]) for each in runs])
        if all(len(each) == 1 for each in runs):
            ci = np.array([getattr(each[0].metrics.test, f"{metric}_ci") or [v, v] for each, v in zip(runs, values)])
            errors = np.vstack([values - ci[:, 0], ci[:, 1] - values]).clip(min=0)
            ax.bar(x + offset, values, width=0.36, yerr=errors, capsize=4, label=label)
            continue
        bars = ax.bar(x + offset, values, width=0.36, label=f"{label} (mean)")
        for position, each in zip(x + offset, runs):
            seeds = [getattr(run.metrics.test, metric) for run in each]
            ax.plot([position] * len(seeds), seeds, "o", color="black", markersize=3,
                    markerfacecolor=bars.patches[0].get_facecolor())
    ax.set_xticks(x, [row["recipe"] + (" (collapsed)" if row.get("collapsed") else "") for row in rows], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test score")
    ax.set_title(title or "test accuracy and macro F1, 95% bootstrap intervals", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def plot_val_curves(histories: dict[str, list[pd.DataFrame]], path: str | Path) -> None:
    """The recipes' validation loss and accuracy per epoch, overlaid: one colour per recipe, one line per seed."""
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.2))
    for ax, (column, label) in zip(axes, CURVE_METRICS):
        for colour, (recipe, runs) in enumerate(histories.items()):
            for i, history in enumerate(runs):
                ax.plot(history["epoch"], history[key("val", column)], "o-", markersize=3, color=f"C{colour}",
                        alpha=1.0 if len(runs) == 1 else 0.6,
                        label=(recipe if len(runs) == 1 else f"{recipe} ({len(runs)} seeds)") if i == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_title(f"validation {label}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
