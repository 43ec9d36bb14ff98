"""A model's forward pass over a prepared split in eval mode (no augmentation, or the optional test-time flip):
its logits, predicted classes and scores."""
from __future__ import annotations

import torch
from torch import nn

from facelab.data.batches import Inputs, ordered_batches
from facelab.evaluation.scores import split_scores


@torch.no_grad()
def forward_logits(model: nn.Module, inputs: Inputs, batch_size: int, tta_flip: bool = False) -> torch.Tensor:
    """fp32 logits for a whole split, in eval mode, on the CPU. tta_flip: the mean of the logits of each
    image and of its mirror image (test-time augmentation)."""
    model.eval()
    logits = []
    for index in ordered_batches(len(inputs), batch_size, inputs.accel.device):
        with inputs.accel.autocast():
            x = inputs.batch(index)
            out = model(x).float()
            if tta_flip:
                out = (out + model(x.flip(-1)).float()) / 2
            logits.append(out)
    return torch.cat(logits).cpu()


def split_predictions(model, inputs: Inputs, batch_size: int,
                      tta_flip: bool = False) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Predicted classes, true labels (both on the CPU) and mean loss of a split in eval mode."""
    logits, labels = forward_logits(model, inputs, batch_size, tta_flip), inputs.data.labels.cpu()
    return logits.argmax(1), labels, nn.functional.cross_entropy(logits, labels).item()


def score_split(model, inputs: Inputs, num_classes: int, batch_size: int) -> dict:
    """acc, loss and macro F1 of a split in eval mode (no augmentation)."""
    predicted, labels, loss = split_predictions(model, inputs, batch_size)
    return split_scores(labels.numpy(), predicted.numpy(), loss, num_classes)
