"""The training loop: a recipe, prepared splits and settings in; the best weights, epoch history, summary and
health statistics out."""
from __future__ import annotations

import collections
import dataclasses
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from facelab.accel import Accel, choose_accel, machine
from facelab.data.augment import beyond_flip
from facelab.data.batches import Inputs, SplitData, shuffled_batches
from facelab.errors import TrainingDiverged
from facelab.evaluation.forward import score_split
from facelab.files import write_csv
from facelab.models import build_model, frozen_modules, frozen_trunk
from facelab.names import key, selected
from facelab.params import AUGMENT_OFF, Augment, Recipe, TrainParams, augmentation
from facelab.training.checkpoints import resume, save_checkpoint
from facelab.training.distributed import Dist, all_sum, shard, wrap
from facelab.training.health import HealthRecorder, health_verdict, histogram_epochs
from facelab.training.levers import averaged_state, batch_mixer, weight_average
from facelab.training.optim import make_optimizer, make_scheduler
from facelab.training.tracking import log_epoch, relog_history

ONE_PROCESS = Dist()  # train_loop's default: no torchrun (Dist is frozen, so one instance serves every call)


@dataclass
class TrainResult:
    state_dict: dict
    history: pd.DataFrame      # one epoch_row per epoch: epoch, train/loss, train/acc, val/loss, val/acc, lr
    summary: dict              # train/val scores, epochs, best_epoch, train_seconds, images_per_second, health
    gradients: pd.DataFrame    # per epoch and layer: percentiles and norm of the gradients
    parameters: pd.DataFrame   # per epoch and layer: percentiles and norm of the weights
    histograms: dict = field(default_factory=dict)  # {"gradients"|"parameters": {epoch: {layer: values}}}
    augment: dict = field(default_factory=dict)     # the augmentation the run applied (resolved, as params)


@dataclass
class Progress:
    """Everything a resumed run needs besides the model, optimizer and random states."""
    rows: list = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = math.inf        # the kept epoch's val loss
    best_f1: float = -math.inf         # and its val macro F1
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
    # ignore: torch's stubs lack this documented module property (set through a module-class swap at run time)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def train_loop(prefix: str, recipe: Recipe, settings: TrainParams, seed: int, splits: dict[str, SplitData],
               classes: tuple[str, ...], wandb_run=None, checkpoint: Path | None = None,
               dist: Dist = ONE_PROCESS, accel: Accel | None = None,
               history: Path | None = None, trunk_memo: Path | None = None) -> TrainResult:
    """Train (resuming from `checkpoint` if it exists); keep the weights of the best epoch by
    settings.select_by (lowest val loss, or highest val macro F1 with ties to the lower val loss).

    Under torchrun every rank calls this with its `dist`; only the main rank logs and checkpoints.
    accel: where and how to compute (None: train.device/precision/compile for this machine).
    history: a CSV rewritten (atomically) after every epoch, so a running experiment's curves can be watched.
    trunk_memo: where a frozen trunk's outputs are shared with other runs of the same prepared data (data/trunks.py)."""
    accel = accel or choose_accel(settings, torch.cuda.is_available(), dist.local_rank)
    generator = seed_everything(seed, settings.threads, accel)
    started = time.perf_counter()
    model = accel.model(build_model(recipe, len(classes)))
    trunk, head = frozen_trunk(model, recipe)
    augment = applied_augmentation(augmentation(recipe, settings), cached=trunk is not None)
    inputs = {"train": Inputs(splits["train"], trunk, settings.eval_batch_size, flips=augment.hflip,
                              accel=accel, memo=trunk_memo)}
    if dist.main and recipe.frozen:
        print(f"[{prefix}] {frozen_note(recipe, trunk, augmentation(recipe, settings), settings)}", flush=True)
    loss_fn = training_loss(settings, splits["train"].labels, len(classes), accel.device)
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    health = HealthRecorder(model, histogram_epochs(recipe.epochs))
    # MixUp / CutMix blend images: a cached trunk's output is not one (frozen_note says so)
    mixer = batch_mixer(settings.mixup, settings.cutmix, len(classes)) if trunk is None else None
    average = weight_average(head, settings.ema)
    after_step = None if average is None else lambda: average.update_parameters(head)
    accel.synchronize()  # on a GPU, the train split's cached trunk output is part of the training time
    progress = Progress(seconds=time.perf_counter() - started)
    # validation, like the per-epoch scoring, stays out of the training time
    inputs["val"] = Inputs(splits["val"], trunk, settings.eval_batch_size, flips=False, accel=accel, memo=trunk_memo)
    done = resume(checkpoint, model, optimizer, scheduler, generator, progress, health, average)
    if done and dist.main:
        print(f"[{prefix}] resuming after epoch {done} from {checkpoint}", flush=True)
        relog_history(wandb_run, progress.rows)
    trainable = wrap(head, dist, accel.device)
    # compiling an nn.Module gives an OptimizedModule, itself an nn.Module (torch.compile's type is any callable)
    trainable = cast(nn.Module, torch.compile(trainable)) if accel.compile else trainable
    checkpointed = time.perf_counter()
    for epoch in range(done + 1, recipe.epochs + 1):
        accel.synchronize()  # the val split's trunk output (queued above) is not
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(model, trainable, recipe, inputs["train"], optimizer,
                                                loss_fn=loss_fn, generator=generator, augment=augment,
                                                epoch=epoch, health=health, dist=dist, accel=accel,
                                                mixer=mixer, after_step=after_step)
        progress.seconds += time.perf_counter() - started
        # with train.ema the average is what is validated and kept
        val = score_split(head if average is None else average.module, inputs["val"], len(classes),
                          settings.eval_batch_size)
        health.end_epoch(epoch)
        row = epoch_row(epoch, train_loss, train_acc, val["loss"], val["acc"], val["macro_f1"],
                        optimizer.param_groups[0]["lr"])
        progress.rows.append(row)
        if improves(val, progress, settings.select_by):
            progress.best_epoch, progress.best_loss, progress.best_f1 = epoch, val["loss"], val["macro_f1"]
            progress.best_weights = ({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                                     if average is None else averaged_state(model, head, average))
        if scheduler is not None:
            scheduler.step()
        stop = settings.patience and epoch - progress.best_epoch >= settings.patience
        if dist.main:
            # after the last epoch a resume would have nothing to do; a checkpoint (model, optimizer, kept weights:
            # 4x the model) takes about as long as a small epoch, so one per train.checkpoint_seconds at most
            due = time.perf_counter() - checkpointed >= settings.checkpoint_seconds
            if epoch < recipe.epochs and not stop and due:
                save_checkpoint(checkpoint, epoch, model, optimizer, scheduler, generator, progress, health,
                                average)
                checkpointed = time.perf_counter()
            log_epoch(wandb_run, prefix, recipe.epochs, row, images_per_second(progress, inputs), health.latest)
            if history is not None:
                write_csv(history, pd.DataFrame(progress.rows))
        if stop:
            if dist.main:
                print(f"[{prefix}] early stop: no better {settings.select_by} for {settings.patience} epochs",
                      flush=True)
            break
    weights = kept_weights(progress)
    model.load_state_dict(weights)
    return finish(progress, weights, head, inputs, classes, settings, health, augment,
                  machine(accel, settings.threads))


def kept_weights(progress: Progress) -> dict:
    """The kept epoch's weights. None are kept only when every epoch's val loss was NaN (never below inf)."""
    if progress.best_weights is None:
        raise TrainingDiverged("the validation loss was NaN after every epoch, so no epoch's weights can be kept; "
                               "lower models.<recipe>.lr and run again. No model or metrics were written.")
    return progress.best_weights


def improves(val: dict, progress: Progress, select_by: str) -> bool:
    """Whether this epoch's val scores beat the kept epoch's: lower loss, or higher macro F1 (ties: lower loss)."""
    if selected(select_by)[1] == "macro_f1" and val["macro_f1"] != progress.best_f1:
        return val["macro_f1"] > progress.best_f1
    return val["loss"] < progress.best_loss


def training_loss(settings: TrainParams, labels: torch.Tensor, num_classes: int, device) -> nn.Module:
    """The training objective: cross-entropy, with balanced class weights (n / (classes x count), as
    scikit-learn's class_weight='balanced') and label smoothing when set. Validation loss stays plain."""
    weight = None
    if settings.class_weights == "balanced":
        counts = torch.bincount(labels.cpu(), minlength=num_classes).double().clamp(min=1)
        weight = (counts.sum() / (num_classes * counts)).float().to(device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=settings.label_smoothing)


def applied_augmentation(augment: Augment, cached: bool) -> Augment:
    """A cached frozen trunk's output exists only as computed and mirrored: there only hflip applies."""
    return dataclasses.replace(AUGMENT_OFF, hflip=augment.hflip) if cached else augment


def frozen_note(recipe: Recipe, trunk: nn.Module | None, augment: Augment, settings: TrainParams) -> str:
    """What happens to the frozen layers' output: cached once per flip, or recomputed; and which
    augmentations (and MixUp / CutMix) that leaves out."""
    if trunk is None:
        return (f"frozen layers {list(recipe.frozen)} are recomputed every step: only a frozen VGG16 "
                f"'features' block (no BatchNorm or Dropout) is cached")
    note = (f"frozen 'features' computed once and reused every epoch "
            f"({'for both horizontal flips' if augment.hflip else 'no flip augmentation'})")
    skipped = beyond_flip(augment) + [name for name in ("mixup", "cutmix") if getattr(settings, name)]
    if skipped:
        note += (f"; augment {', '.join(skipped)} not applied: they would need the frozen layers run on every "
                 f"image every epoch (models.<recipe>.frozen: [] trains with them, at the cost of the cache)")
    return note


def epoch_row(epoch: int, train_loss: float, train_acc: float, val_loss: float, val_acc: float,
              val_macro_f1: float, lr: float) -> dict:
    """One epoch's numbers under the keys every consumer uses: history.csv, W&B, a resumed run's re-log."""
    return {"epoch": epoch, key("train", "loss"): train_loss, key("train", "acc"): train_acc,
            key("val", "loss"): val_loss, key("val", "acc"): val_acc, key("val", "macro_f1"): val_macro_f1, "lr": lr}


def images_per_second(progress: Progress, inputs: dict) -> float:
    """Training images processed per second of training time so far (a timing: varies run to run)."""
    return len(progress.rows) * len(inputs["train"]) / progress.seconds


def finish(progress: Progress, weights: dict, trainable, inputs, classes, settings: TrainParams, health,
           augment: Augment, compute: dict) -> TrainResult:
    scores = {split: score_split(trainable, inputs[split], len(classes), settings.eval_batch_size)
              for split in ("train", "val")}
    gradients, parameters = health.frames()
    summary = run_summary(scores, progress, images_per_second(progress, inputs),
                          health_verdict(gradients, settings.vanishing_grad_norm, settings.exploding_grad_norm),
                          compute)
    return TrainResult(weights, pd.DataFrame(progress.rows), summary,
                       gradients, parameters, health.histograms, dataclasses.asdict(augment))


def run_summary(scores: dict, progress: Progress, speed: float, health: dict, compute: dict) -> dict:
    """The run's summary, written beside the model, carried into the metrics and sent to W&B (flattened
    with '/': train/acc, val/loss, health/vanishing_gradients, ...): train and val scores of the kept epoch,
    epochs run, the kept epoch, training time and speed, the gradient-health verdict, where it was computed."""
    return {"train": scores["train"], "val": scores["val"], "epochs": len(progress.rows),
            "best_epoch": progress.best_epoch, "train_seconds": round(progress.seconds, 3),
            "images_per_second": round(speed, 2), "health": health, "compute": compute}


def train_one_epoch(model, trainable, recipe, inputs: Inputs, optimizer, loss_fn, generator, augment: Augment,
                    epoch: int, health: HealthRecorder, dist: Dist, accel: Accel, mixer=None,
                    after_step=None) -> tuple[float, float]:
    """One pass over the training split; returns its mean loss and accuracy (train mode, all ranks). mixer
    (levers.batch_mixer): each batch's images and labels blended, the loss taken on the blended labels and the
    accuracy on the batch's own; after_step: called after every optimizer step (train.ema's update).

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
    batches = shuffled_batches(n, recipe.batch_size, generator, augment, accel.device)
    for step, (index, draws) in enumerate(progress_bar(batches, n, recipe.batch_size, dist), 1):
        if len(index) < dist.world:
            continue  # a tail too short to give every rank an image (same decision on all ranks)
        index, draws = shard(index, draws, dist)
        optimizer.zero_grad(set_to_none=True)
        labels = inputs.labels(index)
        images, targets = inputs.batch(index, draws), labels
        if mixer is not None:
            images, targets = mixer(images, labels)
        with accel.autocast():
            logits = trainable(images)
            loss = loss_fn(logits, targets)
        divergence.add(step, loss)
        loss.backward()
        health.after_backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        total_loss += loss.detach().double() * len(index)
        correct += (logits.argmax(1) == labels).sum()
        seen += len(index)
    divergence.finish()
    sums = torch.stack([total_loss, correct.double(), torch.tensor(seen, dtype=torch.float64, device=accel.device)])
    loss_sum, correct_sum, count = all_sum(sums, dist)
    return loss_sum / count, correct_sum / count


class DivergenceCheck:
    """Stops training when a step's loss is NaN or infinite, naming the epoch, step and learning rate.

    lag 0 checks each loss at once (CPU: no cost). On a GPU, reading the loss on the host every step
    would make the CPU wait for that step's kernels before it can queue the next step's: there
    (lag 1) each verdict is copied to the host without waiting and read one step later, so training
    stops within one step and the GPU's queue never runs dry."""

    def __init__(self, epoch: int, optimizer, lag: int):
        self.epoch, self.optimizer, self.lag = epoch, optimizer, lag
        # (step, loss, whether it is finite, the CUDA event after which that verdict is on the host)
        self.pending: collections.deque[tuple[int, torch.Tensor, torch.Tensor, torch.cuda.Event | None]] = \
            collections.deque()

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
    if not dist.main:
        return batches
    # disable=None: tqdm draws only when stdout is a terminal
    return tqdm(batches, total=math.ceil(n / batch_size), leave=False, unit="batch", disable=None, file=sys.stdout)
