"""Two training levers beyond augmentation: an exponential moving average of the weights (train.ema, torch's
AveragedModel) and MixUp / CutMix (train.mixup, train.cutmix, torchvision's transforms v2)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms import v2


def weight_average(trained: nn.Module, decay: float) -> AveragedModel | None:
    """An average of the trained part's parameters and buffers (BatchNorm's running statistics too), updated
    after every optimizer step as average = decay * average + (1 - decay) * weights; None when decay is 0."""
    if not decay:
        return None
    return AveragedModel(trained, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def averaged_state(model: nn.Module, trained: nn.Module, average: AveragedModel) -> dict:
    """The model's state dict (CPU copies) with the average's values in place of the trained part's: the weights
    a run keeps and is scored with. The trained part's tensors are the model's own, found by identity."""
    names = {id(tensor): name for name, tensor in model.state_dict(keep_vars=True).items()}
    state = {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}
    averaged = average.module.state_dict()
    for name, tensor in trained.state_dict(keep_vars=True).items():
        state[names[id(tensor)]] = averaged[name].detach().to("cpu", copy=True)
    return state


Mixer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batch_mixer(mixup: float, cutmix: float, num_classes: int) -> Mixer | None:
    """(images, labels) -> (mixed images, soft labels) for a training batch: MixUp with Beta(mixup, mixup)
    weights, CutMix with Beta(cutmix, cutmix) box areas, or one of the two per batch when both are on (Zhang et
    al. 2018; Yun et al. 2019); None when both are 0. They draw from torch's global generator, which the run's seed
    sets and a checkpoint keeps, so a run repeats exactly."""
    mixers: list[nn.Module] = []
    if mixup:
        mixers.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix:
        mixers.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
