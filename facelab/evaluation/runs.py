"""Statistics over training runs: two recipes compared on several seeds (each seed its own split, initialisation
and batch order; both recipes of one seed on the same test images), so that "better" survives a re-run.

Why a t interval over the seeds' paired differences and not a bootstrap over seeds: with 3 seeds a bootstrap that
resamples seeds sees only 10 distinct draws and its percentile interval is about sqrt(2/3) as wide as it should be
before the small-sample t factor (4.30 against 1.96 at 2 degrees of freedom) is even counted; tests/test_runs.py
simulates recipes that differ only in their seed (A/A) and counts how often each statistic calls them different.
Each seed's difference already carries its own test-image noise, so the spread between seeds covers both sources.
(Flooring that spread at the one measured inside each seed made the A/A rate 0% and halved the power: not used.)

Almost Stochastic Order (Dror et al. 2019, the deepsig package) is the field's second opinion on the same question:
it compares the two recipes' score distributions over seeds (unpaired), so it needs two seeds or more."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as scipy_stats

from facelab.evaluation.stats import BOOTSTRAP, RANKED_BY, SIGNIFICANCE, paired_bootstrap_diff

ASO_ITERATIONS = 200  # deepsig's bootstrap of the violation ratio: 1000 (its default) takes ~3 s a pair, 200 ~0.5 s
ASO_THRESHOLD = 0.5  # deepsig: eps_min below this, the first recipe is deemed better (Dror et al. 2019 use 0.5)


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
    variation (`covers`), its two-sided p, and each seed's own paired difference and interval. detectable: with
    one seed, the smallest difference its test images find 80% of the time (paired_bootstrap_diff); None over
    several seeds, where more seeds, not more images, narrow the interval."""
    diff: float
    ci: tuple[float, float]
    p_value: float
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    per_seed_ci: tuple[tuple[float, float], ...]
    covers: str
    detectable: float | None = None

    @property
    def runs_included(self) -> bool:
        """Whether the interval covers run-to-run variation (two seeds or more)."""
        return len(self.seeds) > 1

    def flipped(self) -> OverRuns:
        """metric(a) - metric(b): the same comparison read the other way round."""
        return replace(self, diff=-self.diff, ci=(-self.ci[1], -self.ci[0]), per_seed=tuple(-d for d in self.per_seed),
                       per_seed_ci=tuple((-hi, -lo) for lo, hi in self.per_seed_ci))


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
                        per_seed_ci, "test images only: one seed, so run-to-run variation is not included",
                        within[0]["detectable"])
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


def aso_eps_min(scores_better: list[float], scores_other: list[float], num_comparisons: int = 1,
                seed: int = int(BOOTSTRAP["seed"])) -> float | None:
    """deepsig's eps_min that the recipe with `scores_better` (one score per seed) is better than the other:
    below ASO_THRESHOLD it is deemed better, near 1 the other way round; Bonferroni over `num_comparisons`.
    None with fewer than two seeds on either side (one score each is no distribution: deepsig would say 0)."""
    if min(len(scores_better), len(scores_other)) < 2:
        return None
    from deepsig import aso  # imports torch and more (~2 s): only when a comparison over seeds asks for it

    with warnings.catch_warnings():
        # two identical score lists make deepsig's violation ratio 0/0: it warns and returns 1 ("not better"),
        # which is the reading the report prints
        warnings.filterwarnings("ignore", message="Division by zero encountered in violation ratio")
        return float(aso(list(scores_better), list(scores_other), num_comparisons=num_comparisons,
                         num_bootstrap_iterations=ASO_ITERATIONS, show_progress=False, seed=seed))
