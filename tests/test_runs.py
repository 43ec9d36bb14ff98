"""The over-runs comparison (facelab.evaluation.runs), calibrated on simulated recipes: A/A (the same recipe, other
seeds) must be called different in about 5% of cases at most, a real difference must be found."""
from __future__ import annotations

import numpy as np
import pytest

from facelab.evaluation.runs import SeedPair, compare_over_runs, different
from facelab.evaluation.stats import paired_bootstrap_diff

CLASSES, IMAGES, SEEDS = 3, 120, 3
RUN_SD = 0.05  # seed-to-seed spread of a run's accuracy (real photos moved macro F1 by up to 0.12 over 3 seeds)
SIMULATIONS, RESAMPLES = 200, 400  # small: the test runs in seconds; the rates below have +-3% of noise


def simulated_predictions(rng: np.random.Generator, actual: np.ndarray, skill: float) -> np.ndarray:
    """A run that gets each image right with probability `skill`, else a uniformly drawn wrong class."""
    right = rng.random(actual.size) < skill
    wrong = (actual + rng.integers(1, CLASSES, actual.size)) % CLASSES
    return np.where(right, actual, wrong)


def simulated_pairs(rng: np.random.Generator, skill_a: float, skill_b: float) -> list[SeedPair]:
    """Per seed: its own test images, and a run of each recipe whose skill moves with the seed."""
    pairs = []
    for seed in range(SEEDS):
        actual = rng.integers(0, CLASSES, IMAGES)
        run_a = np.clip(skill_a + rng.normal(0, RUN_SD), 0, 1)
        run_b = np.clip(skill_b + rng.normal(0, RUN_SD), 0, 1)
        pairs.append(SeedPair(seed, actual, simulated_predictions(rng, actual, run_a),
                              simulated_predictions(rng, actual, run_b)))
    return pairs


def called_different(skill_a: float, skill_b: float) -> tuple[float, float]:
    """How often (share of simulations) the over-runs test and the one-run paired bootstrap call A and B different."""
    rng = np.random.default_rng(7)
    over_runs = one_run = 0
    for _ in range(SIMULATIONS):
        pairs = simulated_pairs(rng, skill_a, skill_b)
        over_runs += different(compare_over_runs(pairs, CLASSES, n_resamples=RESAMPLES))
        first = pairs[0]
        one_run += paired_bootstrap_diff(first.actual, first.predicted_a, first.predicted_b, CLASSES,
                                         n_resamples=RESAMPLES)["p_value"] < 0.05
    return over_runs / SIMULATIONS, one_run / SIMULATIONS


def test_recipes_that_differ_only_in_their_seed_are_called_different_at_most_about_5_percent_of_the_time():
    over_runs, one_run = called_different(0.75, 0.75)
    assert over_runs <= 0.08, f"A/A: the over-runs test calls {over_runs:.0%} different"
    # the one-run statistic ignores run-to-run variation: it calls the same recipe different far more often
    assert one_run >= 0.15 and one_run >= over_runs + 0.08, f"one run: {one_run:.0%}, over runs: {over_runs:.0%}"


def test_a_real_difference_is_found_over_runs():
    over_runs, _ = called_different(0.55, 0.85)
    assert over_runs >= 0.8, f"A/B (+0.30 accuracy): found in only {over_runs:.0%} of simulations"


def test_one_seed_is_that_seeds_paired_bootstrap_and_says_run_variation_is_left_out():
    pair = simulated_pairs(np.random.default_rng(1), 0.7, 0.8)[0]
    result = compare_over_runs([pair], CLASSES, n_resamples=RESAMPLES)
    alone = paired_bootstrap_diff(pair.actual, pair.predicted_a, pair.predicted_b, CLASSES, n_resamples=RESAMPLES)
    assert result.diff == pytest.approx(alone["diff"]) and list(result.ci) == pytest.approx(alone["ci"])
    assert "run-to-run variation is not included" in result.covers


def test_the_interval_over_three_seeds_is_at_least_as_wide_as_one_seeds_paired_interval():
    pairs = simulated_pairs(np.random.default_rng(3), 0.7, 0.75)
    result = compare_over_runs(pairs, CLASSES, n_resamples=RESAMPLES)
    one = result.per_seed_ci[0]
    assert result.ci[1] - result.ci[0] >= one[1] - one[0]
    assert result.diff == pytest.approx(np.mean(result.per_seed)) and result.seeds == (0, 1, 2)


def test_a_seed_given_twice_is_refused():
    pair = simulated_pairs(np.random.default_rng(1), 0.7, 0.8)[0]
    with pytest.raises(ValueError, match="appears twice"):
        compare_over_runs([pair, pair], CLASSES)
