"""Resume: per-epoch checkpoints of a training run (model, optimizer, schedule, random states, history), outside
DVC's outputs."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from facelab import paths
from facelab.files import atomic_path
from facelab.params import Recipe, Split, TrainParams


def save_checkpoint(path: Path | None, epoch, model, optimizer, scheduler, generator, progress, health,
                    average=None) -> None:
    """Everything needed to continue after `epoch` exactly as if never stopped (average: train.ema's
    AveragedModel); written atomically."""
    if path is None:
        return
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler else None,
             "average": average.state_dict() if average is not None else None,
             "torch_rng": torch.get_rng_state(), "data_rng": generator.get_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
             "progress": vars(progress), "gradient_rows": health.gradient_rows,
             "parameter_rows": health.parameter_rows,
             "histograms": {kind: {e: {k: torch.from_numpy(v) for k, v in layers.items()}
                                   for e, layers in by_epoch.items()}
                            for kind, by_epoch in health.histograms.items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resume(path, model, optimizer, scheduler, generator, progress, health, average=None) -> int:
    """Restore a checkpoint if there is one; return the last completed epoch (0 for a fresh start)."""
    if path is None or not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if average is not None:
        average.load_state_dict(state["average"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"]:  # dropout on the GPU draws from these
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    generator.set_state(state["data_rng"])
    for key, value in state["progress"].items():
        setattr(progress, key, value)
    health.gradient_rows, health.parameter_rows = state["gradient_rows"], state["parameter_rows"]
    health.histograms = {kind: {e: {k: v.numpy() for k, v in layers.items()} for e, layers in by_epoch.items()}
                         for kind, by_epoch in state["histograms"].items()}
    return state["epoch"]


def checkpoint_path(recipe: Recipe, settings: TrainParams, seed: int, fractions: Split, task: str, recipe_name: str,
                    prepared: Path, root: Path = paths.CHECKPOINTS, left_out: list[int] | None = None) -> Path:
    """One checkpoint per exact configuration: resolved recipe, train settings, seed, split (with the rows left out
    of it) and data fingerprinted, so a changed run never resumes from another's state."""
    config = [dataclasses.asdict(recipe), dataclasses.asdict(settings), seed, dataclasses.asdict(fractions)]
    if left_out:  # absent when nothing is left out: the checkpoints of runs from before keep their names
        config.append(left_out)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name in sorted(p.name for p in prepared.glob("*.npy")):
        digest.update((prepared / name).read_bytes())
    return root / f"{task}-{recipe_name}-{digest.hexdigest()[:16]}.pt"
