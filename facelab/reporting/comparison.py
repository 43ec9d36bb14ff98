"""Comparison of a task's recipes, computed from their loaded experiments (facelab.reporting.results.Experiment):
the numbers, then sentences built on them. No sentence praises a collapsed model: the convergence and
generalisation questions are answered among the others only."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from facelab.evaluation.records import Confusion, TestScores
from facelab.evaluation.stats import (
    BOOTSTRAP,
    POWER,
    RANKED_BY,
    SIGNIFICANCE,
    holm,
    mcnemar_exact,
    paired_bootstrap_diff,
)
from facelab.modelcard import Health
from facelab.names import key
from facelab.reporting.results import Experiment

CONVERGED_FRACTION = 0.95  # converged: the first epoch at 95% of the run's own best val accuracy
DIGITS = 3  # numbers are printed to 3 decimals; ties are judged at that precision, so no claim rests on unseen digits


def epochs_to_fraction(history: pd.DataFrame, fraction: float = CONVERGED_FRACTION) -> int:
    """The first epoch whose val accuracy reaches `fraction` of the run's best val accuracy."""
    best = history[key("val", "acc")].max()
    return int(history.loc[history[key("val", "acc")] >= fraction * best, "epoch"].iloc[0])


def convergence(experiments: list[Experiment]) -> dict[str, dict]:
    return {e.recipe: {"epoch": epochs_to_fraction(e.history), "of": int(e.history["epoch"].max()),
                       "best_val_acc": float(e.history[key("val", "acc")].max())} for e in experiments}


def generalisation_gaps(experiments: list[Experiment]) -> dict[str, float]:
    """Train minus val accuracy of the kept model (the one the test scores belong to)."""
    return {e.recipe: e.metrics.train.acc - e.metrics.val.acc for e in experiments}


def off_diagonal(confusion: Confusion) -> list[dict]:
    """Every confusion (actual != predicted) with its z-score and count, the most over-represented first."""
    classes, raw, z = confusion.classes, confusion.raw, confusion.zscore
    cells = [{"actual": a, "predicted": p, "z": float(z[i][j]), "count": int(raw[i][j])}
             for i, a in enumerate(classes) for j, p in enumerate(classes) if i != j]
    return sorted(cells, key=lambda cell: -cell["z"])


def top_confusions(experiments: list[Experiment]) -> dict[str, dict | None]:
    """Each recipe's largest off-diagonal z-score; None when no confusion is above the mean cell (z <= 0)."""
    tops = {e.recipe: off_diagonal(e.confusion)[0] for e in experiments}
    return {recipe: cell if cell["z"] > 0 else None for recipe, cell in tops.items()}


def health_flags(experiments: list[Experiment]) -> dict[str, Health | None]:
    """Each recipe's health block, None where the run recorded none."""
    return {e.recipe: e.health for e in experiments}


def confusion_text(cell: dict) -> str:
    return f"{cell['actual']} -> {cell['predicted']}"


def join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def leaders(values: dict[str, float]) -> list[str]:
    """The recipes with the smallest value at printed precision (all of them on a tie)."""
    low = min(round(v, DIGITS) for v in values.values())
    return [name for name, v in values.items() if round(v, DIGITS) == low]


def convergence_sentence(experiments: list[Experiment]) -> str:
    found = convergence(experiments)
    first = leaders({recipe: found[recipe]["epoch"] for recipe in found})
    runs = ", ".join(f"{r} epoch {v['epoch']} of {v['of']} (best val accuracy {v['best_val_acc']:.{DIGITS}f})"
                     for r, v in found.items())
    verb, own = ("converged fastest", "its") if len(first) == 1 else ("converged equally fast", "their")
    return (f"{join(first)} {verb}, reaching {CONVERGED_FRACTION:.0%} of {own} own best validation accuracy "
            f"by epoch {found[first[0]]['epoch']} ({runs}).")


def generalisation_sentence(experiments: list[Experiment]) -> str:
    gaps = generalisation_gaps(experiments)
    best = leaders({recipe: abs(gap) for recipe, gap in gaps.items()})
    runs = ", ".join(f"{recipe} {gap:+.{DIGITS}f}" for recipe, gap in gaps.items())
    verb = "generalises best" if len(best) == 1 else "generalise equally well"
    return (f"{join(best)} {verb}: the smallest gap between train and validation accuracy of the kept model "
            f"(train - val: {runs}).")


def confusion_sentence(experiments: list[Experiment]) -> str:
    tops = top_confusions(experiments)
    found = {recipe: cell for recipe, cell in tops.items() if cell}
    if not found:
        return "No confusion is over-represented: in every run, each off-diagonal z-score is at or below 0."
    worst = max(found, key=lambda recipe: found[recipe]["z"])
    runs = "; ".join(f"{recipe}: {confusion_text(cell)} (z {cell['z']:.2f}, {cell['count']} images)" if cell
                     else f"{recipe}: none above the mean cell" for recipe, cell in tops.items())
    sentence = (f"The most over-represented confusion is {confusion_text(found[worst])} "
                f"(z-score {found[worst]['z']:.2f} in {worst}). Largest per run: {runs}.")
    counts = pd.Series([confusion_text(cell) for cell in found.values()]).value_counts()
    if counts.iloc[0] > 1:
        sentence += f" {counts.index[0]} is the top confusion of {counts.iloc[0]} of {len(tops)} recipes."
    return sentence


def health_sentence(experiments: list[Experiment]) -> str:
    flags = health_flags(experiments)
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


def collapsed(exp: Experiment) -> bool:
    return exp.metrics.collapsed


def unverified(exp: Experiment) -> bool:
    return exp.metrics.weights_verified is False


def ranked_score(test: TestScores) -> float:
    """The test score the leaderboard ranks by (RANKED_BY)."""
    return float(getattr(test, RANKED_BY))


def leaderboard(experiments: list[Experiment]) -> list[dict]:
    """Recipes ranked by test RANKED_BY (macro F1), then accuracy; collapsed models last, whatever their score."""
    ranked = sorted(experiments, key=lambda e: (collapsed(e), -ranked_score(e.metrics.test), -e.metrics.test.acc))
    return [{"rank": i, "recipe": e.recipe, "test": e.metrics.test, "best_epoch": e.metrics.best_epoch,
             "epochs": e.details.epochs if e.details else None, "train_seconds": e.metrics.train_seconds,
             "collapsed": collapsed(e), "unverified": unverified(e)} for i, e in enumerate(ranked, 1)]


def f1_text(test: TestScores) -> str:
    lo, hi = test.macro_f1_ci or (np.nan, np.nan)
    return f"{test.macro_f1:.{DIGITS}f} [{lo:.{DIGITS}f}, {hi:.{DIGITS}f}]"


def paired(a: Experiment, b: Experiment) -> dict | None:
    """b against a on the same test images: the macro F1 difference (the ranked statistic) with its paired
    bootstrap interval, p-value and the test size that would tell it apart, which decide every verdict; and
    McNemar's exact test on accuracy beside it. None when predictions are missing or differ in their images."""
    pa, pb = a.predictions, b.predictions
    if pa is None or pb is None or len(pa) != len(pb) or not (pa["actual"] == pb["actual"]).all():
        return None
    classes = a.confusion.classes
    index = {name: i for i, name in enumerate(classes)}
    actual = pa["actual"].map(index).to_numpy()
    ya, yb = pa["predicted"].map(index).to_numpy(), pb["predicted"].map(index).to_numpy()
    found = paired_bootstrap_diff(actual, ya, yb, len(classes), RANKED_BY, **BOOTSTRAP)
    return {"a": a.recipe, "b": b.recipe, "images": len(actual), RANKED_BY: found,
            "significant": found["p_value"] < SIGNIFICANCE, "mcnemar": mcnemar_exact(actual, ya, yb),
            "comparisons": 1, "p_holm": found["p_value"]}


def pairwise(experiments: list[Experiment]) -> list[dict]:
    """Every pair of recipes, in leaderboard order (a ranked above b), each with its Holm-adjusted p-value over
    the task's comparisons (three recipes: three tests on one test set)."""
    order = {row["recipe"]: row["rank"] for row in leaderboard(experiments)}
    ranked = sorted(experiments, key=lambda e: order[e.recipe])
    pairs = [found for a, b in itertools.combinations(ranked, 2) if (found := paired(a, b))]
    for pair_, adjusted in zip(pairs, holm([p[RANKED_BY]["p_value"] for p in pairs])):
        pair_.update(comparisons=len(pairs), p_holm=adjusted)
    return pairs


def oriented(pairs: list[dict], a: Experiment, b: Experiment) -> dict | None:
    """b against a (difference b - a), with the Holm adjustment of that pair among the task's pairs (pairwise)."""
    found = next((p for p in pairs if {p["a"], p["b"]} == {a.recipe, b.recipe}), None)
    if found is None or found["a"] == a.recipe:
        return found
    turned = paired(a, b)
    return None if turned is None else {**turned, "comparisons": found["comparisons"], "p_holm": found["p_holm"]}


def decision_text(pairs: list[dict]) -> str:
    """The one line that says which test decides."""
    m = len(pairs)
    return (f"Which recipe is better is decided by the paired bootstrap of the test macro F1 difference, the "
            f"statistic the leaderboard ranks by ({BOOTSTRAP['n_resamples']} resamples of the same test images, "
            f"stratified by class; two-sided p < {SIGNIFICANCE}). McNemar's exact test on accuracy is shown "
            f"beside it. {m} pairwise comparison{'s' if m != 1 else ''} on one test set: the Holm-adjusted p says "
            f"whether a difference survives that many tests.")


def p_text(p: float) -> str:
    """A bootstrap p-value: 0 means no resample crossed 0, so p is below one in the number of resamples."""
    return f"< {1 / BOOTSTRAP['n_resamples']:.1g}" if p == 0 else f"= {p:.2g}"


def difference_text(pair_: dict) -> str:
    """b minus a: 'macro F1 +0.031 (paired bootstrap 95% CI [-0.010, +0.070], p = 0.21; Holm over 3
    comparisons: p = 0.63); accuracy (McNemar): p = 0.21, 12 test images only b got right, 7 only a'."""
    found, test = pair_[RANKED_BY], pair_["mcnemar"]
    lo, hi = found["ci"]
    holm_text = (f"; Holm over {pair_['comparisons']} comparisons: p {p_text(pair_['p_holm'])}, "
                 f"{'survives' if pair_['p_holm'] < SIGNIFICANCE else 'does not survive'}"
                 if pair_["comparisons"] > 1 else "")
    return (f"macro F1 {found['diff']:+.{DIGITS}f} (paired bootstrap 95% CI [{lo:+.{DIGITS}f}, {hi:+.{DIGITS}f}], "
            f"p {p_text(found['p_value'])}{holm_text}); accuracy (McNemar's exact test): p = {test['p_value']:.2g}, "
            f"{test['b_only']} test images only {pair_['b']} got right, {test['a_only']} only {pair_['a']}")


def size_text(pair_: dict) -> str:
    needed = pair_[RANKED_BY]["images_needed"]
    if needed is None:
        return "the two score the same macro F1, so no test size would separate them"
    return (f"about {needed} test images would tell a macro F1 difference this size apart ({POWER:.0%} power, "
            f"p < {SIGNIFICANCE})")


def verdict_sentence(experiments: list[Experiment], pairs: list[dict]) -> str:
    """Which recipe is best, by how much, and whether that is more than noise on this many test images (pairs: the
    task's pairwise comparisons)."""
    board = leaderboard(experiments)
    usable = [row for row in board if not row["collapsed"]]
    if not usable:
        return "Every model collapsed: no recipe can be named best on this task."
    top = usable[0]
    if len(board) == 1:
        return f"{top['recipe']} is the only recipe scored."
    second = board[1]
    by = {e.recipe: e for e in experiments}
    found = oriented(pairs, by[second["recipe"]], by[top["recipe"]])
    caveat = " (trained from weights that are not ImageNet's)" if top["unverified"] else ""
    if found is None:
        return (f"{top['recipe']}{caveat} ranks first by test macro F1 {f1_text(top['test'])}; no paired test was "
                f"possible (the recipes were not scored on the same test images).")
    if second["collapsed"] or found["significant"]:
        return (f"{top['recipe']}{caveat} is the best recipe: test macro F1 {f1_text(top['test'])} against "
                f"{second['recipe']} {f1_text(second['test'])}{' (collapsed)' if second['collapsed'] else ''}; "
                f"{difference_text(found)} on {found['images']} test images.")
    return (f"{top['recipe']}{caveat} and {second['recipe']} cannot be told apart on {found['images']} test "
            f"images: test macro F1 {f1_text(top['test'])} against {f1_text(second['test'])}, "
            f"{difference_text(found)}; {size_text(found)}.")


def collapse_sentence(experiments: list[Experiment]) -> str | None:
    """Which models collapsed, and the causes the files show."""
    down = [e for e in experiments if collapsed(e)]
    if not down:
        return None
    parts = []
    for e in down:
        causes = likely_causes(e)
        reason = (e.details.collapse.reason if e.details else None) or "collapsed"
        parts.append(f"{e.recipe} {reason}" + (f"; likely causes: {'; '.join(causes)}" if causes else ""))
    return (f"{join([e.recipe for e in down])} collapsed and {'is' if len(down) == 1 else 'are'} ranked last: "
            + ". ".join(parts) + ".")


def trained_recipe(exp: Experiment) -> dict:
    """The recipe the model was trained with, as its details record it ({} for results without details)."""
    return exp.details.recipe if exp.details is not None else {}


def likely_causes(exp: Experiment) -> list[str]:
    """Causes read from the settings the model was trained with, not from its recipe's name."""
    recipe = trained_recipe(exp)
    causes = []
    if unverified(exp) and exp.details is not None:
        causes.append(f"its starting weights ({exp.details.weights.file}) are not torchvision's ImageNet file")
    if recipe.get("frozen"):
        start = ("randomly initialised" if recipe.get("weights") != "imagenet" else
                 "stand-in (not ImageNet)" if unverified(exp) else "ImageNet")
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


def pretraining_sentence(experiments: list[Experiment], pairs: list[dict]) -> str | None:
    """Does starting from ImageNet weights help here, by how much, at what training time: asked only of two
    recipes whose saved settings say one started from ImageNet and the other from random weights."""
    candidates = starting_points(experiments)
    if not candidates:
        starts = sorted({trained_recipe(e).get("weights", "?") for e in experiments})
        return (f"Pretraining is not measured here: no two recipes of one architecture differ in their starting "
                f"weights (weights: {', '.join(starts)}).")
    scratch, pretrained = candidates[0]
    names = f"{pretrained.recipe} (ImageNet weights) against {scratch.recipe} (random initialisation)"
    seconds = (pretrained.metrics.train_seconds, scratch.metrics.train_seconds)
    cost = (f"it trained in {seconds[0]:.0f} s against {seconds[1]:.0f} s from random initialisation "
            f"({seconds[0] / seconds[1]:.2f}x the time)")
    others = other_differences(scratch, pretrained)
    if unverified(pretrained) and pretrained.details is not None:
        return (f"Pretraining is not measured here: {pretrained.recipe} started from "
                f"{pretrained.details.weights.file}, which is not torchvision's ImageNet file "
                f"(a stand-in); {cost}.")
    found = oriented(pairs, scratch, pretrained)
    if found is None:
        return f"{names}: no paired test possible; {cost}."
    verdict = (("Starting from ImageNet weights helps" if found[RANKED_BY]["diff"] > 0 else
                "Starting from ImageNet weights hurts") if found["significant"]
               else "Starting from ImageNet weights makes no difference that this test set can show")
    return f"{verdict}: {names}, {difference_text(found)}; {cost}{others}."


def other_differences(a: Experiment, b: Experiment) -> str:
    """Settings besides the starting weights in which two recipes differ: the comparison is not only of those."""
    ra, rb = trained_recipe(a), trained_recipe(b)
    keys = [k for k in ra if k not in ("weights", "augment") and ra.get(k) != rb.get(k)]
    if not keys:
        return ""
    return (f"; the two also differ in {', '.join(f'{k} {rb.get(k)} vs {ra.get(k)}' for k in keys)}, so this is "
            f"not the effect of the starting weights alone")


def compare_task(experiments: list[Experiment]) -> list[str]:
    """The comparison paragraph of one task, one computed sentence per question. Collapsed models are named,
    never praised: convergence and generalisation are compared among the models that did not collapse."""
    usable = [e for e in experiments if not collapsed(e)]
    pairs = pairwise(experiments)  # every paired bootstrap once; the sentences below read them
    sentences = [verdict_sentence(experiments, pairs), collapse_sentence(experiments),
                 pretraining_sentence(experiments, pairs)]
    if usable:
        sentences += [convergence_sentence(usable), generalisation_sentence(usable)]
    sentences += [confusion_sentence(experiments), health_sentence(experiments)]
    return [s for s in sentences if s]
