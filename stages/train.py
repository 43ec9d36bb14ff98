"""Stage train@<task>-<recipe>: train one recipe on data/prepared/<task>; write models/<task>/<recipe>.{pt,json} and plots/<task>/<recipe>/ (history, gradient and parameter health)."""
from __future__ import annotations

import os
import sys

from facelab.cli import command_main, stage_args
from facelab.params import load_params
from facelab.training.distributed import close, init_from_env, launch
from facelab.training.experiment import train_experiment


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True)
    params = load_params(args.params)
    if params.train.devices * params.train.nodes > 1 and "RANK" not in os.environ:
        # several processes: torchrun starts this stage once per rank; one process needs no launcher at all
        sys.exit(launch(params.train, ["-m", "stages.train", *(argv if argv is not None else sys.argv[1:])]))
    # cuBLAS is deterministic only with a fixed workspace; it must be set before CUDA starts
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    dist = init_from_env(os.environ)  # torchrun's RANK/WORLD_SIZE; one process without it
    try:
        train_experiment(args.task, args.recipe, params.models[args.recipe], params.train, params.wandb,
                         params.seed, dist)
    finally:
        close(dist)


if __name__ == "__main__":
    main()
