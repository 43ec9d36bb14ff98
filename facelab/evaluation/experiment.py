"""The scoring half of a run (stage run@<task>-<recipe>-<seed>), also used by `facelab evaluate`: a trained model
scored on a labelled split; headline metrics with intervals, calibration, details (health, collapse, weights),
predictions, confusion matrices, per-class report, reliability/mistake/saliency images (records:
facelab.evaluation.records); and their files."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from torch import nn

from facelab import paths
from facelab.data.batches import Inputs, SplitData, data_split, load_prepared
from facelab.errors import ModelFileError
from facelab.evaluation.calibration import scaled_probabilities
from facelab.evaluation.explain import calibration, draw, explanation, names_of_test_images
from facelab.evaluation.records import Calibration, Collapse, Confusion, Details, Metrics, TestScores
from facelab.evaluation.saliency import cam_layer, network_after, predict_recording
from facelab.evaluation.scores import class_report, confusion, split_scores, zscore
from facelab.evaluation.stats import BOOTSTRAP, bootstrap_ci, collapse
from facelab.evaluation.tracking import log_evaluation
from facelab.files import atomic_set, write_csv, write_json
from facelab.modelcard import DataSplit, ModelCard, rebuild_command, stand_in_warning
from facelab.modelfile import TrainedModel, load_trained
from facelab.names import LABEL_METRICS
from facelab.params import Split, WandbParams


@dataclass(frozen=True)
class Evaluation:
    """Everything evaluate writes for one model: metrics (the numbers a reviewer compares), details (what the report
    explains them with), predictions (actual and predicted class per test image), confusion, the per-class report
    (scikit-learn's classification_report layout), what its three images show, and the model's task/recipe."""
    metrics: Metrics
    details: Details
    predictions: pd.DataFrame
    confusion: Confusion
    classes: dict
    explained: dict
    title: str


def evaluate_model(trained: TrainedModel, test: SplitData, batch_size: int, names: list[str]) -> Evaluation:
    """A trained model (facelab.modelfile.load_trained) scored on a labelled split (names: the test images' file
    names, in row order). The card's settings decide how it is run (test-time flip included) and its results hold
    the temperature that turns logits into the probabilities users get."""
    card, classes = trained.card, trained.classes
    model, arch = trained.model, trained.recipe.arch
    # one pass over the split serves every score below, and its recorded activations the saliency maps
    layer = cam_layer(model, arch, test.images.shape[1])  # the prepared images: (N, H, W, 3)
    logits, activations = predict_recording(model, layer, Inputs(test, None, batch_size, flips=False), batch_size,
                                            trained.tta_flip)
    labels = test.labels.cpu()
    predicted, actual = logits.argmax(1).numpy(), labels.numpy()
    loss = nn.functional.cross_entropy(logits, labels).item()  # plain logits: comparable with train's val/loss
    raw = confusion(actual, predicted, len(classes))
    test_scores = split_scores(actual, predicted, loss, len(classes))
    collapsed = Collapse(**collapse(predicted, actual, len(classes), names=classes))
    calibrated = Calibration.model_validate(calibration(logits, actual, card.results.temperature,
                                                        card.results.val_ece.model_dump()))
    probabilities = scaled_probabilities(logits, card.results.temperature).double().numpy()
    return Evaluation(
        metrics=headline(TestScores(**test_scores, **intervals(actual, predicted, len(classes)),
                                    ece=calibrated.test.after.ece, ece_ci=calibrated.test.after.ece_ci),
                         card, collapsed),
        details=details(card, len(actual), collapsed, calibrated),
        predictions=pd.DataFrame({"actual": [classes[i] for i in actual],
                                  "predicted": [classes[i] for i in predicted]}),
        confusion=Confusion(classes=list(classes), raw=raw.tolist(),
                            zscore=[[round(v, 6) for v in row] for row in zscore(raw).tolist()]),
        classes=class_report(actual, predicted, classes),
        explained=explanation(network_after(model, arch, layer), activations, test.images.cpu().numpy(), names,
                              actual, predicted, probabilities, classes, batch_size, layer),
        title=card.title,
    )


def write_outputs(result: Evaluation, outputs: dict) -> None:
    """Every file of an evaluation, swapped in together: metrics never sit beside another run's predictions."""
    with atomic_set(outputs) as out:
        write_csv(out["predictions"], result.predictions)
        write_json(out["confusion"], result.confusion.model_dump())
        write_json(out["classes"], result.classes)
        write_json(out["details"], result.details.to_json())
        write_json(out["metrics"], result.metrics.model_dump())
        calibrated = result.details.calibration
        assert calibrated is not None  # evaluate_model always calibrates; only older files lack it
        draw(result.explained, calibrated.model_dump(), result.title, out)


def intervals(actual, predicted, num_classes: int) -> dict:
    """95% stratified bootstrap intervals of test accuracy and macro F1."""
    return {f"{metric}_ci": list(bootstrap_ci(actual, predicted, num_classes, metric))  # BOOTSTRAP's settings
            for metric in LABEL_METRICS}


def headline(test: TestScores, card: ModelCard, collapsed: Collapse) -> Metrics:
    """The metrics file: test scores with their intervals first, then val/train, training cost, and the flags that
    say whether to believe them."""
    results = card.results
    return Metrics(test=test, val=results.val, train=results.train, best_epoch=results.best_epoch,
                   train_seconds=results.train_seconds, collapsed=collapsed.collapsed,
                   # null for a model trained from random initialisation: it has no starting weights to verify
                   weights_verified=card.settings.weights.verified,
                   vanishing_gradients=results.health.vanishing_gradients,
                   exploding_gradients=results.health.exploding_gradients)


def details(card: ModelCard, test_images: int, collapsed: Collapse, calibrated: Calibration) -> Details:
    """The details file: what was scored and how, and what training recorded about the model."""
    settings, results = card.settings, card.results
    return Details(test_images=test_images, epochs=results.epochs, images_per_second=results.images_per_second,
                   health=results.health, collapse=collapsed, weights=settings.weights, wandb=results.wandb,
                   recipe=settings.recipe, tta_flip=settings.tta_flip, select_by=settings.select_by,
                   augment=results.augment_applied, bootstrap={**BOOTSTRAP, "stratified_by": "true class"},
                   calibration=calibrated, compute=results.compute)


def score_lines(result: Evaluation, images: str = "test images") -> list[str]:
    """What evaluate prints: the test scores with their intervals, then a warning for each reason not to believe
    them (a collapsed model, starting weights that are not ImageNet's)."""
    test, details = result.metrics.test, result.details
    assert test.acc_ci is not None and test.macro_f1_ci is not None and details.calibration is not None
    lines = [f"acc {test.acc:.4f} [95% CI {test.acc_ci[0]:.3f}, {test.acc_ci[1]:.3f}]  "
             f"macro_f1 {test.macro_f1:.4f} [{test.macro_f1_ci[0]:.3f}, {test.macro_f1_ci[1]:.3f}]  "
             f"loss {test.loss:.4f}  ({details.test_images} {images}"
             f"{', mean of each image and its mirror' if details.tta_flip else ''})",
             calibration_line(details.calibration)]
    if details.collapse.collapsed:
        lines.append(f"warning: collapsed model: {details.collapse.reason}")
    if result.metrics.weights_verified is False:
        lines.append(f"warning: {stand_in_warning(details.weights)}")
    return lines


def calibration_line(calibrated: Calibration) -> str:
    """The test ECE of the probabilities given (after the saved temperature) with its interval, and before it."""
    after, before = calibrated.test.after, calibrated.test.before
    return (f"ece {after.ece:.4f} [95% CI {after.ece_ci[0]:.3f}, {after.ece_ci[1]:.3f}] with temperature "
            f"{calibrated.temperature:.3f}, {before.ece:.4f} without ({calibrated.bins} bins)")


def evaluate_experiment(task: str, recipe_name: str, seed: int, batch_size: int, root: Path = Path("."),
                        tracking: WandbParams | None = None) -> Evaluation:
    """A run's scoring: its trained model scored on its own test split (the prepared data split again by
    the seed and shares its card records); writes and returns the results, and adds the test scores to the
    training's W&B run (tracking: params' wandb block; None logs nothing).
    The model runs as it was trained to run (its card's settings: classes, recipe, test-time flip)."""
    trained = load_trained(task, recipe_name, root=root, seed=seed)
    prepared = paths.prepared(task, root)
    recorded = trained.card.settings.split
    fractions = Split(**recorded.fractions)
    splits, classes = load_prepared(prepared, seed, fractions, recorded.left_out)
    check_same_split(trained, data_split(splits, fractions, classes, recorded.left_out, recorded.label_issues),
                     prepared)
    result = evaluate_model(trained, splits["test"], batch_size, names_of_test_images(prepared, seed, fractions))
    write_outputs(result, paths.evaluate_outputs(task, recipe_name, seed, root))
    if tracking is not None:
        log_evaluation(trained.card.results.wandb, tracking, os.environ.get("DVC_ROOT"), result.metrics,
                       result.details.collapse, result.predictions, result.classes, result.confusion.classes)
    return result


def check_same_split(trained: TrainedModel, split: DataSplit, prepared: Path) -> None:
    """The split evaluate draws must be the one the model was trained on: else its test images were seen."""
    settings = trained.card.settings
    if split != settings.split:
        rebuild = rebuild_command(settings.task, settings.recipe_name, settings.seed)
        raise ModelFileError(f"'{prepared}' no longer splits as it did when '{trained.path}' was trained (images per "
                             f"split and class now: {split.counts}; the model's card: {settings.split.counts}); "
                             f"train it again: {rebuild}")


def with_data(result: Evaluation, data: dict) -> Evaluation:
    """`facelab evaluate`'s result with the labelled folder it scored recorded in its details."""
    return replace(result, details=result.details.model_copy(update={"data": data}))
