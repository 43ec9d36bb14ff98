"""The training half of a run (stage run@<task>-<recipe>-<seed>): prepared data and params in; the model file, its
settings and results card, history and health plots out (written by the main rank, swapped in together), and one W&B
run."""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import torch

from facelab import paths
from facelab.accel import choose_accel, describe
from facelab.data.batches import Inputs, SplitData, data_split, left_out_of_training, load_prepared
from facelab.data.label_drop import read_label_drop
from facelab.errors import TrainingDiverged
from facelab.evaluation.calibration import calibrate
from facelab.evaluation.forward import forward_logits
from facelab.files import atomic_set, read_json, remove_debris, write_csv, write_json
from facelab.modelcard import DataSplit, ModelCard, ModelResults, ModelSettings, WeightsProvenance, stand_in_warning
from facelab.modelfile import imagenet_normalisation, weights_bytes
from facelab.models import trained_model, weights_provenance
from facelab.params import Recipe, Split, TrainParams, WandbParams
from facelab.training.checkpoints import checkpoint_path
from facelab.training.distributed import Dist
from facelab.training.health import plot_histograms
from facelab.training.loop import TrainResult, train_loop
from facelab.training.tracking import finish_wandb, git_commit, run_location, start_wandb, wandb_summary


def train_experiment(task: str, recipe_name: str, recipe: Recipe, settings: TrainParams, tracking: WandbParams,
                     seed: int, fractions: Split, dist: Dist | None = None, root: Path = Path("."),
                     leave_run_open: bool = False) -> TrainResult:
    """Train one run of an experiment (seed: its split of the prepared data by `fractions`, initialisation,
    augmentation draws and batch order) and write its outputs (main rank); returns the result on every rank.
    leave_run_open: the W&B run stays W&B's current run, for this process to score the model into it."""
    dist = dist if dist is not None else Dist()
    outputs = paths.train_outputs(task, recipe_name, seed, root)
    if dist.main:
        for path in outputs.values():
            path.unlink(missing_ok=True)  # as dvc repro does: a failed run leaves nothing that looks valid
            remove_debris(path)  # temporary files a killed run left beside it
    # fails before any run starts when ImageNet weights are missing
    weights = WeightsProvenance(**weights_provenance(recipe))
    if dist.main and weights.verified is False:
        print(f"warning: [{task}/{recipe_name}] {stand_in_warning(weights)} (its sha256 does not start "
              f"with the hash in its name)", file=sys.stderr, flush=True)
    prepared = paths.prepared(task, root)
    drop = read_label_drop(paths.label_drop(task, root), prepared)
    splits, classes = load_prepared(prepared, seed, fractions, drop.rows if drop else ())
    left_out = left_out_of_training(splits, drop.rows) if drop else []
    checkpoint = checkpoint_path(recipe, settings, seed, fractions, task, recipe_name, prepared,
                                 root / paths.CHECKPOINTS, left_out)
    accel = choose_accel(settings, torch.cuda.is_available(), dist.local_rank)
    split = data_split(splits, fractions, classes, left_out, drop.label_issues if drop else None)
    settings_card = model_settings(task, recipe_name, recipe, settings, seed, split, classes,
                                   read_json(paths.prepared_classes(prepared)), weights)
    config = {**settings_card.model_dump(), "git_commit": git_commit(), "dvc_exp_name": os.environ.get("DVC_EXP_NAME"),
              "world_size": dist.world, "device": describe(accel)}
    title = f"{task}/{recipe_name}/{paths.run(seed)}"
    if dist.main:
        print(f"[{title}] training on {describe(accel)}, {dist.world} process(es)", flush=True)
        if left_out:
            print(f"[{title}] data.{task}.label_issues is drop: {len(left_out)} image(s) the audit flags are left "
                  f"out of train and val ({paths.label_drop(task).as_posix()})", flush=True)
    wandb_run = (start_wandb(tracking, task, recipe_name, seed, config, os.environ.get("DVC_ROOT"))
                 if dist.main else None)
    try:
        result = train_loop(title, recipe, settings, seed, splits, classes, wandb_run, checkpoint, dist, accel,
                            history=outputs["history"] if dist.main else None, trunk_memo=root / paths.TRUNKS)
    except TrainingDiverged:
        if dist.main:
            checkpoint.unlink(missing_ok=True)  # resuming would only diverge again
            finish_wandb(wandb_run, {"diverged": True}, exit_code=1)
        raise
    if dist.main:
        calibration = fit_calibration(trained_model(recipe, len(classes), result.state_dict), splits["val"], settings)
        save_outputs(result, settings_card, calibration, outputs, run_location(wandb_run))
        # the test split is the scoring's: it adds the test scores, confusion and collapse flags to this run (left
        # open for it by stage run@..., or reopened by its id)
        finish_wandb(wandb_run, {**wandb_summary(result.summary), "weights_verified": weights.verified},
                     leave_open=leave_run_open)
        checkpoint.unlink(missing_ok=True)
    return result


def fit_calibration(model: torch.nn.Module, val: SplitData, settings: TrainParams) -> dict:
    """train.calibrate on the kept weights' validation logits, computed as evaluate computes test logits (CPU, fp32,
    test-time flip when the model uses it): the temperature and the validation ECE before and after it."""
    logits = forward_logits(model, Inputs(val, None, settings.eval_batch_size, flips=False),
                            settings.eval_batch_size, settings.tta_flip)
    return calibrate(logits, val.labels.numpy(), settings.calibrate)


def model_settings(task: str, recipe_name: str, recipe: Recipe, settings: TrainParams, seed: int, split: DataSplit,
                   classes: tuple[str, ...], prepared: dict, weights: WeightsProvenance) -> ModelSettings:
    """Everything needed to rebuild and use the model, and nothing it produced (prepared: the prepared folder's
    classes.json, for the image size and face settings the model's inputs were prepared with)."""
    return ModelSettings(task=task, recipe_name=recipe_name, seed=seed, split=split, classes=list(classes),
                         img_size=prepared["img_size"], faces=prepared["faces"], min_side=prepared["min_side"],
                         faces_fallback=prepared.get("faces_fallback", "skip"),
                         normalisation=imagenet_normalisation(), recipe=dataclasses.asdict(recipe),
                         train=dataclasses.asdict(settings), weights=weights)


def save_outputs(result: TrainResult, settings: ModelSettings, calibration: dict, outputs: dict[str, Path],
                 wandb: dict | None = None) -> None:
    """The weights, their card (settings apart from results, calibration among the results), history and health:
    written, then swapped in together (a model never sits beside another run's .json)."""
    card = ModelCard(settings=settings, results=ModelResults(**result.summary, augment_applied=result.augment,
                                                             wandb=wandb, **calibration))
    with atomic_set(outputs) as out:
        out["model"].write_bytes(weights_bytes(result.state_dict))
        write_json(out["info"], card.to_json())
        write_csv(out["history"], result.history)
        write_csv(out["gradients"], result.gradients)
        write_csv(out["parameters"], result.parameters)
        plot_histograms(result.histograms["gradients"], f"{card.title}: gradients", out["gradients_png"])
        plot_histograms(result.histograms["parameters"], f"{card.title}: parameters", out["parameters_png"])
