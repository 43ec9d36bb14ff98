"""Stage train@<task>-<recipe>: train one recipe on data/prepared/<task>; write models/<task>/<recipe>.{pt,json} and
plots/<task>/<recipe>/ (history, gradient and parameter health)."""
from __future__ import annotations

import sys

from facelab.cli import command_main, stage_args
from facelab.params import load_params
from facelab.training.launcher import train_stage


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True)
    params = load_params(args.params)
    rerun = ["-m", "stages.train", *(argv if argv is not None else sys.argv[1:])]  # how torchrun starts each rank
    sys.exit(train_stage(args.task, args.recipe, params.models[args.recipe], params.train, params.wandb,
                         params.seed, rerun))


if __name__ == "__main__":
    main()
