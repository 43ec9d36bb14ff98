"""A run's scoring, logged to W&B: the test confusion matrix, per-class report, test scores and collapse flags,
added to the training's run, reopened by the id its model card holds (facelab.modelcard.WandbRun).

Nothing is logged when W&B is disabled (in params now, or when the model was trained). An offline run reopened
offline gets a second folder wandb/offline-run-<time>-<same id>; `wandb sync` uploads both into the one run."""
from __future__ import annotations

import pandas as pd

from facelab import names, paths
from facelab.evaluation.records import Collapse, Metrics
from facelab.modelcard import WandbRun
from facelab.params import WandbParams
from facelab.wandb_runs import init_or_offline

REPORT_COLUMNS = ("precision", "recall", "f1-score", "support")


def log_evaluation(location: WandbRun | None, settings: WandbParams, dvc_root: str | None, metrics: Metrics,
                   collapsed: Collapse, predictions: pd.DataFrame, report: dict, classes: list[str]) -> None:
    """Reopen the training's run and add the test results to it (predictions: actual and predicted class names;
    report: the per-class report; dvc_root: see facelab.paths.wandb_dir)."""
    if location is None or settings.mode == "disabled":
        return
    run = reopen_run(location, settings, dvc_root)
    log_test_results(run, predictions, report, classes)
    for key, value in test_summary(metrics, collapsed).items():
        run.summary[key] = value
    run.finish()


def test_summary(metrics: Metrics, collapsed: Collapse) -> dict:
    """The run summary's test keys (test/acc, test/acc_ci, ...) and the collapse flags, as the metrics file has them."""
    return {**{names.key("test", name): value for name, value in metrics.test.model_dump().items()},
            "collapsed": collapsed.collapsed, "collapse_reason": collapsed.reason}


def reopen_run(location: WandbRun, settings: WandbParams, dvc_root: str | None):
    """The training's run: still open when this process trained it (stage run@...: W&B's current run), else resumed
    by its id in the mode it was written in; an online run that cannot be reached is continued offline with one
    warning (`wandb sync` uploads it later)."""
    import wandb  # imported here: a disabled run should not pay for the import

    if wandb.run is not None and wandb.run.id == location.id:
        return wandb.run

    directory = paths.wandb_dir(settings.dir, dvc_root)

    def init(mode):
        return wandb.init(mode=mode, project=settings.project, entity=settings.entity, dir=directory, id=location.id,
                          resume="allow", job_type="evaluate")
    return init_or_offline(init, "online" if location.mode == "online" else "offline", directory,
                           f"W&B run {location.id}")


def log_test_results(run, predictions: pd.DataFrame, report: dict, classes: list[str]) -> None:
    """The test confusion matrix and the per-class report, as W&B plot and table."""
    import wandb

    index = {name: k for k, name in enumerate(classes)}
    table = wandb.Table(columns=["class", "precision", "recall", "f1", "support"],
                        data=[[name, *(report[name][column] for column in REPORT_COLUMNS)] for name in classes])
    run.log({"test/confusion_matrix": wandb.plot.confusion_matrix(
                 y_true=[index[name] for name in predictions["actual"]],
                 preds=[index[name] for name in predictions["predicted"]], class_names=list(classes)),
             "test/classification_report": table})
