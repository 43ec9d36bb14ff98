"""The report's label-audit section (facelab.reporting.label_errors): the leaderboard and verdict recomputed on the
test split without the flagged images, and one sentence on whether the verdict changes."""
from __future__ import annotations

from facelab.evaluation.label_issues import AuditResults, AuditSettings, LabelIssues
from facelab.reporting import comparison
from facelab.reporting.label_errors import audit_blocks, without_flagged
from facelab.reporting.render import render_markdown
from tests.test_report import two_runs


def flagging(positions: list[int], counts: dict[str, int], handling: str = "report",
             train: dict[str, int] | None = None) -> LabelIssues:
    """An audit record that flags these positions of seed 42's test split (their classes counted in `counts`) and
    `train` images of its train split."""
    settings = AuditSettings(features="HOG", classifier="logistic regression", folds=5, seed=0,
                             filter_by="prune_by_noise_rate", label_issues=handling)
    results = AuditResults(images=1000, flagged=len(positions), seconds=1.0, issues=[],
                           counts={"42": {"train": train or {}, "val": {}, "test": counts}},
                           test_positions={"42": positions})
    return LabelIssues(settings=settings, results=results)


def section(runs, record) -> str:
    return render_markdown(audit_blocks("face", runs, comparison.pairwise(runs), record, "figures/face_issues.png"))


def test_leaving_out_the_images_one_recipe_gets_wrong_changes_the_verdict():
    runs = two_runs(wrong_b=2, wrong_a=30)  # pretrained errs on test images 0-29, scratch on 0-1
    assert comparison.verdict_sentence(runs, comparison.pairwise(runs)).startswith("resnet18_scratch is the best")
    text = section(runs, flagging(list(range(30)), {"other": 30, "target": 0}))
    cleaned = without_flagged(runs[1], flagging(list(range(30)), {"other": 30, "target": 0}))
    assert cleaned is not None and cleaned.first.metrics.test.acc == 1.0
    predictions = cleaned.first.predictions
    assert predictions is not None and len(predictions) == 170
    assert "Test images among them, per run's split: seed 42: 30." in text
    assert "`data.face.label_issues` is report: the flagged images are listed, none is left out of training" in text
    assert "![face likely label errors" in text
    assert ("Without the flagged test images (seed 42: 30) the verdict changes: resnet18_scratch still ranks first "
            "but is no longer significantly ahead of the next recipe.") in text, text


def test_leaving_out_images_both_get_right_keeps_the_verdict():
    runs = two_runs(wrong_b=2, wrong_a=30)
    text = section(runs, flagging([150, 151, 152], {"other": 0, "target": 3}))
    assert ("the verdict does not change: resnet18_scratch is still significantly best.") in text, text
    assert "| 1 | resnet18_scratch | 0.900 | " in text  # the macro F1 of all test images beside the recomputed one


def test_an_audit_of_another_split_is_not_applied():
    runs = two_runs(wrong_b=2, wrong_a=30)
    text = section(runs, flagging([150, 151, 152], {"other": 3, "target": 0}))  # rows 150-152 are 'target'
    assert "do not match the audit's split" in text and "verdict" not in text


def test_under_drop_the_section_counts_what_each_run_left_out_of_training():
    runs = two_runs(wrong_b=2, wrong_a=30)
    text = section(runs, flagging([150], {"other": 0, "target": 1}, "drop", {"other": 4, "target": 2}))
    assert ("`data.face.label_issues` is drop: each run left the flagged images of its train and val splits out of "
            "training (seed 42: 6 train and 0 val; data/label_drop/face.json). Flagged test images stay") in text, text
