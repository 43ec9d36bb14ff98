"""Stage train@<task>-<recipe>: train one recipe on data/prepared/<task>; write models/<task>/<recipe>.{pt,json} and plots/<task>/<recipe>/history.csv."""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from stages.batches import Inputs, SplitData, load_prepared, ordered_batches, shuffled_batches
from stages.files import atomic_path, write_csv, write_json
from stages.params import RECIPES, TASKS, Params, Recipe, TrainParams, load_params
from stages.cli import stage_main
from stages.recipes import build_model, ensure_imagenet_weights, frozen_modules, frozen_trunk
from stages.scores import split_scores
from stages.tracking import finish_wandb, log_epoch, start_wandb


@dataclass
class TrainResult:
    state_dict: dict
    history: pd.DataFrame  # epoch, train_loss, train_acc, val_loss, val_acc
    summary: dict          # epochs, best_epoch, train_seconds, images_per_second, train/val scores


def seed_everything(seed: int, threads: int) -> torch.Generator:
    """The one place seeds are set; returns the generator that orders and augments the data."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def run(prefix: str, recipe: Recipe, settings: TrainParams, seed: int,
        splits: dict[str, SplitData], classes: tuple[str, ...], wandb_run=None) -> TrainResult:
    """Train, keep the weights of the epoch with the lowest val loss, return them with the history."""
    generator = seed_everything(seed, settings.threads)
    start = time.perf_counter()
    model = build_model(recipe, len(classes))
    trunk, trainable = frozen_trunk(model, recipe)
    inputs = {split: Inputs(splits[split], trunk, settings.eval_batch_size,
                            flips=split == "train" and settings.hflip) for split in ("train", "val")}
    optimizer = make_optimizer(model, recipe)
    loss_fn = nn.CrossEntropyLoss()
    rows, best, seconds = [], None, time.perf_counter() - start
    for epoch in range(1, recipe.epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = train_one_epoch(model, trainable, recipe, inputs["train"], optimizer,
                                                loss_fn, generator, settings.hflip)
        seconds += time.perf_counter() - start
        val_loss, val_acc = evaluate_split(trainable, inputs["val"], loss_fn, settings.eval_batch_size)
        rows.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                         val_loss=val_loss, val_acc=val_acc))
        images_per_second = epoch * len(inputs["train"]) / seconds
        log_epoch(wandb_run, prefix, epoch, recipe.epochs, {
            "train/loss": train_loss, "train/acc": train_acc, "val/loss": val_loss, "val/acc": val_acc,
            "lr": optimizer.param_groups[0]["lr"], "images_per_second": images_per_second})
        if best is None or val_loss < best[1]:
            best = (epoch, val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    summary = {split: score_split(trainable, inputs[split], len(classes), settings.eval_batch_size)
               for split in ("train", "val")}
    summary.update(epochs=recipe.epochs, best_epoch=best[0], train_seconds=round(seconds, 3),
                   images_per_second=round(images_per_second, 2))
    return TrainResult(best[2], pd.DataFrame(rows), summary)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)
    optimizer = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def train_one_epoch(model, trainable, recipe, inputs: Inputs, optimizer, loss_fn, generator,
                    hflip: bool) -> tuple[float, float]:
    """One pass over the training split; returns its mean loss and accuracy (train mode)."""
    trainable.train()
    for module in frozen_modules(model, recipe.frozen):
        module.eval()  # frozen BatchNorm keeps its ImageNet statistics
    labels = inputs.data.labels
    total_loss, correct = 0.0, 0
    for index, flip in shuffled_batches(len(labels), recipe.batch_size, generator, hflip):
        optimizer.zero_grad(set_to_none=True)
        logits = trainable(inputs.batch(index, flip))
        loss = loss_fn(logits, labels[index])
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(index)
        correct += (logits.argmax(1) == labels[index]).sum().item()
    return total_loss / len(labels), correct / len(labels)


@torch.no_grad()
def predict(model: nn.Module, inputs: Inputs, batch_size: int) -> torch.Tensor:
    """Logits for a whole split, in eval mode."""
    model.eval()
    return torch.cat([model(inputs.batch(index)) for index in ordered_batches(len(inputs), batch_size)])


def evaluate_split(model, inputs: Inputs, loss_fn, batch_size: int) -> tuple[float, float]:
    logits = predict(model, inputs, batch_size)
    loss = loss_fn(logits, inputs.data.labels).item()
    return loss, (logits.argmax(1) == inputs.data.labels).float().mean().item()


def score_split(model, inputs: Inputs, num_classes: int, batch_size: int) -> dict:
    """acc, loss and macro F1 of a split in eval mode (no augmentation)."""
    logits = predict(model, inputs, batch_size)
    loss = nn.functional.cross_entropy(logits, inputs.data.labels).item()
    return split_scores(inputs.data.labels.numpy(), logits.argmax(1).numpy(), loss, num_classes)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def save_outputs(result: TrainResult, params: Params, task: str, recipe: str,
                 classes: tuple[str, ...], root: Path = Path(".")) -> None:
    """The weights, their resolved params and summary beside them, and the epoch history."""
    model_path = root / "models" / task / f"{recipe}.pt"
    with atomic_path(model_path) as tmp:
        torch.save(result.state_dict, tmp)
    write_json(model_path.with_suffix(".json"), {
        "task": task, "recipe_name": recipe, "classes": list(classes), "seed": params.seed,
        "recipe": params.raw["models"][recipe], "train_params": params.raw["train"], **result.summary})
    write_csv(root / "plots" / task / recipe / "history.csv", result.history)


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if params.models[args.recipe].weights == "imagenet":
        ensure_imagenet_weights(params.models[args.recipe].arch)  # fail before any run starts
    splits, classes = load_prepared(Path("data/prepared") / args.task)
    config = {**params.raw, "task": args.task, "recipe": args.recipe, "git_commit": git_commit(),
              "dvc_exp_name": os.environ.get("DVC_EXP_NAME")}
    wandb_run = start_wandb(params.wandb, args.task, args.recipe, config)
    result = run(f"{args.task}/{args.recipe}", params.models[args.recipe], params.train,
                 params.seed, splits, classes, wandb_run)
    save_outputs(result, params, args.task, args.recipe, classes)
    finish_wandb(wandb_run, {f"best/{split}/{key}": value for split in ("train", "val")
                             for key, value in result.summary[split].items()}
                 | {k: v for k, v in result.summary.items() if k not in ("train", "val")})


if __name__ == "__main__":
    main()
