"""What the report reads per experiment: the Experiment record (one Run per seed) and its one reader
(load_experiment), from the files train and evaluate wrote per run (metrics/<task>/<recipe>/seed<seed>*.json,
plots/<task>/<recipe>/seed<seed>/)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facelab import paths
from facelab.evaluation.records import Confusion, Details, Metrics, read_confusion, read_details, read_metrics
from facelab.evaluation.scores import zscore
from facelab.files import read_json
from facelab.modelcard import Health

HISTOGRAMS = ("gradients", "parameters")  # train-stage figures, shown when the run wrote them
EXPLAINED = ("gallery", "saliency", "reliability")  # evaluate's images (paths.explained_images), in this order


@dataclass
class Run:
    """One training run (seed) of a recipe: its metrics and details (facelab.evaluation.records), the per-class
    report (scikit-learn's classification_report layout), the epoch history, the confusion matrices, the test
    predictions (actual, predicted class names), train's histogram figures and evaluate's three images.
    details, predictions and the figures may be absent (results written before they existed)."""
    seed: int
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


@dataclass
class Experiment:
    """One recipe of a task trained and evaluated once per seed (runs, in seed order).

    A rule for the whole experiment: it is collapsed if any of its runs collapsed (a recipe that collapses on one
    seed in three is not one to recommend), and trained from stand-in weights if any run was."""
    task: str
    recipe: str
    runs: list[Run]

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError(f"{self.task}/{self.recipe}: an experiment needs at least one run")

    @property
    def name(self) -> str:
        return f"{self.task}/{self.recipe}"

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def first(self) -> Run:
        """The first seed's run: the one whose settings (recipe, weights) stand for all (they share params)."""
        return self.runs[0]

    @property
    def collapsed(self) -> bool:
        return any(run.metrics.collapsed for run in self.runs)

    @property
    def collapsed_seeds(self) -> list[int]:
        return [run.seed for run in self.runs if run.metrics.collapsed]

    @property
    def unverified(self) -> bool:
        """Trained from weights that are not torchvision's ImageNet file, in any run."""
        return any(run.metrics.weights_verified is False for run in self.runs)

    def test_values(self, metric: str) -> list[float]:
        """Each run's test score (`acc`, `macro_f1`, ...), in seed order."""
        return [float(getattr(run.metrics.test, metric)) for run in self.runs]

    def mean(self, metric: str) -> float:
        return statistics.fmean(self.test_values(metric))

    def sd(self, metric: str) -> float:
        """Sample standard deviation over seeds; 0 with one seed."""
        values = self.test_values(metric)
        return statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def confusion(self) -> Confusion:
        """The runs' confusion counts summed over their test images (each seed its own), z-scored anew."""
        raw = np.sum([np.asarray(run.confusion.raw, dtype=np.int64) for run in self.runs], axis=0)
        return Confusion(classes=self.first.confusion.classes, raw=raw.tolist(), zscore=zscore(raw).tolist())

    @property
    def health(self) -> Health | None:
        """The runs' health pooled: the smallest and largest gradient norm of any run, a flag if any run raised it;
        None where no run recorded health."""
        found = [run.health for run in self.runs if run.health is not None]
        if not found:
            return None
        mins = [h.min_grad_norm for h in found if h.min_grad_norm is not None]
        maxes = [h.max_grad_norm for h in found if h.max_grad_norm is not None]
        return Health(min_grad_norm=min(mins) if mins else None, max_grad_norm=max(maxes) if maxes else None,
                      vanishing_gradients=any(h.vanishing_gradients for h in found),
                      exploding_gradients=any(h.exploding_gradients for h in found),
                      frozen_layers=found[0].frozen_layers)

    @property
    def health_missing(self) -> bool:
        """Some run recorded no health."""
        return any(run.health is None for run in self.runs)


def load_run(task: str, recipe: str, seed: int, root: Path = Path(".")) -> Run:
    """One run's files; details, predictions and the figures may be absent (older results)."""
    plots = paths.plots(task, recipe, seed, root)
    scored = paths.evaluate_outputs(task, recipe, seed, root)
    return Run(
        seed=seed, metrics=read_metrics(scored["metrics"]),
        details=read_details(scored["details"]) if scored["details"].is_file() else None,
        classes=read_json(scored["classes"]), history=pd.read_csv(paths.history(task, recipe, seed, root)),
        confusion=read_confusion(scored["confusion"]),
        predictions=pd.read_csv(scored["predictions"]) if scored["predictions"].is_file() else None,
        images={name: plots / f"{name}.png" for name in HISTOGRAMS if (plots / f"{name}.png").is_file()},
        explained={name: scored[name] for name in EXPLAINED if scored[name].is_file()},
    )


def load_experiment(task: str, recipe: str, seeds: list[int], root: Path = Path(".")) -> Experiment:
    """One experiment's runs, one per seed (params: seeds), in that order."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {seeds}: a seed appears twice")
    return Experiment(task=task, recipe=recipe, runs=[load_run(task, recipe, seed, root) for seed in seeds])
