"""Comparison of a task's recipes, computed from their loaded experiment dicts: the numbers, then sentences built on them.

An experiment dict holds "recipe", "metrics" (metrics/<task>/<recipe>.json), "history" (history.csv as a
DataFrame), "confusion" (confusion.json) and "health" (the metrics' health block, or None)."""
from __future__ import annotations

import pandas as pd

CONVERGED_FRACTION = 0.95  # the issue's definition: first epoch at 95% of the run's own best val accuracy
DIGITS = 3  # numbers are printed to 3 decimals; ties are judged at that precision, so no claim rests on unseen digits


def epochs_to_fraction(history: pd.DataFrame, fraction: float = CONVERGED_FRACTION) -> int:
    """The first epoch whose val accuracy reaches `fraction` of the run's best val accuracy."""
    best = history["val/acc"].max()
    return int(history.loc[history["val/acc"] >= fraction * best, "epoch"].iloc[0])


def convergence(experiments: list[dict]) -> dict[str, dict]:
    return {e["recipe"]: {"epoch": epochs_to_fraction(e["history"]), "of": int(e["history"]["epoch"].max()),
                          "best_val_acc": float(e["history"]["val/acc"].max())} for e in experiments}


def generalisation_gaps(experiments: list[dict]) -> dict[str, float]:
    """Train minus val accuracy of the kept model (the one the test scores belong to)."""
    return {e["recipe"]: e["metrics"]["train"]["acc"] - e["metrics"]["val"]["acc"] for e in experiments}


def off_diagonal(confusion: dict) -> list[dict]:
    """Every confusion (actual != predicted) with its z-score and count, the most over-represented first."""
    classes, raw, z = confusion["classes"], confusion["raw"], confusion["zscore"]
    cells = [{"actual": a, "predicted": p, "z": float(z[i][j]), "count": int(raw[i][j])}
             for i, a in enumerate(classes) for j, p in enumerate(classes) if i != j]
    return sorted(cells, key=lambda cell: -cell["z"])


def top_confusions(experiments: list[dict]) -> dict[str, dict | None]:
    """Each recipe's largest off-diagonal z-score; None when no confusion is above the mean cell (z <= 0)."""
    tops = {e["recipe"]: off_diagonal(e["confusion"])[0] for e in experiments}
    return {recipe: cell if cell["z"] > 0 else None for recipe, cell in tops.items()}


def health_flags(experiments: list[dict]) -> dict[str, dict | None]:
    """Each recipe's health block, None where the run recorded none."""
    return {e["recipe"]: e.get("health") for e in experiments}


def pair(cell: dict) -> str:
    return f"{cell['actual']} -> {cell['predicted']}"


def join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def leaders(values: dict[str, float]) -> list[str]:
    """The recipes with the smallest value at printed precision (all of them on a tie)."""
    low = min(round(v, DIGITS) for v in values.values())
    return [name for name, v in values.items() if round(v, DIGITS) == low]


def convergence_sentence(experiments: list[dict]) -> str:
    found = convergence(experiments)
    first = leaders({recipe: found[recipe]["epoch"] for recipe in found})
    runs = ", ".join(f"{r} epoch {v['epoch']} of {v['of']} (best val accuracy {v['best_val_acc']:.{DIGITS}f})"
                     for r, v in found.items())
    verb, own = ("converged fastest", "its") if len(first) == 1 else ("converged equally fast", "their")
    return (f"{join(first)} {verb}, reaching {CONVERGED_FRACTION:.0%} of {own} own best validation accuracy "
            f"by epoch {found[first[0]]['epoch']} ({runs}).")


def generalisation_sentence(experiments: list[dict]) -> str:
    gaps = generalisation_gaps(experiments)
    best = leaders({recipe: abs(gap) for recipe, gap in gaps.items()})
    runs = ", ".join(f"{recipe} {gap:+.{DIGITS}f}" for recipe, gap in gaps.items())
    verb = "generalises best" if len(best) == 1 else "generalise equally well"
    return (f"{join(best)} {verb}: the smallest gap between train and validation accuracy of the kept model "
            f"(train - val: {runs}).")


def confusion_sentence(experiments: list[dict]) -> str:
    tops = top_confusions(experiments)
    found = {recipe: cell for recipe, cell in tops.items() if cell}
    if not found:
        return "No confusion is over-represented: in every run, each off-diagonal z-score is at or below 0."
    worst = max(found, key=lambda recipe: found[recipe]["z"])
    runs = "; ".join(f"{recipe}: {pair(cell)} (z {cell['z']:.2f}, {cell['count']} images)" if cell
                     else f"{recipe}: none above the mean cell" for recipe, cell in tops.items())
    sentence = (f"The most over-represented confusion is {pair(found[worst])} "
                f"(z-score {found[worst]['z']:.2f} in {worst}). Largest per run: {runs}.")
    counts = pd.Series([pair(cell) for cell in found.values()]).value_counts()
    if counts.iloc[0] > 1:
        sentence += f" {counts.index[0]} is the top confusion of {counts.iloc[0]} of {len(tops)} recipes."
    return sentence


def health_sentence(experiments: list[dict]) -> str:
    flags = health_flags(experiments)
    recorded = {recipe: h for recipe, h in flags.items() if h}
    missing = [recipe for recipe, h in flags.items() if not h]
    if not recorded:
        return "Gradient health was not recorded for these runs (no health block in their metrics)."
    flagged = [f"{recipe} showed {kind} gradients ({bound} gradient norm {h[key]:.3g})"
               for recipe, h in recorded.items()
               for kind, key, bound in (("vanishing", "min_grad_norm", "smallest"),
                                        ("exploding", "max_grad_norm", "largest"))
               if h.get(f"{kind}_gradients")]
    if flagged:
        sentence = "; ".join(flagged) + "."
    else:
        norms = [h[key] for h in recorded.values() for key in ("min_grad_norm", "max_grad_norm")
                 if h.get(key) is not None]
        span = f": trained layers' gradient norms stayed in [{min(norms):.3g}, {max(norms):.3g}]" if norms else ""
        subject = "None of the recorded runs" if missing else "No run"
        sentence = f"{subject} showed vanishing or exploding gradients{span}."
    if missing:
        sentence += f" Not recorded for {join(missing)}."
    return sentence


def compare_task(experiments: list[dict]) -> list[str]:
    """The comparison paragraph of one task, one computed sentence per question."""
    return [convergence_sentence(experiments), generalisation_sentence(experiments),
            confusion_sentence(experiments), health_sentence(experiments)]
