"""Statistics that say how sure a score is: bootstrap intervals, paired comparisons, McNemar's exact test,
collapse detection."""
from __future__ import annotations

from statistics import NormalDist
from typing import TypedDict

import numpy as np

from facelab.names import LABEL_METRICS

RANKED_BY = "macro_f1"  # the leaderboard's statistic, and so the one every verdict tests
SIGNIFICANCE = 0.05  # a paired difference with p below this (two-sided) is more than noise
# Every bootstrap here: the defaults below and the settings evaluate records. Fixed seed: the same predictions, the
# same interval.
RESAMPLES, BOOTSTRAP_SEED, LEVEL = 2000, 0, 0.95


class Bootstrap(TypedDict):
    """The bootstrap keyword arguments (n_resamples, seed, level) that every interval and comparison takes."""
    n_resamples: int
    seed: int
    level: float


BOOTSTRAP: Bootstrap = {"n_resamples": RESAMPLES, "seed": BOOTSTRAP_SEED, "level": LEVEL}
POWER = 0.8  # the smallest detectable difference is the one a test of this size finds 80% of the time
# Largest index matrix (resamples x images) held at once; 4M int64 entries is 32 MB.
_CHUNK_ENTRIES = 4_000_000


def _labels(values, num_classes: int, name: str) -> np.ndarray:
    """Class indices as a 1-D int array, refusing anything outside 0..num_classes-1 (it would corrupt the counts)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name} holds a class index outside 0..{num_classes - 1}")
    return array


def _pair(actual, predicted, num_classes: int, name: str = "predicted") -> tuple[np.ndarray, np.ndarray]:
    """Validated (actual, predicted) of equal, non-zero length: every statistic here is undefined on no images."""
    actual = _labels(actual, num_classes, "actual")
    predicted = _labels(predicted, num_classes, name)
    if actual.shape != predicted.shape:
        raise ValueError(f"actual has {actual.size} labels but {name} has {predicted.size}")
    if actual.size == 0:
        raise ValueError("no images to score")
    return actual, predicted


def confusion_counts(codes: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrices (rows actual, columns predicted) of each row of `codes` = actual * k + predicted.

    One bincount over row-offset codes counts every resample at once, which is what makes 2000 resamples cheap.
    `codes` is (n,) or (resamples, n); the result is (k, k) or (resamples, k, k).
    """
    codes = np.asarray(codes, dtype=np.int64)
    cells = num_classes * num_classes
    if codes.ndim == 1:
        return np.bincount(codes, minlength=cells).reshape(num_classes, num_classes)
    rows = codes.shape[0]
    offsets = (np.arange(rows, dtype=np.int64) * cells)[:, None]
    counts = np.bincount((codes + offsets).ravel(), minlength=rows * cells)
    return counts.reshape(rows, num_classes, num_classes)


def macro_f1_batch(counts: np.ndarray) -> np.ndarray:
    """Macro F1 of each confusion matrix in `counts` (..., k, k), matching scikit-learn's
    f1_score(average="macro", labels=range(k), zero_division=0).

    Per class F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (actual + predicted count). A class that is neither
    present nor predicted has 0/0; zero_division=0 makes it 0 and it still counts in the mean over all k.
    """
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    denominator = counts.sum(axis=-1) + counts.sum(axis=-2)  # row sums (actual) + column sums (predicted)
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return f1.mean(axis=-1)


def accuracy_batch(counts: np.ndarray) -> np.ndarray:
    """Accuracy of each confusion matrix in `counts` (..., k, k): the diagonal's share of all images."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.trace(counts, axis1=-2, axis2=-1) / counts.sum(axis=(-2, -1))


def _metric_batch(metric: str):
    """The vectorised scorer for a metric name, refusing names we cannot score."""
    if metric == "acc":
        return accuracy_batch
    if metric == "macro_f1":
        return macro_f1_batch
    raise ValueError(f"unknown metric {metric!r}; expected one of {LABEL_METRICS}")


def macro_f1(actual, predicted, num_classes: int) -> float:
    """Macro F1 over all num_classes (scikit-learn semantics, zero_division=0), from one confusion matrix."""
    actual, predicted = _pair(actual, predicted, num_classes)
    return float(macro_f1_batch(confusion_counts(actual * num_classes + predicted, num_classes)))


def _check_resampling(n_resamples: int, level: float) -> None:
    """Refuse settings that would give a meaningless interval instead of a silently wrong one."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def _stratified_indices(actual: np.ndarray, num_classes: int, n_resamples: int, rng: np.random.Generator):
    """Yield (resamples, n) index matrices: each row redraws every true class's images with replacement,
    keeping each class's count, so class balance is fixed as it is in the test set itself.

    Chunks bound memory on big test sets; the chunk size depends only on n, so a seed still fixes the result.
    """
    groups = [np.flatnonzero(actual == c) for c in range(num_classes)]
    groups = [g for g in groups if g.size]
    chunk = max(1, _CHUNK_ENTRIES // actual.size)
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        yield np.concatenate([g[rng.integers(0, g.size, size=(rows, g.size))] for g in groups], axis=1)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval: the middle `level` share of the bootstrap distribution."""
    tail = (1 - level) / 2
    lo, hi = np.quantile(values, [tail, 1 - tail])
    return float(lo), float(hi)


def bootstrap_ci(actual, predicted, num_classes: int, metric: str, n_resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> tuple[float, float]:
    """Stratified percentile bootstrap interval of `metric` ("acc" or "macro_f1") over the test images.

    Says how much the score would move on another test set of the same size and class balance.
    """
    score = _metric_batch(metric)
    _check_resampling(n_resamples, level)
    actual, predicted = _pair(actual, predicted, num_classes)
    codes = actual * num_classes + predicted
    rng = np.random.default_rng(seed)
    scores = np.concatenate([score(confusion_counts(codes[index], num_classes))
                             for index in _stratified_indices(actual, num_classes, n_resamples, rng)])
    return _interval(scores, level)


def paired_bootstrap_diff(actual, predicted_a, predicted_b, num_classes: int, metric: str = RANKED_BY,
                          n_resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> dict:
    """metric(b) - metric(a) on the same test images: a stratified bootstrap interval, a two-sided p-value from
    the same resamples (twice the smaller share of resampled differences on either side of 0; `p_floor` is the
    smallest p they resolve), and `detectable`: the smallest difference this many test images find at
    p < SIGNIFICANCE with POWER (minimum_detectable of the resampled spread, not of the observed difference).

    Both models are scored on the same resampled images each time: image difficulty is shared and cancels,
    so the interval is far narrower than comparing two separate intervals.
    """
    score = _metric_batch(metric)
    _check_resampling(n_resamples, level)
    actual, predicted_a = _pair(actual, predicted_a, num_classes, "predicted_a")
    _, predicted_b = _pair(actual, predicted_b, num_classes, "predicted_b")
    codes_a = actual * num_classes + predicted_a
    codes_b = actual * num_classes + predicted_b
    diff = float(score(confusion_counts(codes_b, num_classes)) - score(confusion_counts(codes_a, num_classes)))
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([score(confusion_counts(codes_b[index], num_classes))
                            - score(confusion_counts(codes_a[index], num_classes))
                            for index in _stratified_indices(actual, num_classes, n_resamples, rng)])
    p_value = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return {"diff": diff, "ci": list(_interval(diffs, level)), "p_value": p_value,
            "p_floor": p_floor(n_resamples), "detectable": minimum_detectable(float(np.std(diffs)))}


def minimum_detectable(spread: float, alpha: float = SIGNIFICANCE, power: float = POWER) -> float:
    """The smallest true difference a two-sided test at `alpha` finds with `power`, when the estimate's standard
    error is `spread` (here: the standard deviation of the resampled differences at the current test size):
    (z_{1-alpha/2} + z_power) * spread.

    Why not "test images that would tell this difference apart": that puts the observed difference into the power
    formula, and it is as noisy as the test that could not separate it. It is printed only when p >= alpha, i.e.
    when |diff| < z_{1-alpha/2} * spread, so the figure always exceeds ((z_alpha + z_power) / z_alpha)^2 = 2.04
    times the test size and scatters by the square of the noise (issue 30: median 722 where 310 was right). The
    spread hardly moves with the observed difference, so this figure is stable from one test set to the next.
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be between 0 and 1, got {alpha}, {power}")
    normal = NormalDist()
    return (normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)) * spread


def p_floor(n_resamples: int | None, comparisons: int = 1) -> float:
    """The smallest p-value a test resolves: 0 for an exact p (n_resamples None, e.g. a t distribution's);
    2 / n_resamples for a two-sided bootstrap p (one resample on the far side of 0 already gives that, none gives
    0), and `comparisons` times that once Holm-adjusted (the smallest p is multiplied by their number). A p below
    it may only be printed as "< floor": 2,000 resamples cannot tell 0.0005 from 0.00001."""
    if n_resamples is None:
        return 0.0
    if n_resamples < 1 or comparisons < 1:
        raise ValueError(f"n_resamples and comparisons must be at least 1, got {n_resamples}, {comparisons}")
    return min(1.0, comparisons * 2 / n_resamples)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values from several tests on one test set (the family-wise error stays
    under the level): the i-th smallest p is multiplied by (m - i), then made non-decreasing and capped at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _binomial_half_cdf(k: int, n: int) -> tuple[int, int]:
    """P(X <= k) for X ~ Binomial(n, 1/2), as the exact fraction (sum of C(n, i) for i <= k, 2**n).

    Python integers do not overflow, so this stays exact for any n; C(n, i) is built from C(n, i-1).
    """
    term, total = 1, 1
    for i in range(1, k + 1):
        term = term * (n - i + 1) // i
        total += term
    return total, 2 ** n


def mcnemar_exact(actual, predicted_a, predicted_b) -> dict:
    """Exact two-sided McNemar test: do models a and b differ in how often they are right on the same images?

    Only discordant images carry information; under no difference each is equally likely to favour a or b,
    so min(b, c) is Binomial(b + c, 1/2) and the two-sided p doubles its lower tail.
    """
    actual = np.asarray(actual)
    predicted_a, predicted_b = np.asarray(predicted_a), np.asarray(predicted_b)
    if not actual.shape == predicted_a.shape == predicted_b.shape or actual.ndim != 1:
        raise ValueError("actual, predicted_a and predicted_b must be 1-D arrays of the same length")
    right_a, right_b = actual == predicted_a, actual == predicted_b
    a_only = int(np.sum(right_a & ~right_b))
    b_only = int(np.sum(~right_a & right_b))
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    tail, whole = _binomial_half_cdf(min(a_only, b_only), n)
    # Integer true division is correctly rounded even when both sides exceed float range.
    p_value = min(1.0, 2 * tail / whole)
    return {"a_only": a_only, "b_only": b_only, "p_value": p_value}


def _percent(share: float) -> str:
    """A whole percent, with one decimal where rounding would otherwise claim all (or none) of the images."""
    text = f"{share:.0%}"
    return f"{share:.1%}" if text in ("100%", "0%") and share not in (0.0, 1.0) else text


def collapse(predicted, actual, num_classes: int, threshold: float = 0.95, names=None) -> dict:
    """Whether a model has collapsed: it nearly always predicts one class, or its macro F1 is no better than
    always predicting the majority true class, or than guessing at random. Its score says nothing about the images.
    """
    actual, predicted = _pair(actual, predicted, num_classes)
    shares = np.bincount(predicted, minlength=num_classes) / predicted.size
    top = int(np.argmax(shares))
    top_share = float(shares[top])
    reason = None
    if top_share >= threshold:
        label = f"'{names[top]}'" if names is not None else f"class {top}"
        reason = f"predicts {label} for {_percent(top_share)} of the test images"
    else:
        majority = int(np.argmax(np.bincount(actual, minlength=num_classes)))  # ties: the lowest index
        baseline = macro_f1(actual, np.full_like(actual, majority), num_classes)
        score = macro_f1(actual, predicted, num_classes)
        # A tolerance so that a score equal to the baseline in exact arithmetic is not saved by rounding.
        # Guessing at random in the test set's own class proportions p scores precision = recall = p_c on class c
        # in expectation, so F1 = p_c and macro F1 = sum(p_c) / num_classes = 1 / num_classes.
        guess = 1 / num_classes
        if score <= baseline + 1e-12:
            reason = (f"macro F1 {score:.3f} is no better than always predicting the majority class "
                      f"({baseline:.3f})")
        elif score <= guess + 1e-12:  # e.g. 0.24 on three balanced classes: predictions spread, yet at chance
            reason = (f"macro F1 {score:.3f} is no better than guessing at random in the test set's class "
                      f"proportions ({guess:.3f})")
    return {"collapsed": reason is not None, "reason": reason, "top_class_share": top_share}
