"""Stage evaluate@<task>-<recipe>: score the trained model on the test split; write metrics/<task>/<recipe>.json, <recipe>_classes.json, <recipe>_details.json, and the test predictions and confusion matrices under plots/<task>/<recipe>/."""
from __future__ import annotations

from facelab.cli import stage_args, stage_main
from facelab.evaluation.experiment import evaluate_experiment, score_lines
from facelab.params import load_params


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True)
    result = evaluate_experiment(args.task, args.recipe, load_params(args.params).train.eval_batch_size)
    for line in score_lines(result):
        print(f"[{args.task}/{args.recipe}] {'' if line.startswith('warning') else 'test '}{line}")


if __name__ == "__main__":
    main()
