"""Scores: pure functions from labels and predictions to confusion matrices, z-scores (of the whole matrix, and of
the errors alone) and per-class reports."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from facelab.evaluation.stats import confusion_counts, macro_f1


def confusion(actual: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are actual classes, columns predicted ones (scikit-learn's confusion_matrix, without importing it in
    every training process: tests check the two agree)."""
    actual, predicted = np.asarray(actual, np.int64), np.asarray(predicted, np.int64)
    return confusion_counts(actual * num_classes + predicted, num_classes)


def zscore(matrix: np.ndarray) -> np.ndarray:
    """Each cell minus the mean of all cells, divided by their population standard deviation."""
    matrix = np.asarray(matrix, dtype=np.float64)
    std = matrix.std()  # ddof=0: the population std
    if std == 0:
        return np.zeros_like(matrix)  # all cells equal: no cell stands out
    return (matrix - matrix.mean()) / std


def error_zscore(matrix: ArrayLike) -> np.ndarray:
    """The errors alone: each off-diagonal cell minus the mean off-diagonal cell, divided by their population
    standard deviation; the diagonal (right answers) is NaN, as it is not an error and is not judged.

    Which confusion stands out is a question about where the errors go. zscore's whole-matrix mean and spread are
    set by the diagonal, so an error cell rises above 0 only beyond about N / k^2 images: in
    [[35, 15, 0], [0, 50, 0], [0, 0, 50]] every error of class 0 goes to class 1, yet its whole-matrix z-score is
    negative; over the six error cells it is 2.24. Errors spread evenly (or none at all) give 0 everywhere."""
    matrix = np.asarray(matrix, dtype=np.float64)
    errors = ~np.eye(matrix.shape[0], dtype=bool)
    z = np.full_like(matrix, np.nan)
    z[errors] = zscore(matrix[errors])
    return z


def split_scores(actual: np.ndarray, predicted: np.ndarray, loss: float, num_classes: int) -> dict:
    return {"acc": float(np.mean(actual == predicted)), "loss": float(loss),
            "macro_f1": macro_f1(actual, predicted, num_classes)}  # scikit-learn's macro F1, zero_division=0


def class_report(actual: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> dict:
    """scikit-learn's classification_report(output_dict=True, zero_division=0): per-class precision, recall, F1
    and support, accuracy, macro and weighted averages. From the confusion matrix, without importing scikit-learn
    (1.2 s of scipy in every evaluate process); tests check the two agree."""
    counts = confusion(actual, predicted, len(classes)).astype(np.float64)
    tp, support, guessed = np.diagonal(counts), counts.sum(1), counts.sum(0)

    def ratio(top, bottom):
        return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)

    precision, recall = ratio(tp, guessed), ratio(tp, support)
    table = np.stack([precision, recall, ratio(2 * tp, support + guessed), support], 1)
    keys = ("precision", "recall", "f1-score", "support")
    report: dict[str, dict[str, float] | float] = {name: dict(zip(keys, map(float, row)))
                                                   for name, row in zip(classes, table)}
    report["accuracy"] = float(tp.sum() / max(support.sum(), 1))
    for average, weights in (("macro avg", np.ones_like(support)), ("weighted avg", support)):
        # an elementwise sum, not a BLAS matrix product: the same last digit whatever BLAS build and threads run it
        means = (table[:, :3] * weights[:, None]).sum(0) / weights.sum() if weights.sum() else np.zeros(3)
        report[average] = {**dict(zip(keys, map(float, means))), "support": float(support.sum())}
    return report
