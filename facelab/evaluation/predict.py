"""Predictions and scores of a model on a prepared split, in eval mode, with no augmentation."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facelab.data.batches import Inputs, SplitData, ordered_batches
from facelab.evaluation.scores import split_scores


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


def predict_classes(model: nn.Module, split: SplitData, batch_size: int) -> np.ndarray:
    """The predicted class index of every image of a split, on the CPU."""
    return predict(model, Inputs(split, None, batch_size, flips=False), batch_size).argmax(1).numpy()
