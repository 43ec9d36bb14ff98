"""Stage train@<task>-<recipe>: train one recipe on data/prepared/<task>; write models/<task>/<recipe>.{pt,json} and plots/<task>/<recipe>/ (history, gradient and parameter health)."""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from stages.batches import Inputs, SplitData, load_prepared, ordered_batches, shuffled_batches
from stages.cli import UserError, stage_args, stage_main
from stages.files import atomic_path, write_csv, write_json
from stages.health import HealthRecorder, health_verdict, histogram_epochs, plot_histograms
from stages.params import Params, Recipe, TrainParams, load_params
from stages.recipes import build_architecture, build_model, ensure_imagenet_weights, frozen_modules, frozen_trunk
from stages.scores import split_scores
from stages.tracking import finish_wandb, log_epoch, log_test_results, start_wandb, watch_model

CHECKPOINT_ROOT = Path(".cache/facelab/checkpoints")  # outside every DVC output: survives a rerun


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    state_dict: dict
    history: pd.DataFrame      # epoch, train_loss, train_acc, val_loss, val_acc
    summary: dict              # train/val scores, epochs, best_epoch, train_seconds, images_per_second, health
    gradients: pd.DataFrame    # per epoch and layer: percentiles and norm of the gradients
    parameters: pd.DataFrame   # per epoch and layer: percentiles and norm of the weights
    histograms: dict = field(default_factory=dict)  # {"gradients"|"parameters": {epoch: {layer: values}}}


@dataclass
class Progress:
    """Everything a resumed run needs besides the model, optimizer and random states."""
    rows: list = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = math.inf
    best_weights: dict | None = None
    seconds: float = 0.0


def seed_everything(seed: int, threads: int) -> torch.Generator:
    """The one place seeds are set; returns the generator that orders and augments the data."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def run(prefix: str, recipe: Recipe, settings: TrainParams, seed: int, splits: dict[str, SplitData],
        classes: tuple[str, ...], wandb_run=None, checkpoint: Path | None = None,
        watch_freq: int = 10) -> TrainResult:
    """Train (resuming from `checkpoint` if it exists); keep the weights of the lowest val loss."""
    generator = seed_everything(seed, settings.threads)
    started = time.perf_counter()
    model = build_model(recipe, len(classes))
    trunk, trainable = frozen_trunk(model, recipe)
    inputs = {split: Inputs(splits[split], trunk, settings.eval_batch_size,
                            flips=split == "train" and settings.hflip) for split in ("train", "val")}
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    health = HealthRecorder(model, histogram_epochs(recipe.epochs))
    progress = Progress(seconds=time.perf_counter() - started)
    done = resume(checkpoint, model, optimizer, scheduler, generator, progress, health, wandb_run, prefix)
    watch_model(wandb_run, trainable, watch_freq)
    for epoch in range(done + 1, recipe.epochs + 1):
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(model, trainable, recipe, inputs["train"], optimizer,
                                                loss_fn=nn.CrossEntropyLoss(), generator=generator,
                                                hflip=settings.hflip, epoch=epoch, health=health)
        progress.seconds += time.perf_counter() - started
        val_loss, val_acc = evaluate_split(trainable, inputs["val"], settings.eval_batch_size)
        health.end_epoch(epoch)
        row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc)
        progress.rows.append(row)
        if val_loss < progress.best_loss:
            progress.best_epoch, progress.best_loss = epoch, val_loss
            progress.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        save_checkpoint(checkpoint, epoch, model, optimizer, scheduler, generator, progress, health)
        log_epoch(wandb_run, prefix, epoch, recipe.epochs, epoch_metrics(row, lr, inputs, progress))
        if settings.patience and epoch - progress.best_epoch >= settings.patience:
            print(f"[{prefix}] early stop: no better val loss for {settings.patience} epochs", flush=True)
            break
    model.load_state_dict(progress.best_weights)
    return finish(progress, trainable, inputs, classes, settings, health)


def epoch_metrics(row: dict, lr: float, inputs: dict, progress: Progress) -> dict:
    """The per-epoch dict for the console and W&B: same keys everywhere (train/loss, val/acc, ...)."""
    images = len(progress.rows) * len(inputs["train"])
    return {"train/loss": row["train_loss"], "train/acc": row["train_acc"], "val/loss": row["val_loss"],
            "val/acc": row["val_acc"], "lr": lr, "images_per_second": images / progress.seconds}


def finish(progress: Progress, trainable, inputs, classes, settings: TrainParams, health) -> TrainResult:
    summary = {split: score_split(trainable, inputs[split], len(classes), settings.eval_batch_size)
               for split in ("train", "val")}
    gradients, parameters = health.frames()
    summary.update(epochs=len(progress.rows), best_epoch=progress.best_epoch,
                   train_seconds=round(progress.seconds, 3),
                   images_per_second=round(len(progress.rows) * len(inputs["train"]) / progress.seconds, 2),
                   health=health_verdict(gradients, settings.vanishing_grad_norm, settings.exploding_grad_norm))
    return TrainResult(progress.best_weights, pd.DataFrame(progress.rows), summary,
                       gradients, parameters, health.histograms)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)
    optimizer = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_scheduler(optimizer, recipe: Recipe):
    """Stepped once per epoch; None keeps the learning rate constant."""
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.gamma)
    return None


def train_one_epoch(model, trainable, recipe, inputs: Inputs, optimizer, loss_fn, generator,
                    hflip: bool, epoch: int, health: HealthRecorder) -> tuple[float, float]:
    """One pass over the training split; returns its mean loss and accuracy (train mode)."""
    trainable.train()
    for module in frozen_modules(model, recipe.frozen):
        module.eval()  # frozen BatchNorm keeps its ImageNet statistics
    labels = inputs.data.labels
    total_loss, correct = 0.0, 0
    batches = shuffled_batches(len(labels), recipe.batch_size, generator, hflip)
    for step, (index, flip) in enumerate(progress_bar(batches, len(labels), recipe.batch_size), 1):
        optimizer.zero_grad(set_to_none=True)
        logits = trainable(inputs.batch(index, flip))
        loss = loss_fn(logits, labels[index])
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss.item()} at epoch {epoch}, step {step} with learning rate "
                f"{optimizer.param_groups[0]['lr']:g}; lower models.<recipe>.lr (e.g. dvc exp run "
                f"-S models.<recipe>.lr=...) and run again. No model or metrics were written.")
        loss.backward()
        health.after_backward()
        optimizer.step()
        total_loss += loss.item() * len(index)
        correct += (logits.argmax(1) == labels[index]).sum().item()
    return total_loss / len(labels), correct / len(labels)


def progress_bar(batches, n: int, batch_size: int):
    """A tqdm bar on a terminal; plain iteration otherwise (dvc repro in CI logs gets epoch lines)."""
    if not sys.stdout.isatty():
        return batches
    from tqdm import tqdm
    return tqdm(batches, total=math.ceil(n / batch_size), leave=False, unit="batch")


@torch.no_grad()
def predict(model: nn.Module, inputs: Inputs, batch_size: int) -> torch.Tensor:
    """Logits for a whole split, in eval mode."""
    model.eval()
    return torch.cat([model(inputs.batch(index)) for index in ordered_batches(len(inputs), batch_size)])


def evaluate_split(model, inputs: Inputs, batch_size: int) -> tuple[float, float]:
    logits = predict(model, inputs, batch_size)
    loss = nn.functional.cross_entropy(logits, inputs.data.labels).item()
    return loss, (logits.argmax(1) == inputs.data.labels).float().mean().item()


def score_split(model, inputs: Inputs, num_classes: int, batch_size: int) -> dict:
    """acc, loss and macro F1 of a split in eval mode (no augmentation)."""
    logits = predict(model, inputs, batch_size)
    loss = nn.functional.cross_entropy(logits, inputs.data.labels).item()
    return split_scores(inputs.data.labels.numpy(), logits.argmax(1).numpy(), loss, num_classes)


# ---- resume -----------------------------------------------------------------------------------

def save_checkpoint(path: Path | None, epoch, model, optimizer, scheduler, generator, progress, health) -> None:
    """Everything needed to continue after `epoch` exactly as if never stopped; written atomically."""
    if path is None:
        return
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler else None,
             "torch_rng": torch.get_rng_state(), "data_rng": generator.get_state(),
             "progress": vars(progress), "gradient_rows": health.gradient_rows,
             "parameter_rows": health.parameter_rows,
             "histograms": {kind: {e: {k: torch.from_numpy(v) for k, v in layers.items()}
                                   for e, layers in by_epoch.items()}
                            for kind, by_epoch in health.histograms.items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resume(path, model, optimizer, scheduler, generator, progress, health, wandb_run, prefix) -> int:
    """Restore a checkpoint if there is one; return the last completed epoch (0 for a fresh start)."""
    if path is None or not path.is_file():
        return 0
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    generator.set_state(state["data_rng"])
    for key, value in state["progress"].items():
        setattr(progress, key, value)
    health.gradient_rows, health.parameter_rows = state["gradient_rows"], state["parameter_rows"]
    health.histograms = {kind: {e: {k: v.numpy() for k, v in layers.items()} for e, layers in by_epoch.items()}
                         for kind, by_epoch in state["histograms"].items()}
    print(f"[{prefix}] resuming after epoch {state['epoch']} from {path}", flush=True)
    for row in progress.rows:  # the new W&B run gets the history it would have had
        if wandb_run is not None:
            wandb_run.log({"epoch": row["epoch"], "train/loss": row["train_loss"], "train/acc": row["train_acc"],
                           "val/loss": row["val_loss"], "val/acc": row["val_acc"]}, step=row["epoch"])
    return state["epoch"]


def checkpoint_path(params: Params, task: str, recipe: str, prepared: Path) -> Path:
    """One checkpoint per exact configuration: params and data fingerprinted, so a changed run
    never resumes from another's state."""
    digest = hashlib.sha256(json.dumps([params.raw["models"][recipe], params.raw["train"], params.seed],
                                       sort_keys=True).encode())
    for name in sorted(p.name for p in prepared.glob("*.npy")):
        digest.update((prepared / name).read_bytes())
    return CHECKPOINT_ROOT / f"{task}-{recipe}-{digest.hexdigest()[:16]}.pt"


# ---- edges ------------------------------------------------------------------------------------

def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def output_paths(root: Path, task: str, recipe: str) -> dict[str, Path]:
    plots = root / "plots" / task / recipe
    model = root / "models" / task / f"{recipe}.pt"
    return {"model": model, "info": model.with_suffix(".json"), "history": plots / "history.csv",
            "gradients": plots / "gradients.csv", "parameters": plots / "parameters.csv",
            "gradients_png": plots / "gradients.png", "parameters_png": plots / "parameters.png"}


def save_outputs(result: TrainResult, params: Params, task: str, recipe: str,
                 classes: tuple[str, ...], root: Path = Path(".")) -> None:
    """The weights, their resolved params and summary beside them, history and health."""
    paths = output_paths(root, task, recipe)
    with atomic_path(paths["model"]) as tmp:
        torch.save(result.state_dict, tmp)
    write_json(paths["info"], {
        "task": task, "recipe_name": recipe, "classes": list(classes), "seed": params.seed,
        "recipe": params.raw["models"][recipe], "train_params": params.raw["train"], **result.summary})
    write_csv(paths["history"], result.history)
    write_csv(paths["gradients"], result.gradients)
    write_csv(paths["parameters"], result.parameters)
    plot_histograms(result.histograms["gradients"], f"{task}/{recipe}: gradients", paths["gradients_png"])
    plot_histograms(result.histograms["parameters"], f"{task}/{recipe}: parameters", paths["parameters_png"])


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=True)
    params = load_params(args.params)
    recipe = params.models[args.recipe]
    for path in output_paths(Path("."), args.task, args.recipe).values():
        path.unlink(missing_ok=True)  # as dvc repro does: a failed run leaves nothing that looks valid
    if recipe.weights == "imagenet":
        ensure_imagenet_weights(recipe.arch)  # fail before any run starts
    prepared = Path("data/prepared") / args.task
    splits, classes = load_prepared(prepared)
    checkpoint = checkpoint_path(params, args.task, args.recipe, prepared)
    config = {**params.raw, "task": args.task, "recipe": args.recipe, "git_commit": git_commit(),
              "dvc_exp_name": os.environ.get("DVC_EXP_NAME")}
    wandb_run = start_wandb(params.wandb, args.task, args.recipe, config)
    try:
        result = run(f"{args.task}/{args.recipe}", recipe, params.train, params.seed, splits, classes,
                     wandb_run, checkpoint, params.wandb.watch_freq)
    except TrainingDiverged:
        checkpoint.unlink(missing_ok=True)  # resuming would only diverge again
        finish_wandb(wandb_run, {"diverged": True}, exit_code=1)
        raise
    save_outputs(result, params, args.task, args.recipe, classes)
    if wandb_run is not None:
        model = build_architecture(recipe, len(classes))
        model.load_state_dict(result.state_dict)
        test = Inputs(splits["test"], None, params.train.eval_batch_size, flips=False)
        predicted = predict(model, test, params.train.eval_batch_size).argmax(1).numpy()
        log_test_results(wandb_run, splits["test"].labels.numpy(), predicted, classes)
    finish_wandb(wandb_run, wandb_summary(result.summary))
    checkpoint.unlink(missing_ok=True)


def wandb_summary(summary: dict) -> dict:
    flat = {f"best/{split}/{key}": value for split in ("train", "val") for key, value in summary[split].items()}
    flat.update({f"health/{key}": value for key, value in summary["health"].items()})
    flat.update({k: v for k, v in summary.items() if k not in ("train", "val", "health")})
    return flat


if __name__ == "__main__":
    main()
