"""Stage evaluate@<task>-<recipe>-<seed>: score one run's trained model on its test split; write
metrics/<task>/<recipe>/seed<seed>.json, seed<seed>_classes.json, seed<seed>_details.json, and the test predictions
and confusion matrices under plots/<task>/<recipe>/seed<seed>/; add the test scores to the training's W&B run."""
from __future__ import annotations

from facelab.cli import command_main, stage_args
from facelab.evaluation.experiment import evaluate_experiment, score_lines
from facelab.params import load_params


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True, seed=True)
    params = load_params(args.params)
    result = evaluate_experiment(args.task, args.recipe, args.seed, params.train.eval_batch_size,
                                 tracking=params.wandb)
    for line in score_lines(result):
        print(f"[{result.title}] {'' if line.startswith('warning') else 'test '}{line}")


if __name__ == "__main__":
    main()
