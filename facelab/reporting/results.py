"""What the report reads per experiment: the Experiment record and its one reader (load_experiment), from the files
train and evaluate wrote (metrics/<task>/, plots/<task>/<recipe>/)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facelab import paths
from facelab.evaluation.records import Confusion, Details, Metrics, read_confusion, read_details, read_metrics
from facelab.files import read_json
from facelab.modelcard import Health

HISTOGRAMS = ("gradients", "parameters")  # train-stage figures, shown when the run wrote them
EXPLAINED = ("gallery", "saliency", "reliability")  # evaluate's images (paths.explained_images), in this order


@dataclass
class Experiment:
    """One trained and evaluated recipe of a task: its metrics and details (facelab.evaluation.records), the
    per-class report (scikit-learn's classification_report layout), the epoch history, the confusion matrices, the
    test predictions (actual, predicted class names), train's histogram figures and evaluate's three images.
    details, predictions and the figures may be absent (results written before they existed)."""
    task: str
    recipe: str
    metrics: Metrics
    details: Details | None
    classes: dict
    history: pd.DataFrame
    confusion: Confusion
    predictions: pd.DataFrame | None
    images: dict[str, Path] = field(default_factory=dict)
    explained: dict[str, Path] = field(default_factory=dict)

    @property
    def health(self) -> Health | None:
        """The gradient-health verdict training recorded, None where it recorded none."""
        return self.details.health if self.details is not None else None

    @property
    def name(self) -> str:
        return f"{self.task}/{self.recipe}"


def load_experiment(task: str, recipe: str, root: Path = Path(".")) -> Experiment:
    """One experiment's files; details, predictions and the figures may be absent (older results)."""
    plots = paths.plots(task, recipe, root)
    scored = paths.evaluate_outputs(task, recipe, root)
    return Experiment(
        task=task, recipe=recipe, metrics=read_metrics(scored["metrics"]),
        details=read_details(scored["details"]) if scored["details"].is_file() else None,
        classes=read_json(scored["classes"]), history=pd.read_csv(paths.history(task, recipe, root)),
        confusion=read_confusion(scored["confusion"]),
        predictions=pd.read_csv(scored["predictions"]) if scored["predictions"].is_file() else None,
        images={name: plots / f"{name}.png" for name in HISTOGRAMS if (plots / f"{name}.png").is_file()},
        explained={name: scored[name] for name in EXPLAINED if scored[name].is_file()},
    )
