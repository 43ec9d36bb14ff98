"""A trained model scored on a labelled split: headline metrics with intervals, details (health, collapse, weights), predictions, confusion matrices, per-class report; and their files."""
from __future__ import annotations

import pandas as pd

from facelab.data.batches import Inputs, SplitData
from facelab.evaluation.predict import split_predictions
from facelab.evaluation.scores import class_report, confusion, split_scores, zscore
from facelab.evaluation.stats import bootstrap_ci, collapse
from facelab.files import atomic_set, write_csv, write_json
from facelab.models import trained_model
from facelab.params import parse_recipe

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same predictions always get the same interval


def evaluate_model(model_info: dict, state_dict: dict, test: SplitData, batch_size: int,
                   tta_flip: bool = False) -> dict:
    """Everything evaluate writes for one model: "metrics" (the numbers a reviewer compares, as `dvc exp show`
    lists them), "details" (what the report explains them with), predictions, confusion, per-class report."""
    classes = tuple(model_info["classes"])
    model = trained_model(parse_recipe(model_info["recipe"]), len(classes), state_dict)
    predicted, labels, loss = split_predictions(model, Inputs(test, None, batch_size, flips=False), batch_size,
                                                tta_flip)
    predicted, actual = predicted.numpy(), labels.numpy()  # one pass over the split serves every score below
    raw = confusion(actual, predicted, len(classes))
    test_scores = split_scores(actual, predicted, loss, len(classes))
    collapsed = collapse(predicted, actual, len(classes), names=classes)
    return {
        "metrics": headline(test_scores, intervals(actual, predicted, len(classes)), model_info, collapsed),
        "details": {"test_images": int(len(actual)), "epochs": model_info["epochs"],
                    "images_per_second": model_info["images_per_second"], "health": model_info["health"],
                    "collapse": collapsed, "weights": model_info.get("weights"), "wandb": model_info.get("wandb"),
                    "recipe": model_info["recipe"], "tta_flip": tta_flip,
                    # models saved before these settings existed kept the lowest val loss and flipped only
                    "select_by": model_info.get("train", {}).get("select_by", "val_loss"),
                    "augment": model_info.get("augment_applied"),
                    "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "level": 0.95,
                                  "stratified_by": "true class"}},
        "predictions": pd.DataFrame({"actual": [classes[i] for i in actual],
                                     "predicted": [classes[i] for i in predicted]}),
        "confusion": {"classes": list(classes), "raw": raw.tolist(),
                      "zscore": [[round(v, 6) for v in row] for row in zscore(raw).tolist()]},
        "classes": class_report(actual, predicted, classes),
    }


def write_outputs(result: dict, outputs: dict) -> None:
    """Every file of an evaluation, swapped in together: metrics never sit beside another run's predictions."""
    with atomic_set(outputs) as out:
        write_csv(out["predictions"], result["predictions"])
        write_json(out["confusion"], result["confusion"])
        write_json(out["classes"], result["classes"])
        write_json(out["details"], result["details"])
        write_json(out["metrics"], result["metrics"])


def intervals(actual, predicted, num_classes: int) -> dict:
    """95% stratified bootstrap intervals of test accuracy and macro F1."""
    return {f"{metric}_ci": list(bootstrap_ci(actual, predicted, num_classes, metric, BOOTSTRAP_RESAMPLES,
                                              BOOTSTRAP_SEED)) for metric in ("acc", "macro_f1")}


def headline(test_scores: dict, cis: dict, model_info: dict, collapsed: dict) -> dict:
    """The metrics file: test scores with their intervals first, then val/train, training cost, and the flags
    that say whether to believe them."""
    metrics = {"test": {"acc": test_scores["acc"], "acc_ci": cis["acc_ci"], "macro_f1": test_scores["macro_f1"],
                        "macro_f1_ci": cis["macro_f1_ci"], "loss": test_scores["loss"]},
               "val": model_info["val"], "train": model_info["train"], "best_epoch": model_info["best_epoch"],
               "train_seconds": model_info["train_seconds"], "collapsed": collapsed["collapsed"]}
    # null for a model trained from random initialisation: it has no starting weights to verify
    metrics["weights_verified"] = (model_info.get("weights") or {}).get("verified")
    health = model_info["health"]
    metrics.update(vanishing_gradients=health["vanishing_gradients"], exploding_gradients=health["exploding_gradients"])
    return metrics


def score_lines(result: dict, images: str = "test images") -> list[str]:
    """What evaluate prints: the test scores with their intervals, then a warning for each reason not to believe
    them (a collapsed model, starting weights that are not ImageNet's)."""
    test, details = result["metrics"]["test"], result["details"]
    lines = [f"acc {test['acc']:.4f} [95% CI {test['acc_ci'][0]:.3f}, {test['acc_ci'][1]:.3f}]  "
             f"macro_f1 {test['macro_f1']:.4f} [{test['macro_f1_ci'][0]:.3f}, {test['macro_f1_ci'][1]:.3f}]  "
             f"loss {test['loss']:.4f}  ({details['test_images']} {images}"
             f"{', mean of each image and its mirror' if details.get('tta_flip') else ''})"]
    if details["collapse"]["collapsed"]:
        lines.append(f"warning: collapsed model: {details['collapse']['reason']}")
    if result["metrics"].get("weights_verified") is False:
        lines.append(f"warning: trained from {details['weights']['file']}, which is not torchvision's ImageNet "
                     f"file: these numbers do not measure pretraining")
    return lines
