"""Stage run@<task>-<recipe>-<seed>: one run of a recipe, trained and then scored, in one process.

Train: data/prepared/<task>, split by the seed and data.<task>.split, gives models/<task>/<recipe>/seed<seed>.{pt,json}
and plots/<task>/<recipe>/seed<seed>/ (history, gradient and parameter health). Score: the model file just written
(read back as `facelab evaluate` reads one) on its own test split gives metrics/<task>/<recipe>/seed<seed>.json,
seed<seed>_classes.json, seed<seed>_details.json and the test plots, and the test scores join the training's W&B run.

The halves stay apart in the code (facelab.training never sees the test split); they share a process, and its W&B
run: a second process per run would spend about 9 s importing torch and reopening the run."""
from __future__ import annotations

import os
import sys

from facelab.cli import command_main, stage_args
from facelab.evaluation.experiment import evaluate_experiment, score_lines
from facelab.params import load_params
from facelab.training.launcher import train_stage


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True, seed=True)
    params = load_params(args.params)
    rerun = ["-m", "stages.run", *(argv if argv is not None else sys.argv[1:])]  # how torchrun starts each rank
    rank = "RANK" in os.environ  # a torchrun rank only trains; the process that started torchrun scores
    status = train_stage(args.task, args.recipe, params.models[args.recipe], params.train, params.wandb,
                         args.seed, params.data[args.task].split, rerun, leave_run_open=not rank)
    if status or rank:
        sys.exit(status)
    result = evaluate_experiment(args.task, args.recipe, args.seed, params.train.eval_batch_size,
                                 tracking=params.wandb)
    for line in score_lines(result):
        print(f"[{result.title}] {'' if line.startswith('warning') else 'test '}{line}")


if __name__ == "__main__":
    main()
