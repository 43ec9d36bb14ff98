"""Stage evaluate@<task>-<recipe>: score the trained model on the test split; write metrics/<task>/<recipe>.json, <recipe>_classes.json, and the test predictions and confusion matrices under plots/<task>/<recipe>/."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from stages.batches import Inputs, SplitData, load_prepared
from stages.cli import stage_args, stage_main
from stages.files import read_json, write_csv, write_json
from stages.params import load_params, parse_recipe
from stages.recipes import trained_model
from stages.scores import class_report, confusion, zscore
from stages.train import score_split, predict

SUMMARY_KEYS = ("train", "val", "epochs", "best_epoch", "train_seconds", "images_per_second", "health")


def run(model_info: dict, state_dict: dict, test: SplitData, batch_size: int) -> dict:
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


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True)
    params = load_params(args.params)
    model_path = Path("models") / args.task / f"{args.recipe}.pt"
    splits, _ = load_prepared(Path("data/prepared") / args.task)
    result = run(read_json(model_path.with_suffix(".json")), torch.load(model_path, weights_only=True),
                 splits["test"], params.train.eval_batch_size)
    plots = Path("plots") / args.task / args.recipe
    write_csv(plots / "predictions.csv", result["predictions"])
    write_json(plots / "confusion.json", result["confusion"])
    write_json(Path("metrics") / args.task / f"{args.recipe}_classes.json", result["classes"])
    write_json(Path("metrics") / args.task / f"{args.recipe}.json", result["metrics"])
    test = result["metrics"]["test"]
    print(f"[{args.task}/{args.recipe}] test acc {test['acc']:.4f} loss {test['loss']:.4f} "
          f"macro_f1 {test['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
