"""A frozen trunk's output (vgg16_finetune's ImageNet `features`), computed once per prepared image and shared by the
runs that train on it: the seeds split the same prepared folder, so most of one seed's train and val images are
another's. The trunk is most of a vgg16_finetune run's time.

Every image goes through the trunk in a chunk of exactly `chunk` images (a short last chunk is padded with blank
ones), so its output does not depend on which images shared its chunk: a run gets the same numbers whether its rows
come from the memo or are computed now, whichever seeds ran before (a test checks this). Only the rows a run asks
for, its train and val rows, are ever computed: its test images never pass through the trunk.

The memo: one file per prepared images file, trunk weights, flip, chunk size and device under .cache/facelab/trunks/,
outside every DVC output. Deleting it costs time, never changes a result."""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facelab import paths
from facelab.accel import Accel, describe
from facelab.data.inputs import to_input
from facelab.files import atomic_path

KEEP = 8  # memo files kept, newest first: one per task and flip of a frozen trunk, with room to switch weights
MAX_BYTES = 1 << 30  # a prepared folder whose outputs would take more is computed per run, without a memo


@torch.no_grad()
def encode(trunk: nn.Module, images: torch.Tensor, chunk: int, flip: bool, accel: Accel) -> torch.Tensor:
    """The frozen trunk's output for every image (mirrored if `flip`), as contiguous NCHW, computed `chunk` images at
    a time (the last chunk padded to `chunk`).

    Runs channels_last on every device: inference convolutions are faster in NHWC with oneDNN as
    with cuDNN (VGG16 features, 64 px, 2 CPU threads: 55-72 against 45-55 images/s in NCHW)."""
    trunk.eval()
    trunk.to(memory_format=torch.channels_last)
    outputs = []
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk]
        padded = torch.cat([part, part.new_zeros((chunk - len(part), *part.shape[1:]))]) if len(part) < chunk else part
        x = to_input(padded, torch.channels_last)
        with accel.autocast():
            outputs.append(trunk(x.flip(-1) if flip else x)[:len(part)].contiguous())
    trunk.to(memory_format=accel.memory_format)  # the weights keep the layout the rest of the model has
    return torch.cat(outputs)


def trunk_outputs(trunk: nn.Module, images: torch.Tensor, chunk: int, flip: bool, accel: Accel,
                  rows: np.ndarray | None = None, folder: Path | None = None, memo: Path | None = None
                  ) -> torch.Tensor:
    """encode(...) of `images`, which are rows `rows` of the prepared folder `folder`: taken from the memo under
    `memo` where an earlier run computed them, and the rest computed and added. Without rows, folder or memo:
    computed, the same numbers."""
    if memo is None or rows is None or folder is None:
        return encode(trunk, images, chunk, flip, accel)
    total = int(np.load(paths.prepared_images(folder), mmap_mode="r").shape[0])
    path = memo / f"{memo_key(trunk, folder, chunk, flip, accel)}.pt"
    stored = read_memo(path, total)
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    missing = ~stored["done"][index] if stored is not None else torch.ones(len(index), dtype=torch.bool)
    if not missing.any() and stored is not None:
        return stored["outputs"][index].to(accel.device)
    new = encode(trunk, images[missing.to(images.device)], chunk, flip, accel)
    if stored is None:
        if total * new[0].numel() * new.element_size() > MAX_BYTES:
            return new  # no memo: every row was missing, so `new` is all of them
        stored = {"done": torch.zeros(total, dtype=torch.bool),
                  "outputs": torch.zeros((total, *new.shape[1:]), dtype=new.dtype)}
    stored["outputs"][index[missing]] = new.cpu()
    stored["done"][index[missing]] = True
    write_memo(path, stored)
    return stored["outputs"][index].to(accel.device)


def memo_key(trunk: nn.Module, folder: Path, chunk: int, flip: bool, accel: Accel) -> str:
    """What the outputs depend on: the prepared pixels, the trunk's weights, the flip, the chunk size, the device
    and precision, and torch's version."""
    digest = hashlib.sha256(f"{flip} {chunk} {describe(accel)} {torch.__version__}".encode())
    digest.update(paths.prepared_images(folder).read_bytes())
    for name, tensor in trunk.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def read_memo(path: Path, total: int) -> dict[str, torch.Tensor] | None:
    """The memo file's done-mask and outputs; None when there is none or it is unreadable (it is then rebuilt)."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):  # absent, cut short or not a torch file
        return None
    if not isinstance(stored, dict) or set(stored) != {"done", "outputs"} or len(stored["done"]) != total:
        return None
    return stored


def write_memo(path: Path, stored: dict[str, torch.Tensor]) -> None:
    """Written atomically (two runs writing at once leave one whole file); older files beyond KEEP are removed."""
    with contextlib.suppress(OSError):  # a full or read-only disk: no memo, the same results
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(stored, tmp)
        for old in sorted(path.parent.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink(missing_ok=True)
