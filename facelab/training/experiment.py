"""One experiment of the train stage: prepared data and params in; the model file, its settings and results card,
history and health plots out (written by the main rank, swapped in together), and one W&B run."""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import torch

from facelab import paths
from facelab.accel import choose_accel, describe
from facelab.data.batches import Inputs, SplitData, load_prepared
from facelab.errors import TrainingDiverged
from facelab.evaluation.calibration import calibrate
from facelab.evaluation.forward import predict, predict_classes
from facelab.evaluation.stats import collapse
from facelab.files import atomic_set, read_json, remove_debris, write_csv, write_json
from facelab.modelfile import model_card, weights_bytes
from facelab.models import IMAGENET_MEAN, IMAGENET_STD, trained_model, weights_provenance
from facelab.params import Recipe, TrainParams, WandbParams
from facelab.training.checkpoints import checkpoint_path
from facelab.training.distributed import Dist
from facelab.training.health import plot_histograms
from facelab.training.loop import TrainResult, run
from facelab.training.tracking import (
    finish_wandb,
    git_commit,
    log_test_results,
    run_location,
    start_wandb,
    wandb_summary,
)


def train_experiment(task: str, recipe_name: str, recipe: Recipe, settings: TrainParams, tracking: WandbParams,
                     seed: int, dist: Dist = Dist(), root: Path = Path(".")) -> TrainResult:
    """Train one experiment and write its outputs (main rank); returns the result on every rank."""
    outputs = paths.train_outputs(task, recipe_name, root)
    if dist.main:
        for path in outputs.values():
            path.unlink(missing_ok=True)  # as dvc repro does: a failed run leaves nothing that looks valid
            remove_debris(path)  # temporary files a killed run left beside it
    weights = weights_provenance(recipe)  # fails before any run starts when ImageNet weights are missing
    if dist.main and weights["verified"] is False:
        print(f"warning: [{task}/{recipe_name}] {weights['file']} is not torchvision's ImageNet file (sha256 "
              f"{weights['sha256'][:8]}... does not match the hash in its name): these results do not measure "
              f"ImageNet pretraining", file=sys.stderr, flush=True)
    prepared = paths.prepared(task, root)
    splits, classes = load_prepared(prepared)
    checkpoint = checkpoint_path(recipe, settings, seed, task, recipe_name, prepared, root / paths.CHECKPOINTS)
    accel = choose_accel(settings, torch.cuda.is_available(), dist.local_rank)
    settings_card = model_settings(task, recipe_name, recipe, settings, seed, classes,
                                   read_json(prepared / "classes.json"), weights)
    config = {**settings_card, "git_commit": git_commit(), "dvc_exp_name": os.environ.get("DVC_EXP_NAME"),
              "world_size": dist.world, "device": describe(accel)}
    if dist.main:
        print(f"[{task}/{recipe_name}] training on {describe(accel)}, {dist.world} process(es)", flush=True)
    wandb_run = start_wandb(tracking, task, recipe_name, config, os.environ.get("DVC_ROOT")) if dist.main else None
    try:
        result = run(f"{task}/{recipe_name}", recipe, settings, seed, splits, classes, wandb_run, checkpoint,
                     tracking.watch_freq, dist, accel, history=outputs["history"] if dist.main else None)
    except TrainingDiverged:
        if dist.main:
            checkpoint.unlink(missing_ok=True)  # resuming would only diverge again
            finish_wandb(wandb_run, {"diverged": True}, exit_code=1)
        raise
    if dist.main:
        calibration = fit_calibration(trained_model(recipe, len(classes), result.state_dict), splits["val"], settings)
        save_outputs(result, settings_card, calibration, outputs, run_location(wandb_run))
        flags = {"weights_verified": weights["verified"]}
        if wandb_run is not None:
            model = trained_model(recipe, len(classes), result.state_dict)
            actual = splits["test"].labels.numpy()
            predicted = predict_classes(model, splits["test"], settings.eval_batch_size)
            log_test_results(wandb_run, actual, predicted, classes)
            collapsed = collapse(predicted, actual, len(classes), names=classes)  # as evaluate flags it
            flags.update(collapsed=collapsed["collapsed"], collapse_reason=collapsed["reason"])
        finish_wandb(wandb_run, {**wandb_summary(result.summary), **flags})
        checkpoint.unlink(missing_ok=True)
    return result


def fit_calibration(model: torch.nn.Module, val: SplitData, settings: TrainParams) -> dict:
    """train.calibrate on the kept weights' validation logits, computed as evaluate computes test logits (CPU, fp32,
    test-time flip when the model uses it): the temperature and the validation ECE before and after it."""
    logits = predict(model, Inputs(val, None, settings.eval_batch_size, flips=False), settings.eval_batch_size,
                     settings.tta_flip)
    return calibrate(logits, val.labels.numpy(), settings.calibrate)


def model_settings(task: str, recipe_name: str, recipe: Recipe, settings: TrainParams, seed: int,
                   classes: tuple[str, ...], prepared: dict, weights: dict) -> dict:
    """Everything needed to rebuild and use the model, and nothing it produced."""
    return {"task": task, "recipe_name": recipe_name, "seed": seed, "classes": list(classes),
            "img_size": prepared["img_size"], "faces": prepared["faces"], "min_side": prepared["min_side"],
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "recipe": dataclasses.asdict(recipe), "train": dataclasses.asdict(settings), "weights": weights}


def save_outputs(result: TrainResult, settings: dict, calibration: dict, outputs: dict[str, Path],
                 wandb: dict | None = None) -> None:
    """The weights, their card (settings apart from results, calibration among the results), history and health:
    written, then swapped in together (a model never sits beside another run's .json)."""
    card = model_card(settings, {**result.summary, "augment_applied": result.augment, "wandb": wandb,
                                 **calibration})
    title = f"{settings['task']}/{settings['recipe_name']}"
    with atomic_set(outputs) as out:
        out["model"].write_bytes(weights_bytes(result.state_dict))
        write_json(out["info"], card)
        write_csv(out["history"], result.history)
        write_csv(out["gradients"], result.gradients)
        write_csv(out["parameters"], result.parameters)
        plot_histograms(result.histograms["gradients"], f"{title}: gradients", out["gradients_png"])
        plot_histograms(result.histograms["parameters"], f"{title}: parameters", out["parameters_png"])
