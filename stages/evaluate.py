"""Stage evaluate@<task>-<recipe>: score the trained model on the test split; write metrics/<task>/<recipe>.json, <recipe>_classes.json, and the test predictions and confusion matrices under plots/<task>/<recipe>/."""
from __future__ import annotations

import torch

from facelab import paths
from facelab.cli import stage_args, stage_main
from facelab.data.batches import load_prepared
from facelab.evaluation.report import evaluate_model, score_lines, write_outputs
from facelab.files import read_json
from facelab.params import load_params


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True)
    params = load_params(args.params)
    model_path = paths.model(args.task, args.recipe)
    splits, _ = load_prepared(paths.prepared(args.task))
    result = evaluate_model(read_json(paths.model_info(args.task, args.recipe)),
                            torch.load(model_path, weights_only=True), splits["test"],
                            params.train.eval_batch_size, params.train.tta_flip)
    write_outputs(result, paths.evaluate_outputs(args.task, args.recipe))
    for line in score_lines(result):
        print(f"[{args.task}/{args.recipe}] {'' if line.startswith('warning') else 'test '}{line}")


if __name__ == "__main__":
    main()
