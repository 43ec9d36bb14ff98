"""How a run's training runs: in this process, or under torchrun when params ask for several devices or nodes."""
from __future__ import annotations

import os

from facelab.params import Recipe, Split, TrainParams, WandbParams
from facelab.training.distributed import close, init_from_env, launch
from facelab.training.experiment import train_experiment


def train_stage(task: str, recipe_name: str, recipe: Recipe, settings: TrainParams, tracking: WandbParams,
                seed: int, fractions: Split, rerun: list[str], leave_run_open: bool = False) -> int:
    """A run's training; returns its exit status. One process trains here. With train.devices x train.nodes
    above 1, torchrun starts `python <rerun>` (the stage again) once per rank, and each rank trains here: a process
    torchrun started has RANK set."""
    if settings.devices * settings.nodes > 1 and "RANK" not in os.environ:
        return launch(settings, rerun)
    # cuBLAS is deterministic only with a fixed workspace; it must be set before CUDA starts
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    dist = init_from_env(dict(os.environ))  # torchrun's RANK/WORLD_SIZE; one process without it
    try:
        train_experiment(task, recipe_name, recipe, settings, tracking, seed, fractions, dist,
                         leave_run_open=leave_run_open and dist.world == 1)
    finally:
        close(dist)
    return 0
