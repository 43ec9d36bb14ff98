"""Benchmark: do the Grad-CAM class-mean maps of a model trained on real photos point at different parts of the face?

Run from the repository root, the machine otherwise idle:
  python3 -m benchmarks.saliency_quadrants --folder ../shared/data/real/emotion-fer2013 --seed 0

Trains the recipe with params.yaml's defaults on one seed's split of the folder (prepared as benchmarks/quality.py
prepares it), predicts the test split as evaluate does, and takes the class-mean Grad-CAM maps over the correctly
classified test images (facelab.evaluation.saliency) twice: at the layer evaluate uses (the deepest with a grid of at
least 7x7) and at the last block (resnet18's layer4: 2x2 at 64 px, what issue 31 saw). For each class it prints the
share of the mean map's mass in each quadrant of the image, the hottest quadrant, and the peak's position; writes both
figures (class means over their mean image) to --out.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.quality import config_params
from facelab.data import prepare
from facelab.data.batches import Inputs, load_prepared
from facelab.evaluation.saliency import (
    CamLayer,
    cam_layer,
    experiment_saliency,
    network_after,
    predict_recording,
    saliency_figure,
)
from facelab.evaluation.scores import split_scores
from facelab.models import trained_model
from facelab.params import RECIPES, raw_params
from facelab.training import loop

QUADRANTS = ("top left", "top right", "bottom left", "bottom right")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="an image-folder tree: <folder>/<class>/*")
    parser.add_argument("--recipe", choices=RECIPES, default="resnet18_scratch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params override, as dvc exp run -S spells it (repeatable)")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "facelab-saliency-quadrants")
    return parser.parse_args(argv)


def quadrant_shares(cam: np.ndarray) -> np.ndarray:
    """The share of a map's mass in each quadrant (QUADRANTS order); the middle row and column are split evenly."""
    height, width = cam.shape
    rows = np.minimum(np.arange(height) * 2 // height, 1)
    columns = np.minimum(np.arange(width) * 2 // width, 1)
    which = rows[:, None] * 2 + columns[None, :]
    mass = np.array([cam[which == k].sum() for k in range(4)], dtype=np.float64)
    return mass / mass.sum() if mass.sum() > 0 else mass


def describe(name: str, saliency: dict, classes: list[str]) -> tuple[list[str], list[int]]:
    lines, hottest = [f"{name}:"], []
    for label, cam, count in zip(classes, saliency["maps"], saliency["counts"]):
        shares = quadrant_shares(cam)
        peak = np.unravel_index(int(cam.argmax()), cam.shape)
        hottest.append(int(shares.argmax()))
        lines.append(f"  {label} (mean of {count} correct): hottest {QUADRANTS[hottest[-1]]}; shares "
                     + ", ".join(f"{q} {s:.2f}" for q, s in zip(QUADRANTS, shares))
                     + f"; peak at row {peak[0]}, column {peak[1]} of {cam.shape[0]}")
    return lines, hottest


def main(argv=None) -> None:
    args = parse_args(argv)
    raw = raw_params(args.params)
    params = config_params(raw, "defaults", args.set, args.folder, args.img_size, args.threads)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facelab-quadrants-") as tmp:
        prepared = Path(tmp) / "prepared"
        prepare.prepare_task("quality", params.data["face"], args.seed, prepared)
        splits, classes = load_prepared(prepared, args.seed, params.data["face"].split)
    recipe, settings = params.models[args.recipe], params.train
    started = time.perf_counter()
    result = loop.train_loop(f"seed {args.seed}", recipe, settings, args.seed, splits, classes)
    train_seconds = time.perf_counter() - started
    model = trained_model(recipe, len(classes), result.state_dict)
    batch, test = settings.eval_batch_size, splits["test"]
    pixels, actual = test.images.numpy(), test.labels.numpy()
    layers = [cam_layer(model, recipe.arch, args.img_size)]
    if recipe.arch == "resnet18" and layers[0].name != "layer4":
        layers.append(CamLayer("layer4", (0, 0)))  # its grid is measured from the activations below
    print(f"{args.recipe} on {args.folder}, seed {args.seed}, {args.img_size} px, --set {' '.join(args.set) or '-'}; "
          f"train {train_seconds:.0f} s, load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    for layer in layers:
        logits, activations = predict_recording(model, layer, Inputs(test, None, batch, flips=False), batch,
                                                settings.tta_flip)
        layer = CamLayer(layer.name, (int(activations.shape[-2]), int(activations.shape[-1])))
        predicted = logits.argmax(1).numpy()
        scores = split_scores(actual, predicted, float("nan"), len(classes))
        saliency = experiment_saliency(network_after(model, recipe.arch, layer), activations, pixels, actual,
                                       predicted, [], len(classes), batch)
        lines, hottest = describe(f"{layer.caption()}; test acc {scores['acc']:.4f}, macro F1 "
                                  f"{scores['macro_f1']:.4f}", saliency, list(classes))
        print("\n".join(lines))
        print(f"  the class means' hottest quadrants: {len(set(hottest))} different of {len(classes)}")
        figure = args.out / f"{args.recipe}_seed{args.seed}_{layer.name.replace('.', '_')}.png"
        saliency_figure(saliency, list(classes), [], f"{args.recipe} seed {args.seed}: {layer.caption()}", figure)
        print(f"  figure: {figure}")


if __name__ == "__main__":
    main()
