"""Report figures: learning curves with the generalisation gap shaded, annotated confusion heatmaps (counts,
z-scores)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay

from facelab.names import key
from facelab.plotting import pyplot, save

CURVE_METRICS = (("loss", "loss"), ("acc", "accuracy"))


def plot_curves(history: pd.DataFrame, path: str | Path) -> None:
    """Train and val loss and accuracy per epoch; the band between them is the generalisation gap."""
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.2))
    for ax, (column, label) in zip(axes, CURVE_METRICS):
        epochs, train, val = history["epoch"], history[key("train", column)], history[key("val", column)]
        ax.plot(epochs, train, "o-", label="train")
        ax.plot(epochs, val, "s-", label="val")
        ax.fill_between(epochs, train, val, color="grey", alpha=0.2, label="gap (train - val)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{label}: last-epoch gap {train.iloc[-1] - val.iloc[-1]:+.3f}")
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
    """Grouped bars of test accuracy and macro F1 per recipe, whiskers at their 95% bootstrap intervals.
    rows: leaderboard rows (reporting.comparison.leaderboard: "recipe", "test" (TestScores), "collapsed")."""
    fig, ax = pyplot().subplots(figsize=(2.2 + 1.6 * len(rows), 3.2))
    x = np.arange(len(rows))
    for offset, (metric, label) in zip((-0.18, 0.18), (("acc", "accuracy"), ("macro_f1", "macro F1"))):
        values = np.array([getattr(row["test"], metric) for row in rows])
        ci = np.array([getattr(row["test"], f"{metric}_ci") or [v, v] for row, v in zip(rows, values)])
        errors = np.vstack([values - ci[:, 0], ci[:, 1] - values]).clip(min=0)
        ax.bar(x + offset, values, width=0.36, yerr=errors, capsize=4, label=label)
    ax.set_xticks(x, [row["recipe"] + (" (collapsed)" if row.get("collapsed") else "") for row in rows], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test score")
    ax.set_title(title or "test accuracy and macro F1, 95% bootstrap intervals", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def plot_val_curves(histories: dict[str, pd.DataFrame], path: str | Path) -> None:
    """The recipes' validation loss and accuracy per epoch, overlaid."""
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.2))
    for ax, (column, label) in zip(axes, CURVE_METRICS):
        for recipe, history in histories.items():
            ax.plot(history["epoch"], history[key("val", column)], "o-", markersize=3, label=recipe)
        ax.set_xlabel("epoch")
        ax.set_title(f"validation {label}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
