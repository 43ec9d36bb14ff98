"""Comparison of a task's recipes, computed from their loaded experiments (facelab.reporting.results.Experiment,
one run per seed): the numbers, then sentences built on them. Every verdict is decided over the runs
(facelab.evaluation.runs: an interval that covers seeds and test images); with one seed it is that seed's paired
bootstrap and the report says run-to-run variation is not included. No sentence praises a collapsed model: the
convergence and generalisation questions are answered among the others only."""
from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, replace

import pandas as pd

from facelab.evaluation.records import Confusion
from facelab.evaluation.runs import ASO_THRESHOLD, OverRuns, SeedPair, aso_eps_min, compare_over_runs
from facelab.evaluation.scores import error_zscore
from facelab.evaluation.stats import BOOTSTRAP, POWER, RANKED_BY, SIGNIFICANCE, holm, mcnemar_exact, p_floor
from facelab.names import key
from facelab.reporting.results import Experiment

CONVERGED_FRACTION = 0.95  # converged: the first epoch at 95% of the run's own best val accuracy
DIGITS = 3  # numbers are printed to 3 decimals; ties are judged at that precision, so no claim rests on unseen digits


def epochs_to_fraction(history: pd.DataFrame, fraction: float = CONVERGED_FRACTION) -> int:
    """The first epoch whose val accuracy reaches `fraction` of the run's best val accuracy."""
    best = history[key("val", "acc")].max()
    return int(history.loc[history[key("val", "acc")] >= fraction * best, "epoch"].iloc[0])


def spread_text(values: list[float], digits: int = DIGITS) -> str:
    """One run's value, or the mean ± sd over the runs (sample sd)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def per_seed_text(exp: Experiment, values: list[float], digits: int = DIGITS) -> str:
    """Each seed's value: "seeds 42, 43, 44: 0.812, 0.790, 0.835"."""
    return (f"seed{'s' if len(values) > 1 else ''} {', '.join(map(str, exp.seeds))}: "
            f"{', '.join(f'{v:.{digits}f}' for v in values)}")


def convergence(experiments: list[Experiment]) -> dict[str, dict]:
    """Per recipe, each run's convergence epoch, its number of epochs and best val accuracy, in seed order."""
    return {e.recipe: {"epochs": [epochs_to_fraction(r.history) for r in e.runs],
                       "of": max(int(r.history["epoch"].max()) for r in e.runs),
                       "best_val_acc": [float(r.history[key("val", "acc")].max()) for r in e.runs]}
            for e in experiments}


def generalisation_gaps(experiments: list[Experiment]) -> dict[str, list[float]]:
    """Train minus val accuracy of each run's kept model (the one the test scores belong to), in seed order."""
    return {e.recipe: [r.metrics.train.acc - r.metrics.val.acc for r in e.runs] for e in experiments}


def off_diagonal(confusion: Confusion) -> list[dict]:
    """Every confusion (actual != predicted) with its count and its z-score among the errors alone
    (scores.error_zscore: confusion.zscore's diagonal would hide it), the most over-represented first."""
    classes, raw = confusion.classes, confusion.raw
    z = error_zscore(raw)
    cells = [{"actual": a, "predicted": p, "z": float(z[i][j]), "count": int(raw[i][j])}
             for i, a in enumerate(classes) for j, p in enumerate(classes) if i != j]
    return sorted(cells, key=lambda cell: -cell["z"])


def top_confusions(experiments: list[Experiment]) -> dict[str, dict | None]:
    """Each recipe's largest off-diagonal z-score (its runs' confusion counts summed); None when no confusion is
    above the mean error cell (z <= 0: the errors are spread evenly over the off-diagonal cells, or there are none)."""
    tops = {e.recipe: off_diagonal(e.confusion)[0] for e in experiments}
    return {recipe: cell if cell["z"] > 0 else None for recipe, cell in tops.items()}


def confusion_text(cell: dict) -> str:
    return f"{cell['actual']} -> {cell['predicted']}"


def join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def leaders(values: dict[str, float]) -> list[str]:
    """The recipes with the smallest value at printed precision (all of them on a tie)."""
    low = min(round(v, DIGITS) for v in values.values())
    return [name for name, v in values.items() if round(v, DIGITS) == low]


def epoch_text(epochs: list[int]) -> str:
    """One run's epoch, or the mean over runs with each run's: "2.3 on average (2, 3, 2)"."""
    if len(epochs) == 1:
        return str(epochs[0])
    return f"{statistics.fmean(epochs):.1f} on average ({', '.join(map(str, epochs))})"


def convergence_sentence(experiments: list[Experiment]) -> str:
    """The recipe that reaches CONVERGED_FRACTION of its best val accuracy first, by the mean over its runs."""
    found = convergence(experiments)
    first = leaders({recipe: statistics.fmean(found[recipe]["epochs"]) for recipe in found})
    runs = ", ".join(f"{r} epoch {epoch_text(v['epochs'])} of {v['of']} (best val accuracy "
                     f"{spread_text(v['best_val_acc'])})" for r, v in found.items())
    verb, own = ("converged fastest", "its") if len(first) == 1 else ("converged equally fast", "their")
    return (f"{join(first)} {verb}, reaching {CONVERGED_FRACTION:.0%} of {own} own best validation accuracy "
            f"by epoch {epoch_text(found[first[0]]['epochs'])} ({runs}).")


def generalisation_sentence(experiments: list[Experiment]) -> str:
    """The smallest train - val gap, by the mean over each recipe's runs."""
    gaps = {recipe: statistics.fmean(values) for recipe, values in generalisation_gaps(experiments).items()}
    best = leaders({recipe: abs(gap) for recipe, gap in gaps.items()})
    runs = ", ".join(f"{recipe} {gap:+.{DIGITS}f}" for recipe, gap in gaps.items())
    verb = "generalises best" if len(best) == 1 else "generalise equally well"
    mean = " (mean over the runs)" if any(len(e.runs) > 1 for e in experiments) else ""
    return (f"{join(best)} {verb}: the smallest gap between train and validation accuracy of the kept model{mean} "
            f"(train - val: {runs}).")


def confusion_sentence(experiments: list[Experiment]) -> str:
    tops = top_confusions(experiments)
    found = {recipe: cell for recipe, cell in tops.items() if cell}
    if not found:
        return ("No confusion is over-represented: for every recipe the errors are spread evenly over the "
                "off-diagonal cells (or there are none).")
    worst = max(found, key=lambda recipe: found[recipe]["z"])
    runs = "; ".join(f"{recipe}: {confusion_text(cell)} (z {cell['z']:.2f}, {cell['count']} images)" if cell
                     else f"{recipe}: none above the mean error cell" for recipe, cell in tops.items())
    sentence = (f"The most over-represented confusion is {confusion_text(found[worst])} "
                f"(z-score {found[worst]['z']:.2f} in {worst}), judged among the errors alone (z-scores over the "
                f"off-diagonal cells). Largest per recipe (its runs' counts summed): {runs}.")
    counts = pd.Series([confusion_text(cell) for cell in found.values()]).value_counts()
    if counts.iloc[0] > 1:
        sentence += f" {counts.index[0]} is the top confusion of {counts.iloc[0]} of {len(tops)} recipes."
    return sentence


def health_sentence(experiments: list[Experiment]) -> str:
    flags = {e.recipe: e.health for e in experiments}  # None where a recipe's runs recorded none
    recorded = {recipe: h for recipe, h in flags.items() if h}
    missing = [recipe for recipe, h in flags.items() if not h]
    if not recorded:
        return "Gradient health was not recorded for these runs (no health block in their metrics)."
    flagged = [f"{recipe} showed {kind} gradients ({bound} gradient norm {norm:.3g})"
               for recipe, h in recorded.items()
               for kind, on, norm, bound in (("vanishing", h.vanishing_gradients, h.min_grad_norm, "smallest"),
                                             ("exploding", h.exploding_gradients, h.max_grad_norm, "largest"))
               if on]
    if flagged:
        sentence = "; ".join(flagged) + "."
    else:
        norms = [norm for h in recorded.values() for norm in (h.min_grad_norm, h.max_grad_norm) if norm is not None]
        span = f": trained layers' gradient norms stayed in [{min(norms):.3g}, {max(norms):.3g}]" if norms else ""
        subject = "None of the recorded runs" if missing else "No run"
        sentence = f"{subject} showed vanishing or exploding gradients{span}."
    if missing:
        sentence += f" Not recorded for {join(missing)}."
    return sentence


def leaderboard(experiments: list[Experiment]) -> list[dict]:
    """Recipes ranked by the mean test RANKED_BY (macro F1) over their runs, then mean accuracy; collapsed models
    last, whatever their score."""
    ranked = sorted(experiments, key=lambda e: (e.collapsed, -e.mean(RANKED_BY), -e.mean("acc")))
    return [{"rank": i, "recipe": e.recipe, "experiment": e, "best_epochs": [r.metrics.best_epoch for r in e.runs],
             "epochs": [r.details.epochs if r.details else None for r in e.runs],
             "train_seconds": statistics.fmean(r.metrics.train_seconds for r in e.runs),
             "collapsed": e.collapsed, "unverified": e.unverified} for i, e in enumerate(ranked, 1)]


def score_text(exp: Experiment, metric: str = RANKED_BY) -> str:
    """A test score: one run's value with its bootstrap interval over test images, or the mean ± sd over the runs
    with each seed's value."""
    if len(exp.runs) == 1:
        test = exp.first.metrics.test
        lo, hi = getattr(test, f"{metric}_ci") or (float("nan"), float("nan"))
        return f"{getattr(test, metric):.{DIGITS}f} [{lo:.{DIGITS}f}, {hi:.{DIGITS}f}]"
    values = exp.test_values(metric)
    return f"{spread_text(values)} ({per_seed_text(exp, values)})"



@dataclass(frozen=True)
class Pair:
    """b against a over the seeds both were trained on, each seed on its own test images: the RANKED_BY
    difference b - a over runs (facelab.evaluation.runs.OverRuns), which decides every verdict; Almost Stochastic
    Order beside it (aso: deepsig's eps_min that `ahead`, the recipe with the higher mean, is better; None with one
    seed); McNemar's exact test on accuracy with one seed only; the Holm adjustment over the task's pairs."""
    a: str
    b: str
    over_runs: OverRuns
    images: tuple[int, ...]
    ahead: str
    aso: float | None
    mcnemar: dict | None
    comparisons: int = 1
    p_holm: float = 1.0

    @property
    def significant(self) -> bool:
        return self.over_runs.p_value < SIGNIFICANCE

    def turned(self) -> Pair:
        """a against b: the same test read the other way round."""
        test = self.mcnemar
        swapped = None if test is None else {**test, "a_only": test["b_only"], "b_only": test["a_only"]}
        return replace(self, a=self.b, b=self.a, over_runs=self.over_runs.flipped(), mcnemar=swapped)


def seed_pairs(a: Experiment, b: Experiment) -> tuple[list[SeedPair], int]:
    """The seeds both experiments ran whose predictions list the same test images (class indices), in a's seed
    order; and the number of classes."""
    classes = a.first.confusion.classes
    index = {name: i for i, name in enumerate(classes)}
    runs_b = {r.seed: r for r in b.runs}
    found = []
    for run_a in a.runs:
        run_b = runs_b.get(run_a.seed)
        pa, pb = run_a.predictions, run_b.predictions if run_b is not None else None
        if pa is None or pb is None or len(pa) != len(pb) or not (pa["actual"] == pb["actual"]).all():
            continue
        found.append(SeedPair(run_a.seed, pa["actual"].map(index).to_numpy(), pa["predicted"].map(index).to_numpy(),
                              pb["predicted"].map(index).to_numpy()))
    return found, len(classes)


def paired(a: Experiment, b: Experiment, comparisons: int = 1) -> Pair | None:
    """b against a over their shared seeds (module docstring); None when no seed scored both on the same test
    images. comparisons: the task's number of pairs, ASO's Bonferroni correction."""
    pairs, num_classes = seed_pairs(a, b)
    if not pairs:
        return None
    seeds = {pair.seed for pair in pairs}
    scores = {e.recipe: [float(getattr(r.metrics.test, RANKED_BY)) for r in e.runs if r.seed in seeds]
              for e in (a, b)}
    ahead, behind = (b.recipe, a.recipe) if statistics.fmean(scores[b.recipe]) > statistics.fmean(
        scores[a.recipe]) else (a.recipe, b.recipe)
    only = pairs[0] if len(pairs) == 1 else None
    found = compare_over_runs(pairs, num_classes, RANKED_BY)
    return Pair(a=a.recipe, b=b.recipe, over_runs=found, images=tuple(p.actual.size for p in pairs), ahead=ahead,
                aso=aso_eps_min(scores[ahead], scores[behind], num_comparisons=comparisons),
                mcnemar=mcnemar_exact(only.actual, only.predicted_a, only.predicted_b) if only else None,
                p_holm=found.p_value)


def pairwise(experiments: list[Experiment]) -> list[Pair]:
    """Every pair of recipes, in leaderboard order (a ranked above b), each with its Holm-adjusted p-value over
    the task's comparisons (three recipes: three tests on the same seeds' test sets)."""
    order = {row["recipe"]: row["rank"] for row in leaderboard(experiments)}
    ranked = sorted(experiments, key=lambda e: order[e.recipe])
    combos = list(itertools.combinations(ranked, 2))
    pairs = [found for a, b in combos if (found := paired(a, b, comparisons=len(combos)))]
    adjusted = holm([p.over_runs.p_value for p in pairs])
    return [replace(p, comparisons=len(pairs), p_holm=q) for p, q in zip(pairs, adjusted)]


def oriented(pairs: list[Pair], a: Experiment, b: Experiment) -> Pair | None:
    """b against a (difference b - a), with the Holm adjustment of that pair among the task's pairs (pairwise)."""
    found = next((p for p in pairs if {p.a, p.b} == {a.recipe, b.recipe}), None)
    if found is None or found.a == a.recipe:
        return found
    return found.turned()


def coverage_text(experiments: list[Experiment]) -> str:
    """The one line that says what the intervals cover."""
    seeds = sorted(set.intersection(*(set(e.seeds) for e in experiments))) if experiments else []
    named = ", ".join(map(str, seeds))
    if len(seeds) <= 1:
        return (f"What the intervals cover: the test images only. One training run per recipe (seed {named}), so "
                f"run-to-run variation is not included: another seed (split, initialisation, augmentation, batch "
                f"order) can move a score by as much as these intervals are wide.")
    return (f"What the intervals cover: {len(seeds)} training runs per recipe (seeds {named}: each its own split, "
            f"initialisation, augmentation and batch order) and the test images of each. A difference's interval is "
            f"a t interval over the seeds' paired differences ({len(seeds) - 1} degrees of freedom); each seed's own "
            f"bracket covers its test images only.")


def decision_text(pairs: list[Pair]) -> str:
    """The line that says which test decides."""
    m = len(pairs)
    over = pairs and pairs[0].over_runs.runs_included
    test = ("the difference in test macro F1 over the seeds (each seed's paired difference on its own test images, "
            "a t interval over the seeds; two-sided p < " if over else
            f"the paired bootstrap of the test macro F1 difference ({BOOTSTRAP['n_resamples']} resamples of the "
            f"same test images, stratified by class; two-sided p < ")
    beside = (f"Almost Stochastic Order (deepsig's ε_min that the recipe with the higher mean is better; below "
              f"{ASO_THRESHOLD} it is deemed better) is shown beside it as a second opinion." if over else
              "McNemar's exact test on accuracy is shown beside it; Almost Stochastic Order needs two seeds or more.")
    return (f"Which recipe is better is decided by {test}{SIGNIFICANCE}), the statistic the leaderboard ranks by. "
            f"{beside} {m} pairwise comparison{'s' if m != 1 else ''}: the Holm-adjusted p says whether a "
            f"difference survives that many tests.")


def p_text(p: float, resamples: int | None, comparisons: int = 1) -> str:
    """Every printed p-value, no finer than its test resolves: '= 0.012', or '< 0.001' below stats.p_floor.
    resamples: the bootstrap's number of resamples, None for an exact p (a t distribution's, McNemar's);
    comparisons: the number of p-values a Holm-adjusted p was adjusted over. 2,000 resamples print "< 0.001",
    Holm over 3 pairs "< 0.003", never "< 0.0005"."""
    floor = p_floor(resamples, comparisons)
    return f"< {round_up(floor)}" if p < floor else f"= {p:.2g}"


def round_up(value: float) -> str:
    """A positive value to one significant digit, rounded up (0.00133 -> '0.002'), so "p < it" stays true."""
    exponent = math.floor(math.log10(value))
    return f"{math.ceil(value / 10 ** exponent - 1e-9) * 10 ** exponent:.{max(0, -exponent)}f}"


def pair_p_text(pair_: Pair, holm_adjusted: bool = False) -> str:
    """A pair's p (or its Holm-adjusted p) through p_text: the paired bootstrap's with one seed, the t
    distribution's (exact) over seeds."""
    resamples = None if pair_.over_runs.runs_included else BOOTSTRAP["n_resamples"]
    if holm_adjusted:
        return p_text(pair_.p_holm, resamples, pair_.comparisons)
    return p_text(pair_.over_runs.p_value, resamples)


def aso_text(pair_: Pair) -> str:
    if pair_.aso is None:
        return "Almost Stochastic Order: needs two seeds or more"
    verdict = "deemed better" if pair_.aso < ASO_THRESHOLD else "not deemed better"
    return f"Almost Stochastic Order: ε_min {pair_.aso:.2f} that {pair_.ahead} is better ({verdict})"


def difference_text(pair_: Pair) -> str:
    """b minus a, one seed: 'macro F1 +0.031 (paired bootstrap 95% CI [-0.010, +0.070], p = 0.21; Holm over 3
    comparisons: p = 0.63, does not survive); accuracy (McNemar): p = 0.21, 12 test images only b got right, 7 only
    a'; over seeds: 'macro F1 +0.031 over 3 seeds (95% CI over seeds and test images [...], p = ...; Holm ...;
    per seed +0.020, +0.050, +0.023); Almost Stochastic Order: ε_min 0.12 that b is better (deemed better)'."""
    found = pair_.over_runs
    lo, hi = found.ci
    holm_text = (f"; Holm over {pair_.comparisons} comparisons: p {pair_p_text(pair_, holm_adjusted=True)}, "
                 f"{'survives' if pair_.p_holm < SIGNIFICANCE else 'does not survive'}"
                 if pair_.comparisons > 1 else "")
    interval_ = f"[{lo:+.{DIGITS}f}, {hi:+.{DIGITS}f}], p {pair_p_text(pair_)}{holm_text}"
    if found.runs_included:
        per_seed = ", ".join(f"{d:+.{DIGITS}f}" for d in found.per_seed)
        return (f"macro F1 {found.diff:+.{DIGITS}f} over {len(found.seeds)} seeds (95% CI over seeds and test "
                f"images {interval_}; per seed {per_seed}); {aso_text(pair_)}")
    test = pair_.mcnemar or {}
    return (f"macro F1 {found.diff:+.{DIGITS}f} (paired bootstrap 95% CI {interval_}); accuracy (McNemar's exact "
            f"test): p {p_text(test.get('p_value', float('nan')), None)}, {test.get('b_only')} test images only "
            f"{pair_.b} got right, {test.get('a_only')} only {pair_.a}")


def scope_text(pair_: Pair) -> str:
    """Where the pair was compared: 'on 200 test images' or 'over 3 seeds (360 test images in all)'."""
    if len(pair_.images) == 1:
        return f"on {pair_.images[0]} test images"
    return f"over {len(pair_.images)} seeds ({sum(pair_.images)} test images in all)"


def detectable_text(pair_: Pair) -> str:
    """What this test could find: with one seed, the smallest macro F1 difference its test images find POWER of
    the time (stats.minimum_detectable), not a test size for the observed difference, which is as noisy as the
    test that could not separate it."""
    if pair_.over_runs.runs_included:
        return "the seeds disagree more than the difference is large: more seeds, not more test images, would narrow it"
    detectable = pair_.over_runs.detectable
    if not detectable:
        return ("every resample gives the same macro F1 difference (the two predict alike), so no test size would "
                "separate them")
    return (f"with {pair_.images[0]} test images, a macro F1 difference of at least {detectable:.{DIGITS}f} would be "
            f"found {POWER:.0%} of the time (p < {SIGNIFICANCE})")


def verdict_sentence(experiments: list[Experiment], pairs: list[Pair]) -> str:
    """Which recipe is best, by how much, and whether that is more than noise over these runs and test images
    (pairs: the task's pairwise comparisons)."""
    board = leaderboard(experiments)
    usable = [row for row in board if not row["collapsed"]]
    if not usable:
        return "Every model collapsed: no recipe can be named best on this task."
    top = usable[0]
    if len(board) == 1:
        return f"{top['recipe']} is the only recipe scored."
    second = board[1]
    found = oriented(pairs, second["experiment"], top["experiment"])
    caveat = " (trained from weights that are not ImageNet's)" if top["unverified"] else ""
    first_text, second_text = score_text(top["experiment"]), score_text(second["experiment"])
    if found is None:
        return (f"{top['recipe']}{caveat} ranks first by test macro F1 {first_text}; no paired test was "
                f"possible (the recipes share no seed scored on the same test images).")
    if second["collapsed"] or found.significant:
        return (f"{top['recipe']}{caveat} is the best recipe: test macro F1 {first_text} against "
                f"{second['recipe']} {second_text}{' (collapsed)' if second['collapsed'] else ''}; "
                f"{difference_text(found)} {scope_text(found)}.")
    return (f"{top['recipe']}{caveat} and {second['recipe']} cannot be told apart {scope_text(found)}: test "
            f"macro F1 {first_text} against {second_text}, {difference_text(found)}; {detectable_text(found)}.")


def collapse_sentence(experiments: list[Experiment]) -> str | None:
    """Which models collapsed, and the causes the files show."""
    down = [e for e in experiments if e.collapsed]
    if not down:
        return None
    parts = []
    for e in down:
        causes = likely_causes(e)
        runs = [r for r in e.runs if r.metrics.collapsed]
        reason = "; ".join(((f"on seed {r.seed}: " if len(e.runs) > 1 else "")
                            + ((r.details.collapse.reason if r.details else None) or "collapsed")) for r in runs)
        of = f" (collapsed on {len(runs)} of {len(e.runs)} seeds)" if len(e.runs) > 1 else ""
        parts.append(f"{e.recipe}{of} {reason}" + (f"; likely causes: {'; '.join(causes)}" if causes else ""))
    return (f"{join([e.recipe for e in down])} collapsed and {'is' if len(down) == 1 else 'are'} ranked last: "
            + ". ".join(parts) + ".")


def trained_recipe(exp: Experiment) -> dict:
    """The recipe the model was trained with, as its first run's details record it (every run shares it; {} for
    results without details)."""
    details = exp.first.details
    return details.recipe if details is not None else {}


def likely_causes(exp: Experiment) -> list[str]:
    """Causes read from the settings the model was trained with, not from its recipe's name."""
    recipe = trained_recipe(exp)
    causes = []
    details = exp.first.details
    if exp.unverified and details is not None:
        causes.append(f"its starting weights ({details.weights.file}) are not torchvision's ImageNet file")
    if recipe.get("frozen"):
        start = ("randomly initialised" if recipe.get("weights") != "imagenet" else
                 "stand-in (not ImageNet)" if exp.unverified else "ImageNet")
        causes.append(f"a frozen trunk ({', '.join(recipe['frozen'])}) with {start} weights: only the rest learns")
    if recipe.get("lr") is not None:
        causes.append(f"learning rate {recipe['lr']:g} ({recipe.get('optimizer', '')})")
    return causes


def starting_points(experiments: list[Experiment]) -> list[tuple[Experiment, Experiment]]:
    """(random init, ImageNet) pairs of the same architecture and the same frozen layers, from saved settings."""
    settings = trained_recipe
    return [(a, b) for a in experiments for b in experiments
            if settings(a).get("weights") == "none" and settings(b).get("weights") == "imagenet"
            and settings(a).get("arch") == settings(b).get("arch")
            and list(settings(a).get("frozen", [])) == list(settings(b).get("frozen", []))]


def pretraining_sentence(experiments: list[Experiment], pairs: list[Pair]) -> str | None:
    """Does starting from ImageNet weights help here, by how much, at what training time: asked only of two
    recipes whose saved settings say one started from ImageNet and the other from random weights."""
    candidates = starting_points(experiments)
    if not candidates:
        starts = sorted({trained_recipe(e).get("weights", "?") for e in experiments})
        return (f"Pretraining is not measured here: no two recipes of one architecture differ in their starting "
                f"weights (weights: {', '.join(starts)}).")
    scratch, pretrained = candidates[0]
    names = f"{pretrained.recipe} (ImageNet weights) against {scratch.recipe} (random initialisation)"
    seconds = tuple(statistics.fmean(r.metrics.train_seconds for r in e.runs) for e in (pretrained, scratch))
    mean = " on average" if len(pretrained.runs) > 1 else ""
    cost = (f"it trained in {seconds[0]:.0f} s{mean} against {seconds[1]:.0f} s from random initialisation "
            f"({seconds[0] / seconds[1]:.2f}x the time)")
    others = other_differences(scratch, pretrained)
    details = pretrained.first.details
    if pretrained.unverified and details is not None:
        return (f"Pretraining is not measured here: {pretrained.recipe} started from "
                f"{details.weights.file}, which is not torchvision's ImageNet file "
                f"(a stand-in); {cost}.")
    found = oriented(pairs, scratch, pretrained)
    if found is None:
        return f"{names}: no paired test possible; {cost}."
    shown_by = "these runs" if found.over_runs.runs_included else "this test set"
    verdict = (("Starting from ImageNet weights helps" if found.over_runs.diff > 0 else
                "Starting from ImageNet weights hurts") if found.significant
               else f"Starting from ImageNet weights makes no difference that {shown_by} can show")
    return f"{verdict}: {names}, {difference_text(found)}; {cost}{others}."


def other_differences(a: Experiment, b: Experiment) -> str:
    """Settings besides the starting weights in which two recipes differ: the comparison is not only of those."""
    ra, rb = trained_recipe(a), trained_recipe(b)
    keys = [k for k in ra if k not in ("weights", "augment") and ra.get(k) != rb.get(k)]
    if not keys:
        return ""
    return (f"; the two also differ in {', '.join(f'{k} {rb.get(k)} vs {ra.get(k)}' for k in keys)}, so this is "
            f"not the effect of the starting weights alone")


def compare_task(experiments: list[Experiment], pairs: list[Pair] | None = None) -> list[str]:
    """The comparison paragraph of one task, one computed sentence per question (pairs: the task's pairwise
    comparisons, when already computed). Collapsed models are named, never praised: convergence and generalisation
    are compared among the models that did not collapse."""
    usable = [e for e in experiments if not e.collapsed]
    if pairs is None:
        pairs = pairwise(experiments)  # every comparison over runs once; the sentences below read them
    sentences = [verdict_sentence(experiments, pairs), collapse_sentence(experiments),
                 pretraining_sentence(experiments, pairs)]
    if usable:
        sentences += [convergence_sentence(usable), generalisation_sentence(usable)]
    sentences += [confusion_sentence(experiments), health_sentence(experiments)]
    return [s for s in sentences if s]
