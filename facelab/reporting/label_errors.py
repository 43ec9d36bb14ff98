"""The report's label-audit section per task: how many of each run's test images the audit stage flags as likely
mislabelled (facelab.evaluation.label_issues), its gallery, and the leaderboard and verdict recomputed on the test
split without them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelab import paths
from facelab.evaluation.label_issues import LabelIssues, read_label_issues
from facelab.evaluation.stats import RANKED_BY, macro_f1
from facelab.reporting.comparison import Pair, leaderboard, oriented, pairwise, spread_text, verdict_sentence
from facelab.reporting.results import Experiment, Run


@dataclass(frozen=True)
class Audit:
    """One task's label audit as the report reads it: the record and the gallery beside it."""
    record: LabelIssues
    gallery: Path


def load_audit(task: str, root: Path = Path(".")) -> Audit | None:
    """The audit stage's files of the task; None where it has not run (results from before the audit)."""
    record = paths.label_issues(task, root)
    return Audit(read_label_issues(record), paths.label_issues_gallery(task, root)) if record.is_file() else None


def flagged_test_images(record: LabelIssues, run: Run) -> np.ndarray | None:
    """The positions of the audit's flagged images in this run's test predictions; None when the run has no
    per-image predictions, or when the audit's split of that seed is not the run's (other classes at those rows:
    the audit is older or newer than the run)."""
    positions = record.results.test_positions.get(str(run.seed))
    if positions is None or run.predictions is None:
        return None
    index = np.asarray(positions, dtype=np.int64)
    if len(index) and index.max() >= len(run.predictions):
        return None
    given = run.predictions["actual"].to_numpy()[index]
    counts = record.results.counts[str(run.seed)]["test"]
    if any(int((given == name).sum()) != count for name, count in counts.items()):
        return None
    return index


def without_flagged(exp: Experiment, record: LabelIssues) -> Experiment | None:
    """The experiment with every run's flagged test images left out: test accuracy and macro F1 recomputed from its
    predictions (the test loss and intervals are not: they need the probabilities). None when any run's
    predictions cannot be matched to the audit (flagged_test_images)."""
    classes = exp.first.confusion.classes
    runs = []
    for run in exp.runs:
        flagged = flagged_test_images(record, run)
        if flagged is None or run.predictions is None:
            return None
        kept = run.predictions.drop(index=run.predictions.index[flagged]).reset_index(drop=True)
        index = {name: i for i, name in enumerate(classes)}
        actual, predicted = kept["actual"].map(index).to_numpy(), kept["predicted"].map(index).to_numpy()
        test = run.metrics.test.model_copy(update={
            "acc": float(np.mean(actual == predicted)), "acc_ci": None,
            "macro_f1": macro_f1(actual, predicted, len(classes)), "macro_f1_ci": None})
        runs.append(dataclasses.replace(run, predictions=kept,
                                        metrics=run.metrics.model_copy(update={"test": test})))
    return dataclasses.replace(exp, runs=runs)


def mean_text(exp: Experiment, metric: str) -> str:
    """The test score over the runs (mean ± sd with several seeds), without intervals: the recomputed scores have
    none."""
    return spread_text(exp.test_values(metric))


def verdict_of(experiments: list[Experiment], pairs: list[Pair]) -> tuple[str | None, bool]:
    """The recipe ranked first (None: all collapsed) and whether it is significantly ahead of the second."""
    usable = [row for row in leaderboard(experiments) if not row["collapsed"]]
    if not usable:
        return None, False
    board = leaderboard(experiments)
    if len(board) == 1:
        return usable[0]["recipe"], False
    found = oriented(pairs, board[1]["experiment"], usable[0]["experiment"])
    return usable[0]["recipe"], bool(found is not None and (board[1]["collapsed"] or found.significant))


def change_sentence(before: tuple[str | None, bool], after: tuple[str | None, bool], flagged: str) -> str:
    (top, apart), (top_after, apart_after) = before, after
    if (top, apart) == (top_after, apart_after):
        how = "is still significantly best" if apart else "still ranks first, not significantly ahead of the next"
        return f"Without the {flagged} the verdict does not change: {top} {how}."
    if top != top_after:
        return f"Without the {flagged} the verdict changes: {top_after} ranks first instead of {top}."
    now = "is now significantly ahead" if apart_after else "is no longer significantly ahead"
    return f"Without the {flagged} the verdict changes: {top} still ranks first but {now} of the next recipe."


def audit_blocks(task: str, experiments: list[Experiment], pairs: list[Pair], record: LabelIssues | None,
                 gallery: str | None) -> list[tuple]:
    """The task's label-audit section: counts, gallery, the leaderboard with and without the flagged test images,
    and whether the verdict changes."""
    blocks: list[tuple] = [("heading", 3, f"{task}: likely label errors", f"{task}_label_issues")]
    if record is None:
        return blocks + [("text", f"No label audit found: `dvc repro audit@{task}` writes "
                                  f"{paths.label_issues(task).as_posix()}.")]
    found, settings = record.results, record.settings
    per_seed = {run.seed: len(found.test_positions.get(str(run.seed), [])) for run in experiments[0].runs}
    tests = ", ".join(f"seed {seed}: {count}" for seed, count in per_seed.items())
    blocks.append(("text", f"The audit ({settings.folds}-fold out-of-sample probabilities, {settings.classifier} on "
                           f"{settings.features}; cleanlab {settings.filter_by}) flags {found.flagged} of "
                           f"{found.images} prepared images as likely mislabelled. Test images among them, per run's "
                           f"split: {tests}."))
    if settings.label_issues == "drop":
        left = ", ".join(f"seed {seed}: {found.flagged_in(seed, 'train')} train and {found.flagged_in(seed, 'val')} val"
                         for seed in per_seed)
        blocks.append(("text", f"`data.{task}.label_issues` is drop: each run left the flagged images of its train "
                               f"and val splits out of training ({left}; "
                               f"{paths.label_drop(task).as_posix()}). Flagged test images stay in the test split."))
    else:
        blocks.append(("text", f"`data.{task}.label_issues` is report: the flagged images are listed, none is left "
                               f"out of training (drop leaves the flagged train and val images out)."))
    if gallery is not None:
        blocks.append(("image", gallery, f"{task} likely label errors, most likely first (given -> suggested)"))
    cleaned = [without_flagged(exp, record) for exp in experiments]
    if any(exp is None for exp in cleaned):
        return blocks + [("text", "The leaderboard without them is not shown: a run's test predictions do not match "
                                  f"the audit's split (rerun `dvc repro` so audit@{task} and the runs agree).")]
    kept = [exp for exp in cleaned if exp is not None]
    kept_pairs = pairwise(kept)
    rows = [[str(row["rank"]), row["recipe"],
             mean_text(next(e for e in experiments if e.recipe == row["recipe"]), RANKED_BY),
             mean_text(row["experiment"], RANKED_BY), mean_text(row["experiment"], "acc")]
            for row in leaderboard(kept)]
    flagged = (f"flagged test images (seed{'s' if len(per_seed) > 1 else ''} {', '.join(map(str, per_seed))}: "
               f"{', '.join(map(str, per_seed.values()))})")
    return blocks + [
        ("table", ["rank without them", "recipe", "test macro F1, all", "test macro F1, flagged left out",
                   "test acc, flagged left out"], rows),
        ("text", verdict_sentence(kept, kept_pairs)),
        ("text", change_sentence(verdict_of(experiments, pairs), verdict_of(kept, kept_pairs), flagged))]
