"""Check: does the bf16 path (the GPU default) stay within run-to-run noise of fp32? Prints accuracies.

Trains one recipe on one task's data three times: fp32 with the seed, fp32 with the next seed (the size
of ordinary run-to-run noise), and bf16 autocast + channels_last with the seed. Run from the repository root:
  python3 -m benchmarks.precision_check --task face --recipe resnet18_scratch --n-images 3000            # CPU
  python3 -m benchmarks.precision_check --task face --recipe resnet18_scratch --n-images 3000 --device cuda
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Literal

import torch

from facelab.accel import choose_accel, describe
from facelab.data import prepare
from facelab.data.batches import Inputs, load_prepared
from facelab.evaluation.forward import score_split
from facelab.models import trained_model
from facelab.params import RECIPES, TASKS, load_params
from facelab.training import loop


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="face")
    parser.add_argument("--recipe", choices=RECIPES, default="resnet18_scratch")
    parser.add_argument("--n-images", type=int, help="generated images (default: params.yaml's)")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--params", default="params.yaml")
    return parser.parse_args(argv)


def test_accuracy(result: loop.TrainResult, recipe, split, classes, accel, batch_size: int) -> float:
    model = accel.model(trained_model(recipe, len(classes), result.state_dict))
    inputs = Inputs(split, None, batch_size, flips=False, accel=accel)
    return score_split(model, inputs, len(classes), batch_size)["acc"]


def main(argv=None) -> None:
    args = parse_args(argv)
    params = load_params(args.params)
    recipe = params.models[args.recipe]
    recipe = dataclasses.replace(recipe, epochs=args.epochs or recipe.epochs)
    data = params.data[args.task]
    if args.n_images:
        if data.generated is None:
            raise SystemExit(f"--n-images: data.{args.task}.generated is not set in {args.params}")
        data = dataclasses.replace(data, generated=dataclasses.replace(data.generated, n_images=args.n_images))
    base = dataclasses.replace(params.train, device=args.device, threads=args.threads)
    seed = params.seeds[0]
    runs: list[tuple[Literal["fp32", "bf16"], int]] = [("fp32", seed), ("fp32", seed + 1), ("bf16", seed)]
    with tempfile.TemporaryDirectory(prefix="facelab-precision-") as tmp:
        prepare.prepare_task(args.task, data, params.data_seed, Path(tmp))
        splits, classes = load_prepared(tmp, seed, data.split)
    print(f"{args.task}/{args.recipe}: {len(splits['train'].labels)} train, {len(splits['val'].labels)} val, "
          f"{len(splits['test'].labels)} test images, {data.img_size} px, {recipe.epochs} epochs")
    for precision, seed in runs:
        settings = dataclasses.replace(base, precision=precision)
        accel = choose_accel(settings, torch.cuda.is_available())
        started = time.perf_counter()
        result = loop.train_loop(f"{precision} seed {seed}", recipe, settings, seed, splits, classes, accel=accel)
        acc = test_accuracy(result, recipe, splits["test"], classes, accel, settings.eval_batch_size)
        print(f"RESULT {describe(accel):45s} seed {seed}: val acc {result.summary['val']['acc']:.4f}  "
              f"test acc {acc:.4f}  train {result.summary['images_per_second']:.1f} img/s  "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
