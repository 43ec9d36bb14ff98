"""Data-parallel training under torchrun: this process's rank, its shard of each batch, summed counts."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0  # this process's GPU on its machine

    @property
    def main(self) -> bool:
        """Only the main rank writes files, prints epoch lines and talks to W&B."""
        return self.rank == 0


def init_from_env(env: dict) -> Dist:
    """Join the process group torchrun describes in RANK/WORLD_SIZE (one process: no group)."""
    world, local_rank = int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0"))
    if world > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        torch_dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(rank=int(env.get("RANK", "0")), world=world, local_rank=local_rank)


def launch(settings, module_args: list[str]) -> int:
    """Run `python <module_args>` under torchrun, one process per device and node; returns the exit status (1 when
    any rank failed). The ranks' own 'error:'/'warning:' lines are passed on; torchrun's traceback is not."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(settings.nodes),
               "--nproc-per-node", str(settings.devices), "--rdzv-backend", "c10d",
               "--rdzv-endpoint", settings.rdzv_endpoint, *module_args]
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    lines = result.stderr.splitlines()
    ours = list(dict.fromkeys(line for line in lines if line.startswith(("error:", "warning:"))))
    if result.returncode and not any(line.startswith("error:") for line in ours):
        ours += [f"error: torchrun failed (exit {result.returncode}): {' | '.join(lines[-3:])}"]
    for line in ours:
        print(line, file=sys.stderr)
    return 1 if result.returncode else 0


def close(dist: Dist) -> None:
    if dist.world > 1:
        torch_dist.destroy_process_group()


def wrap(model: nn.Module, dist: Dist, device: torch.device) -> nn.Module:
    """DistributedDataParallel averages gradients across ranks after each backward pass."""
    if dist.world == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shard(index: torch.Tensor, draws, dist: Dist):
    """This rank's part of a global batch (and of its augmentation draws): every rank draws the same
    seeded order, so the ranks together see exactly the batch a single process would."""
    part = slice(dist.rank, None, dist.world)
    return index[part], draws[part]


def all_sum(values: torch.Tensor, dist: Dist) -> list[float]:
    """values summed over the ranks, reduced where they are: NCCL reduces only CUDA tensors."""
    if dist.world > 1:
        torch_dist.all_reduce(values)
    return values.tolist()
