"""Statistics over training runs: two recipes compared on several seeds (each seed its own split, initialisation
and batch order; both recipes of one seed on the same test images), so that "better" survives a re-run.

Why a t interval over the seeds' paired differences and not a bootstrap over seeds: with 3 seeds a bootstrap that
resamples seeds sees only 10 distinct draws and its percentile interval is about sqrt(2/3) as wide as it should be
before the small-sample t factor (4.30 against 1.96 at 2 degrees of freedom) is even counted; tests/test_runs.py
simulates recipes that differ only in their seed (A/A) and counts how often each statistic calls them different.
Each seed's difference already carries its own test-image noise, so the spread between seeds covers both sources.
(Flooring that spread at the one measured inside each seed made the A/A rate 0% and halved the power: not used.)"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from facelab.evaluation.stats import BOOTSTRAP, RANKED_BY, SIGNIFICANCE, paired_bootstrap_diff


@dataclass(frozen=True)
class SeedPair:
    """One seed's test predictions of two recipes on that seed's test images (class indices)."""
    seed: int
    actual: np.ndarray
    predicted_a: np.ndarray
    predicted_b: np.ndarray


@dataclass(frozen=True)
class OverRuns:
    """metric(b) - metric(a), averaged over seeds, with an interval that covers seed-to-seed and test-image
    variation (`covers`), its two-sided p, and each seed's own paired difference and interval."""
    diff: float
    ci: tuple[float, float]
    p_value: float
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    per_seed_ci: tuple[tuple[float, float], ...]
    covers: str


def compare_over_runs(pairs: list[SeedPair], num_classes: int, metric: str = RANKED_BY,
                      n_resamples: int = BOOTSTRAP["n_resamples"], level: float = BOOTSTRAP["level"]) -> OverRuns:
    """The over-runs comparison of two recipes. With one seed it is that seed's paired bootstrap, and `covers`
    says that run-to-run variation is not included."""
    if not pairs:
        raise ValueError("no seeds to compare")
    if len({pair.seed for pair in pairs}) != len(pairs):
        raise ValueError(f"a seed appears twice: {[pair.seed for pair in pairs]}")
    within = [paired_bootstrap_diff(p.actual, p.predicted_a, p.predicted_b, num_classes, metric,
                                    n_resamples=n_resamples, seed=int(BOOTSTRAP["seed"]), level=level)
              for p in pairs]
    diffs = np.array([w["diff"] for w in within])
    seeds = tuple(pair.seed for pair in pairs)
    per_seed_ci = tuple((float(w["ci"][0]), float(w["ci"][1])) for w in within)
    if len(pairs) == 1:
        return OverRuns(float(diffs[0]), per_seed_ci[0], float(within[0]["p_value"]), seeds, (float(diffs[0]),),
                        per_seed_ci, "test images only: one seed, so run-to-run variation is not included")
    mean, dof = float(diffs.mean()), len(pairs) - 1
    se = float(np.std(diffs, ddof=1)) / math.sqrt(len(pairs))
    if se == 0:  # every seed gave the same difference and every test image agreed: no spread to test against
        p_value = 1.0 if mean == 0 else 0.0
        ci = (mean, mean)
    else:
        half = float(scipy_stats.t.ppf(1 - (1 - level) / 2, dof)) * se
        p_value = float(2 * scipy_stats.t.sf(abs(mean) / se, dof))
        ci = (mean - half, mean + half)
    return OverRuns(mean, ci, p_value, seeds, tuple(float(d) for d in diffs), per_seed_ci,
                    f"{len(pairs)} training runs (seeds) and the test images of each: t interval over the seeds' "
                    f"paired differences, {dof} degree(s) of freedom")


def different(result: OverRuns, alpha: float = SIGNIFICANCE) -> bool:
    """Whether the difference is more than noise at `alpha` (two-sided)."""
    return result.p_value < alpha
