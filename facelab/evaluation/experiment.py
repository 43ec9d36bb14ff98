"""The evaluate stage's work, also used by `facelab evaluate`: a trained model scored on a labelled split; headline metrics with intervals, calibration, details (health, collapse, weights), predictions, confusion matrices, per-class report, reliability/mistake/saliency images; and their files."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from torch import nn

from facelab import paths
from facelab.data.batches import Inputs, SplitData, load_prepared
from facelab.evaluation.calibration import scaled_probabilities
from facelab.evaluation.explain import calibration, draw, explanation, names_of_test_images
from facelab.evaluation.saliency import network_after, predict_recording
from facelab.evaluation.scores import class_report, confusion, split_scores, zscore
from facelab.evaluation.stats import BOOTSTRAP, bootstrap_ci, collapse
from facelab.files import atomic_set, write_csv, write_json
from facelab.modelfile import read_card, read_weights, rebuild_command
from facelab.models import trained_model
from facelab.params import parse_recipe


def evaluate_model(card: dict, state_dict: dict, test: SplitData, batch_size: int, names: list[str]) -> dict:
    """Everything evaluate writes for one model: "metrics" (the numbers a reviewer compares, as `dvc exp show`
    lists them), "details" (what the report explains them with), predictions, confusion, per-class report, and
    "explained" (what its three images show; names: the test images' file names, in row order).
    card: the model's .json (facelab.modelfile); its settings decide how it is run (test-time flip included) and
    its results hold the temperature that turns logits into the probabilities users get."""
    settings, results = card["settings"], card["results"]
    classes, tta_flip = tuple(settings["classes"]), settings["train"]["tta_flip"]
    recipe = parse_recipe(settings["recipe"])
    model = trained_model(recipe, len(classes), state_dict)
    # one pass over the split serves every score below, and its recorded activations the saliency maps
    logits, activations = predict_recording(model, recipe.arch, Inputs(test, None, batch_size, flips=False),
                                            batch_size, tta_flip)
    labels = test.labels.cpu()
    predicted, actual = logits.argmax(1).numpy(), labels.numpy()
    loss = nn.functional.cross_entropy(logits, labels).item()  # plain logits: comparable with train's val/loss
    raw = confusion(actual, predicted, len(classes))
    test_scores = split_scores(actual, predicted, loss, len(classes))
    collapsed = collapse(predicted, actual, len(classes), names=classes)
    calibrated = calibration(logits, actual, results["temperature"], results["val_ece"])
    probabilities = scaled_probabilities(logits, results["temperature"]).double().numpy()
    return {
        "metrics": headline(test_scores, intervals(actual, predicted, len(classes)), calibrated, results, settings,
                            collapsed),
        "details": {"test_images": int(len(actual)), "epochs": results["epochs"],
                    "images_per_second": results["images_per_second"], "health": results["health"],
                    "collapse": collapsed, "weights": settings["weights"], "wandb": results["wandb"],
                    "recipe": settings["recipe"], "tta_flip": tta_flip, "select_by": settings["train"]["select_by"],
                    "augment": results["augment_applied"],
                    "bootstrap": {**BOOTSTRAP, "stratified_by": "true class"}, "calibration": calibrated},
        "predictions": pd.DataFrame({"actual": [classes[i] for i in actual],
                                     "predicted": [classes[i] for i in predicted]}),
        "confusion": {"classes": list(classes), "raw": raw.tolist(),
                      "zscore": [[round(v, 6) for v in row] for row in zscore(raw).tolist()]},
        "classes": class_report(actual, predicted, classes),
        "explained": explanation(network_after(model, recipe.arch), activations, test.images.cpu().numpy(), names,
                                 actual, predicted, probabilities, classes, batch_size),
        "title": f"{settings['task']}/{settings['recipe_name']}",
    }


def write_outputs(result: dict, outputs: dict) -> None:
    """Every file of an evaluation, swapped in together: metrics never sit beside another run's predictions."""
    with atomic_set(outputs) as out:
        write_csv(out["predictions"], result["predictions"])
        write_json(out["confusion"], result["confusion"])
        write_json(out["classes"], result["classes"])
        write_json(out["details"], result["details"])
        write_json(out["metrics"], result["metrics"])
        draw(result["explained"], result["details"]["calibration"], result["title"], out)


def intervals(actual, predicted, num_classes: int) -> dict:
    """95% stratified bootstrap intervals of test accuracy and macro F1."""
    return {f"{metric}_ci": list(bootstrap_ci(actual, predicted, num_classes, metric, **BOOTSTRAP))
            for metric in ("acc", "macro_f1")}


def headline(test_scores: dict, cis: dict, calibrated: dict, results: dict, settings: dict, collapsed: dict) -> dict:
    """The metrics file: test scores with their intervals first (ECE: of the probabilities users get, after the
    temperature), then val/train, training cost, and the flags that say whether to believe them."""
    after = calibrated["test"]["after"]
    metrics = {"test": {"acc": test_scores["acc"], "acc_ci": cis["acc_ci"], "macro_f1": test_scores["macro_f1"],
                        "macro_f1_ci": cis["macro_f1_ci"], "loss": test_scores["loss"], "ece": after["ece"],
                        "ece_ci": after["ece_ci"]},
               "val": results["val"], "train": results["train"], "best_epoch": results["best_epoch"],
               "train_seconds": results["train_seconds"], "collapsed": collapsed["collapsed"]}
    # null for a model trained from random initialisation: it has no starting weights to verify
    metrics["weights_verified"] = settings["weights"]["verified"]
    health = results["health"]
    metrics.update(vanishing_gradients=health["vanishing_gradients"], exploding_gradients=health["exploding_gradients"])
    return metrics


def score_lines(result: dict, images: str = "test images") -> list[str]:
    """What evaluate prints: the test scores with their intervals, then a warning for each reason not to believe
    them (a collapsed model, starting weights that are not ImageNet's)."""
    test, details = result["metrics"]["test"], result["details"]
    lines = [f"acc {test['acc']:.4f} [95% CI {test['acc_ci'][0]:.3f}, {test['acc_ci'][1]:.3f}]  "
             f"macro_f1 {test['macro_f1']:.4f} [{test['macro_f1_ci'][0]:.3f}, {test['macro_f1_ci'][1]:.3f}]  "
             f"loss {test['loss']:.4f}  ({details['test_images']} {images}"
             f"{', mean of each image and its mirror' if details.get('tta_flip') else ''})",
             calibration_line(details["calibration"])]
    if details["collapse"]["collapsed"]:
        lines.append(f"warning: collapsed model: {details['collapse']['reason']}")
    if result["metrics"].get("weights_verified") is False:
        lines.append(f"warning: trained from {details['weights']['file']}, which is not torchvision's ImageNet "
                     f"file: these numbers do not measure pretraining")
    return lines


def calibration_line(calibrated: dict) -> str:
    """The test ECE of the probabilities given (after the saved temperature) with its interval, and before it."""
    after, before = calibrated["test"]["after"], calibrated["test"]["before"]
    return (f"ece {after['ece']:.4f} [95% CI {after['ece_ci'][0]:.3f}, {after['ece_ci'][1]:.3f}] with temperature "
            f"{calibrated['temperature']:.3f}, {before['ece']:.4f} without ({calibrated['bins']} bins)")


def evaluate_experiment(task: str, recipe_name: str, batch_size: int, root: Path = Path(".")) -> dict:
    """The evaluate stage: the trained model scored on its task's test split; writes and returns the results.
    The model runs as it was trained to run (its card's settings: classes, recipe, test-time flip)."""
    model = paths.model(task, recipe_name, root)
    rebuild = rebuild_command(task, recipe_name, model)
    splits, _ = load_prepared(paths.prepared(task, root))
    result = evaluate_model(read_card(paths.model_info(task, recipe_name, root), rebuild),
                            read_weights(model, rebuild), splits["test"], batch_size,
                            names_of_test_images(paths.prepared(task, root)))
    write_outputs(result, paths.evaluate_outputs(task, recipe_name, root))
    return result
