"""A trained model scored on a labelled split: test metrics beside its training summary, predictions, confusion matrices, per-class report."""
from __future__ import annotations

import pandas as pd

from facelab.data.batches import Inputs, SplitData
from facelab.evaluation.predict import predict, score_split
from facelab.evaluation.scores import class_report, confusion, zscore
from facelab.models import trained_model
from facelab.params import parse_recipe

# The training summary (beside the model) carried into the metrics file.
SUMMARY_KEYS = ("train", "val", "epochs", "best_epoch", "train_seconds", "images_per_second", "health")


def evaluate_model(model_info: dict, state_dict: dict, test: SplitData, batch_size: int) -> dict:
    """Test metrics merged with the training summary, predictions, confusion matrices, class report."""
    classes = tuple(model_info["classes"])
    model = trained_model(parse_recipe(model_info["recipe"]), len(classes), state_dict)
    inputs = Inputs(test, None, batch_size, flips=False)
    predicted = predict(model, inputs, batch_size).argmax(1).numpy()
    actual = test.labels.numpy()
    raw = confusion(actual, predicted, len(classes))
    return {
        "metrics": {"test": score_split(model, inputs, len(classes), batch_size),
                    **{key: model_info[key] for key in SUMMARY_KEYS}},
        "predictions": pd.DataFrame({"actual": [classes[i] for i in actual],
                                     "predicted": [classes[i] for i in predicted]}),
        "confusion": {"classes": list(classes), "raw": raw.tolist(),
                      "zscore": [[round(v, 6) for v in row] for row in zscore(raw).tolist()]},
        "classes": class_report(actual, predicted, classes),
    }
