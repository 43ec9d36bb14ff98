"""Where and how a training run computes: device, autocast precision, memory format, torch.compile.

On CUDA (chosen automatically when present) the prepared uint8 arrays move to the GPU once,
batches are built and flipped there, the model runs in bf16 autocast with channels_last, no
DataLoader and no host round trip per batch. On CPU the default stays fp32 (reproducible to the
bit for fixed threads and processor); bf16 on CPU is opt-in (train.precision: bf16), useful on CPUs with AMX."""
from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from facelab.errors import UserError
from facelab.params import TrainParams


@dataclass(frozen=True)
class Accel:
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype; None runs in fp32
    channels_last: bool
    compile: bool

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """The forward pass (and loss) under autocast when a lower precision is chosen."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def synchronize(self) -> None:
        """Wait for the queued kernels, before a clock is read (CPU work is already done)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def model(self, model: nn.Module) -> nn.Module:
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


CPU = Accel(torch.device("cpu"), None, channels_last=False, compile=False)


def wants_cuda(device: str, cuda_available: bool, unavailable: str) -> bool:
    """Whether a device setting (auto, cpu or cuda) means the GPU on this machine: `auto` means CUDA when present;
    cuda without a CUDA device is an error (unavailable: its message, naming the setting and what to do instead)."""
    if device == "cuda" and not cuda_available:
        raise UserError(unavailable)
    return device == "cuda" or (device == "auto" and cuda_available)


def choose_accel(settings: TrainParams, cuda_available: bool, local_rank: int = 0) -> Accel:
    """train.device / precision / compile resolved for this machine; `auto` means the GPU path on CUDA."""
    cuda = wants_cuda(settings.device, cuda_available, "train.device is 'cuda' but torch sees no CUDA device on this "
                      "machine; run with -S train.device=auto (or cpu) to train on the CPU")
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    bf16 = settings.precision == "bf16" or (settings.precision == "auto" and cuda)
    # channels_last pays off where the convolution kernels prefer NHWC: cuDNN with tensor cores,
    # and oneDNN's bf16 kernels on CPU; fp32 on CPU stays NCHW (measured no faster, see README).
    return Accel(device, torch.bfloat16 if bf16 else None, channels_last=cuda or bf16, compile=settings.compile)


def inference_accel(device: str, cuda_available: bool) -> Accel:
    """`facelab predict --device` (cpu, cuda or auto) resolved for this machine; always fp32, so a GPU gives the
    CPU's predictions up to rounding."""
    if wants_cuda(device, cuda_available, "--device cuda, but torch sees no CUDA device on this machine; use --device "
                  "cpu or auto"):
        return Accel(torch.device("cuda"), None, channels_last=False, compile=False)
    return CPU


def describe(accel: Accel) -> str:
    precision = "bf16 autocast" if accel.amp_dtype is not None else "fp32"
    layout = ", channels_last" if accel.channels_last else ""
    return f"{accel.device} ({precision}{layout}{', torch.compile' if accel.compile else ''})"


def machine(accel: Accel, threads: int) -> dict:
    """Where a run's numbers were computed (modelcard.Compute). A seeded run repeats bit-for-bit only where all of
    these are equal: torch picks its float kernels by processor and instruction set, so another CPU kind trains
    another run, as far apart as another seed can be (benchmarks/README.md, 'Another processor')."""
    device = torch.cuda.get_device_name(accel.device) if accel.cuda else "cpu"
    return {"device": device, "processor": processor(), "kernels": torch.backends.cpu.get_cpu_capability(),
            "threads": threads, "torch": torch.__version__}


def processor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform says, else the architecture."""
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() == "model name"]
    return next((name for name in names if name), None) or platform.processor() or platform.machine() or "unknown"
