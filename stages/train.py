"""Stage train@<task>-<recipe>: train one recipe on data/prepared/<task>; write models/<task>/<recipe>.{pt,json} and plots/<task>/<recipe>/ (history, gradient and parameter health)."""
from __future__ import annotations

import collections
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

from stages.accel import Accel, choose_accel, describe
from stages.checkpoints import checkpoint_path, resume, save_checkpoint
from stages.distributed import Dist, all_sum, close, init_from_env, shard, wrap
from stages.batches import Inputs, SplitData, load_prepared, ordered_batches, shuffled_batches
from stages.cli import UserError, stage_args, stage_main
from stages.files import atomic_path, write_csv, write_json
from stages.health import HealthRecorder, health_verdict, histogram_epochs, plot_histograms
from stages.params import Params, Recipe, TrainParams, load_params
from stages.recipes import build_model, ensure_imagenet_weights, frozen_modules, frozen_trunk, trained_model
from stages.scores import split_scores
from stages.tracking import finish_wandb, log_epoch, log_test_results, relog_history, start_wandb, watch_model

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


def seed_everything(seed: int, threads: int, accel: Accel) -> torch.Generator:
    """The one place seeds are set; returns the generator that orders and augments the data (on
    the CPU on every device, so a GPU run draws the same batches and flips as a CPU run)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA device
    torch.set_num_threads(threads)
    # CUDA has no deterministic kernel for some backward passes (adaptive average pooling): there
    # a run warns and is reproducible only within run-to-run noise; CPU runs are bit-exact.
    torch.use_deterministic_algorithms(True, warn_only=accel.cuda)
    # Filling every new tensor with NaN is a debugging aid of deterministic mode, not part of it;
    # it cost ~10% of a CPU training step here.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def run(prefix: str, recipe: Recipe, settings: TrainParams, seed: int, splits: dict[str, SplitData],
        classes: tuple[str, ...], wandb_run=None, checkpoint: Path | None = None,
        watch_freq: int = 10, dist: Dist = Dist(), accel: Accel | None = None) -> TrainResult:
    """Train (resuming from `checkpoint` if it exists); keep the weights of the lowest val loss.

    Under torchrun every rank calls this with its `dist`; only the main rank logs and checkpoints.
    accel: where and how to compute (None: train.device/precision/compile for this machine)."""
    accel = accel or choose_accel(settings, torch.cuda.is_available(), dist.local_rank)
    generator = seed_everything(seed, settings.threads, accel)
    started = time.perf_counter()
    model = accel.model(build_model(recipe, len(classes)))
    trunk, head = frozen_trunk(model, recipe)
    inputs = {"train": Inputs(splits["train"], trunk, settings.eval_batch_size, flips=settings.hflip,
                              accel=accel)}
    if dist.main and recipe.frozen:
        print(f"[{prefix}] {frozen_note(recipe, trunk, settings.hflip)}", flush=True)
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    health = HealthRecorder(model, histogram_epochs(recipe.epochs))
    accel.synchronize()  # on a GPU, the train split's cached trunk output is part of the training time
    progress = Progress(seconds=time.perf_counter() - started)
    # validation, like the per-epoch scoring, stays out of the training time
    inputs["val"] = Inputs(splits["val"], trunk, settings.eval_batch_size, flips=False, accel=accel)
    done = resume(checkpoint, model, optimizer, scheduler, generator, progress, health)
    if done and dist.main:
        print(f"[{prefix}] resuming after epoch {done} from {checkpoint}", flush=True)
        relog_history(wandb_run, progress.rows)
    trainable = wrap(head, dist, accel.device)
    trainable = torch.compile(trainable) if accel.compile else trainable
    watch_model(wandb_run, head, watch_freq)
    for epoch in range(done + 1, recipe.epochs + 1):
        accel.synchronize()  # the val split's trunk output (queued above) is not
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(model, trainable, recipe, inputs["train"], optimizer,
                                                loss_fn=nn.CrossEntropyLoss(), generator=generator,
                                                hflip=settings.hflip, epoch=epoch, health=health, dist=dist,
                                                accel=accel)
        progress.seconds += time.perf_counter() - started
        val_loss, val_acc = evaluate_split(head, inputs["val"], settings.eval_batch_size)
        health.end_epoch(epoch)
        row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc)
        progress.rows.append(row)
        if val_loss < progress.best_loss:
            progress.best_epoch, progress.best_loss = epoch, val_loss
            progress.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        if dist.main:
            save_checkpoint(checkpoint, epoch, model, optimizer, scheduler, generator, progress, health)
            log_epoch(wandb_run, prefix, epoch, recipe.epochs, epoch_metrics(row, lr, inputs, progress))
        if settings.patience and epoch - progress.best_epoch >= settings.patience:
            if dist.main:
                print(f"[{prefix}] early stop: no better val loss for {settings.patience} epochs", flush=True)
            break
    model.load_state_dict(progress.best_weights)
    return finish(progress, head, inputs, classes, settings, health)


def frozen_note(recipe: Recipe, trunk: nn.Module | None, hflip: bool) -> str:
    """What happens to the frozen layers' output: cached once per augmentation variant, or not."""
    if trunk is None:
        return (f"frozen layers {list(recipe.frozen)} are recomputed every step: only a frozen VGG16 "
                f"'features' block (no BatchNorm or Dropout) is cached")
    return (f"frozen 'features' computed once and reused every epoch "
            f"({'for both horizontal flips' if hflip else 'no flip augmentation'})")


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


def make_optimizer(model: nn.Module, recipe: Recipe, fused: bool = True) -> torch.optim.Optimizer:
    """The recipe's optimizer over the trained parameters. fused: PyTorch's one-kernel update
    (CPU and CUDA; same rule, ~3x faster than the default per-tensor loop for VGG16's 6.4M-weight
    head on CPU); False gives PyTorch's default implementation, as a user's own script gets."""
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay, fused=fused or None)
    optimizer = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused or None)


def make_scheduler(optimizer, recipe: Recipe):
    """Stepped once per epoch; None keeps the learning rate constant."""
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.gamma)
    return None


def train_one_epoch(model, trainable, recipe, inputs: Inputs, optimizer, loss_fn, generator, hflip: bool,
                    epoch: int, health: HealthRecorder, dist: Dist, accel: Accel) -> tuple[float, float]:
    """One pass over the training split; returns its mean loss and accuracy (train mode, all ranks).

    Nothing is read back to the host until the epoch ends (loss and accuracy sums stay on the
    device), so on a GPU the CPU queues step after step without waiting for the kernels."""
    trainable.train()
    for module in frozen_modules(model, recipe.frozen):
        module.eval()  # frozen BatchNorm keeps its ImageNet statistics
    n = len(inputs)
    total_loss = torch.zeros((), dtype=torch.float64, device=accel.device)
    correct = torch.zeros((), dtype=torch.int64, device=accel.device)
    seen = 0
    divergence = DivergenceCheck(epoch, optimizer, lag=1 if accel.cuda else 0)
    batches = shuffled_batches(n, recipe.batch_size, generator, hflip, accel.device)
    for step, (index, flip) in enumerate(progress_bar(batches, n, recipe.batch_size, dist), 1):
        if len(index) < dist.world:
            continue  # a tail too short to give every rank an image (same decision on all ranks)
        index, flip = shard(index, flip, dist)
        optimizer.zero_grad(set_to_none=True)
        labels = inputs.labels(index)
        with accel.autocast():
            logits = trainable(inputs.batch(index, flip))
            loss = loss_fn(logits, labels)
        divergence.add(step, loss)
        loss.backward()
        health.after_backward()
        optimizer.step()
        total_loss += loss.detach().double() * len(index)
        correct += (logits.argmax(1) == labels).sum()
        seen += len(index)
    divergence.finish()
    sums = torch.stack([total_loss, correct.double(), torch.tensor(seen, dtype=torch.float64, device=accel.device)])
    total_loss, correct, seen = all_sum(sums, dist)
    return total_loss / seen, correct / seen


class DivergenceCheck:
    """Stops training when a step's loss is NaN or infinite, naming the epoch, step and learning rate.

    lag 0 checks each loss at once (CPU: no cost). On a GPU, reading the loss on the host every step
    would make the CPU wait for that step's kernels before it can queue the next step's: there
    (lag 1) each verdict is copied to the host without waiting and read one step later, so training
    stops within one step and the GPU's queue never runs dry."""

    def __init__(self, epoch: int, optimizer, lag: int):
        self.epoch, self.optimizer, self.lag = epoch, optimizer, lag
        self.pending = collections.deque()

    def add(self, step: int, loss: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach())
        ready = None
        if self.lag and finite.is_cuda:
            finite = finite.to("cpu", non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
        self.pending.append((step, loss.detach(), finite, ready))
        while len(self.pending) > self.lag:
            self.check(*self.pending.popleft())

    def finish(self) -> None:
        while self.pending:
            self.check(*self.pending.popleft())

    def check(self, step: int, loss: torch.Tensor, finite: torch.Tensor, ready) -> None:
        if ready is not None:
            ready.synchronize()
        if not finite:
            raise TrainingDiverged(
                f"loss became {loss.item()} at epoch {self.epoch}, step {step} with learning rate "
                f"{self.optimizer.param_groups[0]['lr']:g}; lower models.<recipe>.lr (e.g. dvc exp run "
                f"-S models.<recipe>.lr=...) and run again. No model or metrics were written.")


def progress_bar(batches, n: int, batch_size: int, dist: Dist):
    """A tqdm bar on a terminal; plain iteration otherwise (dvc repro in CI logs gets epoch lines)."""
    if not sys.stdout.isatty() or not dist.main:
        return batches
    from tqdm import tqdm
    return tqdm(batches, total=math.ceil(n / batch_size), leave=False, unit="batch")


@torch.no_grad()
def predict(model: nn.Module, inputs: Inputs, batch_size: int) -> torch.Tensor:
    """fp32 logits for a whole split, in eval mode, on the CPU."""
    model.eval()
    logits = []
    for index in ordered_batches(len(inputs), batch_size, inputs.accel.device):
        with inputs.accel.autocast():
            logits.append(model(inputs.batch(index)).float())
    return torch.cat(logits).cpu()


def split_predictions(model, inputs: Inputs, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Predicted classes, true labels (both on the CPU) and mean loss of a split in eval mode."""
    logits, labels = predict(model, inputs, batch_size), inputs.data.labels.cpu()
    return logits.argmax(1), labels, nn.functional.cross_entropy(logits, labels).item()


def evaluate_split(model, inputs: Inputs, batch_size: int) -> tuple[float, float]:
    predicted, labels, loss = split_predictions(model, inputs, batch_size)
    return loss, (predicted == labels).float().mean().item()


def score_split(model, inputs: Inputs, num_classes: int, batch_size: int) -> dict:
    """acc, loss and macro F1 of a split in eval mode (no augmentation)."""
    predicted, labels, loss = split_predictions(model, inputs, batch_size)
    return split_scores(labels.numpy(), predicted.numpy(), loss, num_classes)


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
    # cuBLAS is deterministic only with a fixed workspace; it must be set before CUDA starts
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    dist = init_from_env(os.environ)  # torchrun's RANK/WORLD_SIZE; one process without it
    try:
        train_stage(params, args.task, args.recipe, dist)
    finally:
        close(dist)


def train_stage(params: Params, task: str, recipe_name: str, dist: Dist) -> None:
    recipe = params.models[recipe_name]
    if dist.main:
        for path in output_paths(Path("."), task, recipe_name).values():
            path.unlink(missing_ok=True)  # as dvc repro does: a failed run leaves nothing that looks valid
    if recipe.weights == "imagenet":
        ensure_imagenet_weights(recipe.arch)  # fail before any run starts
    prepared = Path("data/prepared") / task
    splits, classes = load_prepared(prepared)
    checkpoint = checkpoint_path(params, task, recipe_name, prepared)
    config = {**params.raw, "task": task, "recipe": recipe_name, "git_commit": git_commit(),
              "dvc_exp_name": os.environ.get("DVC_EXP_NAME"), "world_size": dist.world}
    accel = choose_accel(params.train, torch.cuda.is_available(), dist.local_rank)
    config["device"] = describe(accel)
    if dist.main:
        print(f"[{task}/{recipe_name}] training on {describe(accel)}, {dist.world} process(es)", flush=True)
    wandb_run = (start_wandb(params.wandb, task, recipe_name, config, os.environ.get("DVC_ROOT"))
                 if dist.main else None)
    try:
        result = run(f"{task}/{recipe_name}", recipe, params.train, params.seed, splits, classes,
                     wandb_run, checkpoint, params.wandb.watch_freq, dist, accel)
    except TrainingDiverged:
        if dist.main:
            checkpoint.unlink(missing_ok=True)  # resuming would only diverge again
            finish_wandb(wandb_run, {"diverged": True}, exit_code=1)
        raise
    if dist.main:
        save_outputs(result, params, task, recipe_name, classes)
        if wandb_run is not None:
            log_test_results(wandb_run, splits["test"].labels.numpy(),
                             predict_test_split(result.state_dict, recipe, splits["test"], classes,
                                              params.train.eval_batch_size), classes)
        finish_wandb(wandb_run, wandb_summary(result.summary))
        checkpoint.unlink(missing_ok=True)


def predict_test_split(state_dict: dict, recipe: Recipe, test: SplitData, classes, batch_size: int):
    model = trained_model(recipe, len(classes), state_dict)
    return predict(model, Inputs(test, None, batch_size, flips=False), batch_size).argmax(1).numpy()


def wandb_summary(summary: dict) -> dict:
    flat = {f"best/{split}/{key}": value for split in ("train", "val") for key, value in summary[split].items()}
    flat.update({f"health/{key}": value for key, value in summary["health"].items()})
    flat.update({k: v for k, v in summary.items() if k not in ("train", "val", "health")})
    return flat


if __name__ == "__main__":
    main()
