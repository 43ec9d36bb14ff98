"""Statistics on scores: each test pins the maths to a closed form, a hand-computed value or scikit-learn."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from facelab.evaluation.stats import (
    SIGNIFICANCE,
    bootstrap_ci,
    collapse,
    confusion_counts,
    macro_f1,
    macro_f1_batch,
    mcnemar_exact,
    minimum_detectable,
    p_floor,
    paired_bootstrap_diff,
)

Z_975 = 1.959963984540054  # standard normal quantiles, written out so the tests do not reuse the module's source
Z_80 = 0.8416212335729143


def sk_macro_f1(actual, predicted, k):
    return f1_score(actual, predicted, labels=list(range(k)), average="macro", zero_division=0)


def graded(per_class: int, correct: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """per_class images of each class; class c is right on its first correct[c] images, else called c + 1."""
    k = len(correct)
    actual = np.repeat(np.arange(k), per_class)
    predicted = actual.copy()
    for c, right in enumerate(correct):
        predicted[c * per_class + right:(c + 1) * per_class] = (c + 1) % k
    return actual, predicted


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_macro_f1_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    actual = rng.integers(0, k, size=(8, int(rng.integers(5, 60))))
    predicted = rng.integers(0, k, size=actual.shape)
    predicted[0] = np.where(predicted[0] == k - 1, 0, predicted[0])  # class k-1 never predicted
    predicted[1] = actual[1]                                          # a perfect row
    actual[2] = np.where(actual[2] == 0, 1, actual[2])                # class 0 absent, maybe still predicted
    actual[3], predicted[3] = actual[3] % (k - 1), predicted[3] % (k - 1)  # class k-1 neither present nor predicted
    batch = macro_f1_batch(confusion_counts(actual * k + predicted, k))
    expected = [sk_macro_f1(a, p, k) for a, p in zip(actual, predicted)]
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-12)
    for a, p, e in zip(actual, predicted, expected):
        assert macro_f1(a, p, k) == pytest.approx(e, abs=1e-12)


def test_macro_f1_known_value_and_bad_labels():
    # Class 0: TP 1, FN 1, FP 0 -> F1 2/3. Class 1: TP 1, FP 1 -> 2/3. Class 2 absent, never predicted -> 0.
    assert macro_f1([0, 0, 1], [0, 1, 1], 3) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    with pytest.raises(ValueError, match="outside"):
        macro_f1([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="no images"):
        macro_f1([], [], 3)


def test_bootstrap_accuracy_matches_the_binomial_interval():
    # Every class is right on exactly 80% of its images. Stratified resampling then makes the accuracy a sum of
    # per-class Binomial(2000, 0.8) counts, whose variance equals the plain Binomial(4000, 0.8) one, so the
    # interval should sit on the Wald interval. What is left is Monte Carlo noise in a 2.5% quantile of 2000
    # resamples (about 0.0004 here), the 1/4000 grid of accuracies and a little binomial skew: 0.002 is ~5x that.
    n = 4000
    actual, predicted = graded(n // 2, [1600, 1600])
    p = 0.8
    half = Z_975 * math.sqrt(p * (1 - p) / n)  # 0.0124
    lo, hi = bootstrap_ci(actual, predicted, 2, "acc", seed=0)
    assert lo == pytest.approx(p - half, abs=0.002)
    assert hi == pytest.approx(p + half, abs=0.002)


def test_stratification_narrows_the_interval_when_classes_differ():
    # Class 0 right 60% of the time, class 1 always: overall 0.8 again, but the stratified variance is
    # 2000 * 0.24 / 4000**2 = 3e-5 against the binomial 4e-5, a width ratio of sqrt(0.75) = 0.866.
    # An unstratified bootstrap would give the binomial width, so this fails if stratification breaks.
    actual, predicted = graded(2000, [1200, 2000])
    lo, hi = bootstrap_ci(actual, predicted, 2, "acc", seed=0)
    wald_width = 2 * Z_975 * math.sqrt(0.8 * 0.2 / 4000)
    assert (hi - lo) / wald_width == pytest.approx(math.sqrt(0.75), abs=0.05)


@pytest.mark.parametrize("metric", ["acc", "macro_f1"])
def test_interval_contains_estimate_and_is_reproducible(metric):
    rng = np.random.default_rng(7)
    actual = rng.integers(0, 4, 600)
    predicted = np.where(rng.random(600) < 0.7, actual, rng.integers(0, 4, 600))
    estimate = float(np.mean(actual == predicted)) if metric == "acc" else macro_f1(actual, predicted, 4)
    first = bootstrap_ci(actual, predicted, 4, metric, seed=3)
    assert first[0] < estimate < first[1]
    assert bootstrap_ci(actual, predicted, 4, metric, seed=3) == first
    # Other seeds: close, and not all the same. (One seed alone can repeat an end: accuracies sit on a 1/600 grid.)
    others = [bootstrap_ci(actual, predicted, 4, metric, seed=seed) for seed in (4, 5, 6)]
    assert any(other != first for other in others)
    np.testing.assert_allclose(others, [first] * 3, atol=0.01)
    narrow = bootstrap_ci(actual, predicted, 4, metric, seed=3, level=0.5)
    assert first[0] < narrow[0] < narrow[1] < first[1]


def test_bootstrap_rejects_unknown_metrics():
    rng = np.random.default_rng(0)
    actual = rng.integers(0, 5, 1000)
    predicted = np.where(rng.random(1000) < 0.6, actual, rng.integers(0, 5, 1000))
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(actual, predicted, 5, "f1")


def test_paired_diff_of_identical_models_is_exactly_zero():
    actual, predicted = graded(100, [70, 80, 90])
    result = paired_bootstrap_diff(actual, predicted, predicted.copy(), 3, n_resamples=200)
    assert result == {"diff": 0.0, "ci": [0.0, 0.0], "p_value": 1.0, "p_floor": 0.01, "detectable": 0.0}


@pytest.mark.parametrize("metric", ["acc", "macro_f1"])
def test_paired_diff_sees_a_consistent_improvement(metric):
    actual, predicted_a = graded(500, [350, 350])            # a: 70% right in each class
    predicted_b = predicted_a.copy()
    predicted_b[[*range(350, 400), *range(850, 900)]] = actual[[*range(350, 400), *range(850, 900)]]  # b: 80%
    result = paired_bootstrap_diff(actual, predicted_a, predicted_b, 2, metric=metric, seed=1)
    expected = 0.1 if metric == "acc" else macro_f1(actual, predicted_b, 2) - macro_f1(actual, predicted_a, 2)
    assert result["diff"] == pytest.approx(expected)
    lo, hi = result["ci"]
    assert 0 < lo < result["diff"] < hi
    # Shared resamples cancel image difficulty: b only ever adds right answers, so the paired spread is that of
    # 100 flips among 1000 images, far narrower than one model's own interval. Unpaired indices would be wider.
    own_lo, own_hi = bootstrap_ci(actual, predicted_a, 2, metric, seed=1)
    assert hi - lo < 0.8 * (own_hi - own_lo)


def mcnemar_from_counts(a_only: int, b_only: int, both: int = 3) -> dict:
    """Labels for 'both right' x both, a-only right x a_only, b-only right x b_only; class 1 is always wrong."""
    n = both + a_only + b_only
    actual = np.zeros(n, dtype=int)
    predicted_a = np.r_[np.zeros(both + a_only, dtype=int), np.ones(b_only, dtype=int)]
    predicted_b = np.r_[np.zeros(both, dtype=int), np.ones(a_only, dtype=int), np.zeros(b_only, dtype=int)]
    return mcnemar_exact(actual, predicted_a, predicted_b)


@pytest.mark.parametrize("a_only, b_only, p_value", [
    (0, 0, 1.0),
    (0, 5, 2 * 0.5 ** 5),         # 0.0625
    (1, 9, 2 * (1 + 10) / 1024),  # P(X <= 1), X ~ Bin(10, 1/2), doubled
    (4, 4, 1.0),                  # doubled tail exceeds 1: capped
    (2, 3, 1.0),                  # 2 * (1 + 5 + 10) / 32 = 1.0 exactly
])
def test_mcnemar_hand_computed(a_only, b_only, p_value):
    result = mcnemar_from_counts(a_only, b_only)
    assert result == {"a_only": a_only, "b_only": b_only, "p_value": pytest.approx(p_value, rel=1e-12)}
    swapped = mcnemar_from_counts(b_only, a_only)
    assert swapped == {"a_only": b_only, "b_only": a_only, "p_value": result["p_value"]}


def test_mcnemar_large_counts_match_the_normal_approximation():
    result = mcnemar_from_counts(300, 360)
    # Continuity-corrected normal: z = (|b - c| - 1) / sqrt(b + c) = 59 / sqrt(660) = 2.297, p = 0.0216.
    z = (60 - 1) / math.sqrt(660)
    normal_p = math.erfc(z / math.sqrt(2))
    assert result["p_value"] == pytest.approx(normal_p, rel=0.05)
    huge = mcnemar_from_counts(2000, 2600)  # 2**4600 is far past float range: must not overflow
    assert 0 < huge["p_value"] < 1e-15


def test_minimum_detectable_difference_is_the_power_formula_of_the_spread():
    assert minimum_detectable(0.02) == pytest.approx((Z_975 + Z_80) * 0.02)  # 0.056
    assert minimum_detectable(0.02, power=0.9) > minimum_detectable(0.02) > minimum_detectable(0.02, alpha=0.1)
    assert minimum_detectable(0.0) == 0.0
    with pytest.raises(ValueError):
        minimum_detectable(0.02, power=1.0)


def three_class_models(rng: np.random.Generator, n: int, right_a: float,
                       right_b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced 3-class test labels and two independent models, right on each image with the given chance and
    otherwise calling one of the other two classes."""
    actual = np.repeat(np.arange(3), n // 3)

    def model(right: float) -> np.ndarray:
        return np.where(rng.random(n) < right, actual, (actual + rng.integers(1, 3, n)) % 3)
    return actual, model(right_a), model(right_b)


def test_the_detectable_difference_is_stable_where_test_images_needed_scattered():
    """Issue 30: "about N test images would tell them apart" put the observed difference into the power formula:
    n * ((z_alpha + z_power) * spread / diff)^2, i.e. n * (detectable / diff)^2. Sixty test sets of 300 images
    from the same two models (75% and 78% right): that old figure, printed when p >= 0.05, ranged over four orders
    of magnitude and over a third of them were more than 5x off the size that finds the true difference (about
    0.03) 80% of the time; the detectable difference stays within 40%."""
    rng, n = np.random.default_rng(0), 300
    found = [paired_bootstrap_diff(*three_class_models(rng, n, 0.75, 0.78), 3, n_resamples=300, seed=1)
             for _ in range(60)]
    detectable = np.array([r["detectable"] for r in found])
    old = np.array([n * (r["detectable"] / r["diff"]) ** 2 for r in found if r["p_value"] >= SIGNIFICANCE])
    right = n * (np.median(detectable) / 0.03) ** 2  # about 3,200 images
    assert len(old) > 30 and old.min() > 1.5 * n and old.max() / old.min() > 1000  # the old print scattered
    assert np.mean((old > 5 * right) | (old < right / 5)) > 0.3
    assert detectable.max() / detectable.min() < 1.4 and 0.08 < np.median(detectable) < 0.11
    diffs = np.array([r["diff"] for r in found])
    assert diffs.max() - diffs.min() > detectable.max()  # the observed difference moved far more than it


def test_a_true_difference_of_the_detectable_size_is_found_about_80_percent_of_the_time():
    rng, n = np.random.default_rng(1), 300
    detectable = np.median([paired_bootstrap_diff(*three_class_models(rng, n, 0.75, 0.78), 3, n_resamples=300,
                                                  seed=1)["detectable"] for _ in range(20)])
    found = [paired_bootstrap_diff(*three_class_models(rng, n, 0.75, 0.75 + detectable), 3, n_resamples=300,
                                   seed=1)["p_value"] < SIGNIFICANCE for _ in range(300)]
    assert 0.7 < np.mean(found) < 0.95  # 0.87: the better model errs less, so its spread is a little smaller


def test_p_floor_is_the_smallest_p_the_resamples_resolve():
    # Issue 30: 2,000 resamples printed "p < 0.0005"; a two-sided bootstrap p moves in steps of 2 / resamples.
    assert p_floor(2000) == pytest.approx(0.001)
    assert p_floor(2000, comparisons=3) == pytest.approx(0.003)  # Holm multiplies the smallest p by 3
    assert p_floor(4, comparisons=3) == 1.0
    assert p_floor(None) == 0.0  # an exact p (a t distribution's, McNemar's) resolves every digit
    actual, predicted_a = graded(100, [60, 60, 60])
    result = paired_bootstrap_diff(actual, predicted_a, actual.copy(), 3, n_resamples=500)
    assert result["p_value"] == 0.0 and result["p_floor"] == pytest.approx(0.004)
    with pytest.raises(ValueError):
        p_floor(0)


def test_collapse():
    actual, _ = graded(50, [50, 50, 50])
    one_class = collapse(np.zeros_like(actual), actual, 3)
    assert one_class["collapsed"] and one_class["top_class_share"] == 1.0
    assert one_class["reason"] == "predicts class 0 for 100% of the test images"

    perfect = collapse(actual.copy(), actual, 3)
    assert perfect == {"collapsed": False, "reason": None, "top_class_share": pytest.approx(1 / 3)}

    # 3:1 imbalance. Class 0 images: 66 called 0, 9 called 1; class 1 images: 24 called 0, 1 called 1.
    # F1 = (132/165 + 2/35) / 2 = 3/7, exactly the always-class-0 baseline (150/175) / 2 = 3/7, with class 0
    # predicted on 90% of images, under the 95% share rule: only the baseline rule can catch it.
    actual = np.repeat([0, 1], [75, 25])
    predicted = np.repeat([0, 1, 0, 1], [66, 9, 24, 1])
    at_baseline = collapse(predicted, actual, 2)
    assert at_baseline["collapsed"] and at_baseline["top_class_share"] == pytest.approx(0.9)
    assert at_baseline["reason"] == ("macro F1 0.429 is no better than always predicting the majority class "
                                     "(0.429)")
    better = np.repeat([0, 1, 0, 1], [66, 9, 20, 5])  # four more class 1 images right: above the baseline
    assert not collapse(better, actual, 2)["collapsed"]
    # With the share rule switched off, the constant prediction is still caught, by the baseline rule.
    constant = collapse(np.zeros_like(actual), actual, 2, threshold=1.01)
    assert constant["collapsed"] and constant["reason"].startswith("macro F1 0.429")
    almost = collapse(np.r_[np.zeros(999, dtype=int), [1]], np.r_[np.zeros(500, dtype=int), np.ones(500, dtype=int)], 2)
    assert almost["reason"] == "predicts class 0 for 99.9% of the test images"


def test_collapse_at_chance_even_when_predictions_spread_over_classes():
    actual = np.repeat([0, 1, 2], 30)
    predicted = np.tile([0, 1, 2], 30)  # every class predicted a third of the time, right a third of the time
    found = collapse(predicted, actual, 3, names=("angry", "happy", "sad"))
    assert found["collapsed"] and found["reason"] == (
        "macro F1 0.333 is no better than guessing at random in the test set's class proportions (0.333)")
    predicted[:3] = 0  # three more right: above chance
    assert not collapse(predicted, actual, 3)["collapsed"]


@pytest.mark.parametrize("seed", range(5))
def test_confusion_equals_sklearn_including_classes_never_seen(seed):
    from sklearn.metrics import confusion_matrix

    from facelab.evaluation.scores import confusion
    rng = np.random.default_rng(seed)
    actual, predicted = rng.integers(0, 3, 50), rng.integers(0, 3, 50)  # a fourth class never appears
    np.testing.assert_array_equal(confusion(actual, predicted, 4),
                                  confusion_matrix(actual, predicted, labels=list(range(4))))
