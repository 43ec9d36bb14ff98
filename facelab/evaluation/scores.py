"""Scores: pure functions from labels and predictions to confusion matrices, z-scores and per-class reports."""
from __future__ import annotations

import numpy as np

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


def split_scores(actual: np.ndarray, predicted: np.ndarray, loss: float, num_classes: int) -> dict:
    return {"acc": float(np.mean(actual == predicted)), "loss": float(loss),
            "macro_f1": macro_f1(actual, predicted, num_classes)}  # scikit-learn's macro F1, zero_division=0


def class_report(actual: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> dict:
    """scikit-learn's per-class precision/recall/F1/support, plus its averages."""
    from sklearn.metrics import classification_report  # here: the evaluate stage needs it, training does not
    return classification_report(actual, predicted, labels=list(range(len(classes))),
                                 target_names=list(classes), output_dict=True, zero_division=0)
