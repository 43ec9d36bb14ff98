"""Benchmark: training images/second of facelab against the typical ImageFolder + DataLoader script.

Run from the repository root, the machine otherwise idle (other load on a few cores skews either side by 2x):
  python3 -m benchmarks.throughput --folder ../shared/data/real/face-yaleb --recipe resnet18_scratch --epochs 3 \
      --workers 0 2 --repeat 3
  python3 -m benchmarks.throughput --generated face --recipe vgg16_finetune --workers 0 2 --repeat 3
On a GPU machine (facelab's GPU path: data on the GPU once, bf16, channels_last; the typical script in fp32 with
pinned memory), at the ImageNet size:
  python3 -m benchmarks.throughput --generated face --recipe resnet18_scratch --img-size 224 --device cuda --workers 4 8
Same images (facelab's train split), model, batch size, epochs, optimizer and torch threads on both sides.
facelab: facelab.data.prepare.prepare_task decodes once, then facelab.training.loop.train_loop; "training only" is its
train_seconds (model built, frozen trunk cached, training steps; no validation). Typical: PIL Resize/CenterCrop,
RandomHorizontalFlip, ToTensor, Normalize in DataLoader workers every epoch, PyTorch's default (unfused) optimizer,
timed from model construction to the last step. "Network alone" is the ceiling for recipes that train end to end:
facelab's model, optimizer and precision stepping on one batch already in memory, no data handling at all.
On a GPU every side creates the CUDA context and library handles before its clock starts (a one-off,
not throughput). Each side runs in a fresh process, so its peak memory (ru_maxrss) is its own; DataLoader workers
are forked from the typical side and count the pages they share with it, so theirs is shown apart, not added.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import models, transforms
from torchvision.datasets import ImageFolder

from facelab.accel import choose_accel
from facelab.data import prepare
from facelab.data.batches import load_prepared, prepared_split, split_files
from facelab.data.sources import generated_images
from facelab.models import IMAGENET_MEAN, IMAGENET_STD, build_model, weights_file
from facelab.params import RECIPES, TASKS, DataParams, Recipe, load_params
from facelab.training import loop, optim

NETWORK = "network alone, one in-memory batch"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", type=Path, help="an image-folder tree: <folder>/<class>/*")
    source.add_argument("--generated", choices=TASKS, help="params.yaml's generated task, written out as PNGs")
    parser.add_argument("--recipe", choices=RECIPES, default="resnet18_scratch")
    parser.add_argument("--epochs", type=int, help="default: the recipe's, from params.yaml")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads, both sides")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader workers of the typical script; each count is a typical run of its own")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="both sides")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="facelab's train.precision (auto: bf16 on cuda, fp32 on cpu); the typical side is fp32")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the two sides this many times, alternating; the fastest run of each counts")
    parser.add_argument("--params", default="params.yaml")
    return parser.parse_args(argv)


def peak_rss_mib(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def in_fresh_process(function, *args) -> dict:
    """function(*args) in a new interpreter (spawn, not daemonic: DataLoader workers may start)."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def write_generated(task: str, data: DataParams, seed: int, root: Path) -> Path:
    """The generated task's images as <root>/<class>/<n>.png, for both sides to read."""
    images = generated_images(task, data, seed)
    for i, (pixels, label) in enumerate(zip(images.pixels, images.labels)):
        path = root / data.classes[label] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return root


def stand_in_weights(arch: str, torch_home: Path) -> bool:
    """Random weights of the right shape under a temp TORCH_HOME when the ImageNet file is missing
    (same speed as the real ones); returns whether it had to."""
    if weights_file(arch).is_file():
        return False
    os.environ["TORCH_HOME"] = str(torch_home)  # inherited by both sides' processes
    weights_file(arch).parent.mkdir(parents=True, exist_ok=True)
    torch.save(getattr(models, arch)(weights=None).state_dict(), weights_file(arch))
    return True


# ---- the three sides, each in its own process ---------------------------------------------------

def warm_up(device: str) -> None:
    """The CUDA context and the cuDNN/cuBLAS handles, created before the clock on every side: a
    one-off of a second or more, which would swamp the few seconds a GPU takes to train here."""
    if device != "cuda":
        return
    layer = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)).to(device)
    for dtype in (torch.float32, torch.bfloat16):
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            layer(torch.randn(2, 3, 8, 8, device=device)).sum().backward()
    torch.cuda.synchronize()


def facelab_settings(params, args: argparse.Namespace):
    """params.yaml's train section with the benchmark's threads, device and precision."""
    return dataclasses.replace(params.train, threads=args.threads, device=args.device, precision=args.precision)


def facelab_side(data: DataParams, recipe: Recipe, params_path: str, args: argparse.Namespace, out: Path) -> dict:
    params = load_params(params_path)
    settings = facelab_settings(params, args)
    warm_up(args.device)
    started = time.perf_counter()
    prepare.prepare_task("benchmark", data, params.data_seed, out)
    prepare_seconds = time.perf_counter() - started
    splits, classes = load_prepared(out, params.seeds[0], data.split)
    started = time.perf_counter()
    result = loop.train_loop("facelab", recipe, settings, params.seeds[0], splits, classes)
    return {"images": len(splits["train"].labels) * recipe.epochs, "prepare_s": prepare_seconds,
            "train_s": result.summary["train_seconds"], "run_s": time.perf_counter() - started,
            "peak_mib": peak_rss_mib(), "gpu_peak_mib": gpu_peak_mib(args.device),
            "val/acc": result.summary["val"]["acc"]}


def gpu_peak_mib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def typical_side(folder: Path, train_files: set[str], img_size: int, recipe: Recipe, seed: int,
                 args: argparse.Namespace, workers: int) -> dict:
    """What a user would otherwise write (DataLoader defaults but shuffle, workers, pinned memory on GPU)."""
    _, _, seconds, images = typical_train(folder, train_files, img_size, recipe, seed, args.threads, args.device,
                                          workers)
    return {"images": images, "train_s": seconds, "workers": workers,
            "peak_mib": peak_rss_mib(), "children_peak_mib": peak_rss_mib(resource.RUSAGE_CHILDREN),
            "gpu_peak_mib": gpu_peak_mib(args.device)}


def typical_train(folder: Path, train_files: set[str], img_size: int, recipe: Recipe, seed: int, threads: int,
                  device: str, workers: int):
    """The typical script's training: ImageFolder with PIL Resize/CenterCrop/RandomHorizontalFlip/ToTensor/
    Normalize, a shuffling DataLoader, PyTorch's default optimizer, a plain loop, the last epoch kept.
    Returns the model, the class names, the seconds from model construction to the last step, the images
    trained on."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    target = torch.device(device)
    transform = transforms.Compose([
        transforms.Resize(img_size), transforms.CenterCrop(img_size), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    dataset = ImageFolder(str(folder), transform)
    keep = [i for i, (path, _) in enumerate(dataset.samples) if os.path.relpath(path, folder) in train_files]
    loader = DataLoader(Subset(dataset, keep), batch_size=recipe.batch_size, shuffle=True, num_workers=workers,
                        pin_memory=target.type == "cuda")
    warm_up(target.type)
    started = time.perf_counter()
    model = build_model(recipe, len(dataset.classes)).to(target)
    optimizer = optim.make_optimizer(model, recipe, fused=False)  # PyTorch's default, as users write it
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(recipe.epochs):
        for x, y in loader:
            x, y = x.to(target, non_blocking=True), y.to(target, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
    if target.type == "cuda":
        torch.cuda.synchronize()
    return model, dataset.classes, time.perf_counter() - started, len(keep) * recipe.epochs


def network_side(n_train: int, n_classes: int, recipe: Recipe, seed: int, args: argparse.Namespace) -> dict:
    """The network alone: facelab's model, optimizer and precision stepping on one batch held in
    memory, no data handling and no frozen-feature cache, as many steps as the training. The most
    any data pipeline can give without caching: the ceiling for end-to-end recipes."""
    torch.manual_seed(seed)
    accel = choose_accel(facelab_settings(load_params(args.params), args), torch.cuda.is_available())
    torch.set_num_threads(args.threads)
    x = torch.randn(recipe.batch_size, 3, args.img_size, args.img_size, device=accel.device)
    x = x.contiguous(memory_format=accel.memory_format)
    y = torch.randint(0, n_classes, (recipe.batch_size,), device=accel.device)
    warm_up(args.device)
    started = time.perf_counter()  # timed as the typical side is: from model construction to the last step
    model = accel.model(build_model(recipe, n_classes))
    optimizer = optim.make_optimizer(model, recipe)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    steps = -(-n_train // recipe.batch_size) * recipe.epochs
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with accel.autocast():
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()
    accel.synchronize()
    return {"images": steps * recipe.batch_size, "train_s": time.perf_counter() - started,
            "peak_mib": peak_rss_mib(), "gpu_peak_mib": gpu_peak_mib(args.device)}


# ---- edges --------------------------------------------------------------------------------------

def memory(run: dict) -> str:
    text = f"{run['peak_mib']:.0f}"
    if run.get("workers"):
        text += f" (forked workers, largest: {run['children_peak_mib']:.0f})"
    return text + (f"; GPU {run['gpu_peak_mib']:.0f}" if run["gpu_peak_mib"] is not None else "")


def report(args, recipe: Recipe, n_images: int, facelab: dict, typicals: dict[str, dict], stand_in: bool,
           load: tuple) -> list[str]:
    rate = {name: run["images"] / run["train_s"] for name, run in typicals.items()}
    train_rate = facelab["images"] / facelab["train_s"]
    total_rate = facelab["images"] / (facelab["prepare_s"] + facelab["train_s"])
    rows = [(name, rate[name], run["train_s"], memory(run)) for name, run in typicals.items()]
    rows += [("facelab: training only", train_rate, facelab["train_s"], memory(facelab)),
             ("facelab: including prepare", total_rate, facelab["prepare_s"] + facelab["train_s"], "same process")]
    source = f"generated {args.generated}" if args.generated else str(args.folder)
    train_images = facelab["images"] // recipe.epochs
    lines = [f"{args.recipe} on {source} ({n_images} images decoded by prepare, "
             f"{train_images} in the train split), {args.img_size} px, {recipe.epochs} epochs, "
             f"batch {recipe.batch_size}, torch threads {args.threads} both sides, {args.device}, "
             f"facelab precision {args.precision}",
             f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
             f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    if stand_in:
        lines.append("weights: random stand-ins for the missing ImageNet file (same shapes, same speed)")
    lines.append(f"{'':40s}{'images/s':>10s}{'seconds':>10s}  peak RSS MiB (ru_maxrss)")
    lines += [f"{name:40s}{value:10.1f}{seconds:10.1f}  {mib}" for name, value, seconds, mib in rows]
    for name in typicals:
        lines.append(f"ratio facelab / {name}: training only {train_rate / rate[name]:.2f}x, "
                     f"including prepare {total_rate / rate[name]:.2f}x")
    lines.append(f"(facelab's prepare {facelab['prepare_s']:.1f} s; its loop.train_loop wall time with the per-epoch "
                 f"validation and final scoring: {facelab['run_s']:.1f} s; best val acc {facelab['val/acc']:.4f})")
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    load = os.getloadavg()
    params = load_params(args.params)
    recipe = params.models[args.recipe]
    recipe = dataclasses.replace(recipe, epochs=args.epochs or recipe.epochs)
    with tempfile.TemporaryDirectory(prefix="facelab-throughput-") as folder_name:
        tmp = Path(folder_name)
        task = args.generated or "face"
        data = dataclasses.replace(params.data[task], img_size=args.img_size)
        folder = write_generated(task, data, params.data_seed, tmp / "images") if args.generated else args.folder
        classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
        data = dataclasses.replace(data, source="folder", path=str(folder), classes=classes)
        stand_in = recipe.weights == "imagenet" and stand_in_weights(recipe.arch, tmp / "torch_home")
        names = {workers: f"typical: ImageFolder, {workers} workers" for workers in args.workers}
        runs: dict[str, list[dict]] = {"facelab": [], **{name: [] for name in names.values()}, NETWORK: []}
        for _ in range(args.repeat):  # alternating, so slow drift in machine load hits every side alike
            runs["facelab"].append(in_fresh_process(facelab_side, data, recipe, args.params, args,
                                                    tmp / "prepared"))
            manifest = pd.read_csv(tmp / "prepared" / "manifest.csv")
            train_files = set(split_files(tmp / "prepared", prepared_split(tmp / "prepared", params.seeds[0],
                                                                          data.split))["train"])
            for workers, name in names.items():
                runs[name].append(in_fresh_process(typical_side, folder, train_files, args.img_size, recipe,
                                                   params.seeds[0], args, workers))
            runs[NETWORK].append(in_fresh_process(network_side, len(train_files), len(classes), recipe,
                                                  params.seeds[0], args))
    fastest = {name: min(side, key=lambda run: run["train_s"]) for name, side in runs.items()}
    facelab = fastest.pop("facelab")
    for line in report(args, recipe, len(manifest), facelab, fastest, stand_in, load):
        print(line)
    if args.repeat > 1:  # the spread shows how much other load on the machine moved the figures
        print("every run, images/s: " + "; ".join(
            f"{name} " + " ".join(f"{run['images'] / run['train_s']:.1f}" for run in side)
            for name, side in runs.items()) + f" (the fastest of {args.repeat} counts above)")


if __name__ == "__main__":
    main()
