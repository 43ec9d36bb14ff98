"""Stage train@<task>-<recipe>-<seed>: train one run of a recipe on data/prepared/<task>, split by the seed and
data.<task>.split; write models/<task>/<recipe>/seed<seed>.{pt,json} and plots/<task>/<recipe>/seed<seed>/ (history,
gradient and parameter health)."""
from __future__ import annotations

import sys

from facelab.cli import command_main, stage_args
from facelab.params import load_params
from facelab.training.launcher import train_stage


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True, seed=True)
    params = load_params(args.params)
    rerun = ["-m", "stages.train", *(argv if argv is not None else sys.argv[1:])]  # how torchrun starts each rank
    sys.exit(train_stage(args.task, args.recipe, params.models[args.recipe], params.train, params.wandb,
                         args.seed, params.data[args.task].split, rerun))


if __name__ == "__main__":
    main()
