"""A run's scoring files as typed records, written by facelab.evaluation.experiment.write_outputs and read by the
report and the review (read_metrics, read_details): the metrics (the numbers a reviewer compares, as `dvc exp show`
lists them), the details behind them, and the confusion matrices. Fields that results written before they existed
lack are optional (None)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from facelab.files import read_json
from facelab.modelcard import Compute, Health, Record, Scores, WandbRun, WeightsProvenance


class TestScores(Record):
    """Test scores with their 95% bootstrap intervals; ECE: of the probabilities users get (after the temperature)."""
    __test__ = False  # not a pytest test class, whatever its name
    acc: float
    acc_ci: tuple[float, float] | None = None
    macro_f1: float
    macro_f1_ci: tuple[float, float] | None = None
    loss: float
    ece: float | None = None
    ece_ci: tuple[float, float] | None = None


class Metrics(Record):
    """The metrics file: test scores first, then val/train of the kept epoch, training cost, and the flags that say
    whether to believe them (weights_verified: None for a model trained from random initialisation)."""
    test: TestScores
    val: Scores
    train: Scores
    best_epoch: int
    train_seconds: float
    collapsed: bool
    weights_verified: bool | None = None
    vanishing_gradients: bool
    exploding_gradients: bool


class Collapse(Record):
    """facelab.evaluation.stats.collapse: whether the model predicts one class or scores no better than chance."""
    collapsed: bool
    reason: str | None
    top_class_share: float


class Ece(Record):
    ece: float
    ece_ci: tuple[float, float]


class TestEce(Record):
    __test__ = False  # not a pytest test class
    before: Ece
    after: Ece


class ValEce(Record):
    before: float
    after: float


class Calibration(Record):
    """The test ECE before and after the model's temperature, and the validation ECE it was fitted on."""
    temperature: float
    bins: int
    test: TestEce
    val: ValEce


class Details(Record):
    """What the report explains the metrics with: what was scored and how, and what training recorded. data: the
    labelled folder `facelab evaluate` scored (absent for a pipeline run)."""
    test_images: int
    epochs: int
    images_per_second: float | None = None
    health: Health | None = None
    collapse: Collapse
    weights: WeightsProvenance
    wandb: WandbRun | None = None
    recipe: dict[str, Any]
    tta_flip: bool | None = None
    select_by: str
    augment: dict[str, Any] | None = None
    bootstrap: dict[str, Any] | None = None
    calibration: Calibration | None = None
    compute: Compute | None = None  # where the model was trained: compare runs computed alike (review.py)
    data: dict[str, Any] | None = None

    def to_json(self) -> dict:
        """The file's content: `data` only where a folder was scored."""
        return self.model_dump(exclude={"data"} if self.data is None else None)


class Confusion(Record):
    """Rows are actual classes, columns predicted ones: counts and their z-scores."""
    classes: list[str]
    raw: list[list[int]]
    zscore: list[list[float]]


def read_metrics(path: Path) -> Metrics:
    return Metrics.model_validate(read_json(path))


def read_details(path: Path) -> Details:
    return Details.model_validate(read_json(path))


def read_confusion(path: Path) -> Confusion:
    return Confusion.model_validate(read_json(path))
