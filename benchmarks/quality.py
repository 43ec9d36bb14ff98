"""Benchmark: test accuracy and macro F1 of a recipe on a real image folder over several seeds, against the typical
script.

Run from the repository root, the machine otherwise idle:
  python3 -m benchmarks.quality --folder ../shared/data/real/emotion-fer2013 --recipe resnet18_scratch
  python3 -m benchmarks.quality --folder ../shared/data/real/face-yaleb --recipe resnet18_scratch
Each seed draws its own split (prepare's stratified split, data.<task>.split) and its own model initialisation.
Configurations (--configs):
  defaults  params.yaml as it is (with --set overrides), through the same prepare.prepare_task and
            training.loop.train_loop the stages call, scored on the test split as evaluate scores it;
  before    the defaults before augmentation, class weights, label smoothing and macro-F1 selection existed
            (BEFORE below): flip only, plain loss, the lowest-val-loss epoch kept;
  typical   the hand-written script of benchmarks/throughput.py (ImageFolder, PIL transforms with a random flip,
            DataLoader, plain loop, the last epoch kept) with the `before` recipe, trained on the same train files
            and scored on the same test files.
--members N trains N runs a seed for `defaults` (same split, other initialisations) and scores their ensemble.
Prints a markdown table: per seed, then mean ± std (sample std over seeds) of test acc, macro F1 and train seconds,
and what the augmentation costs per epoch (one epoch of batches drawn with and without it, timed side by side).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import ImageFolder

from benchmarks.throughput import in_fresh_process, typical_train
from facelab.data import prepare
from facelab.data.augment import draw
from facelab.data.batches import Inputs, load_prepared, prepared_split, split_files
from facelab.evaluation.forward import forward_logits
from facelab.evaluation.scores import split_scores
from facelab.models import IMAGENET_MEAN, IMAGENET_STD, trained_model
from facelab.params import RECIPES, augmentation, parse_params, raw_params
from facelab.training import loop
from facelab.yaml12 import load_yaml

# params.yaml's training defaults before issue 16 (the recipes' own keys and the train section's new keys).
BEFORE = {
    "train.augment": {"hflip": True, "crop_scale": [1.0, 1.0], "rotation": 0, "brightness": 0, "contrast": 0,
                      "erasing": 0},
    "train.class_weights": "none", "train.select_by": "val_loss", "train.label_smoothing": 0.0,
    "train.tta_flip": False,
    "models.vgg16_finetune": {"arch": "vgg16", "weights": "imagenet", "frozen": ["features"], "head_hidden": 256,
                              "dropout": 0.5, "optimizer": "adam", "lr": 0.0001, "momentum": 0.9,
                              "weight_decay": 0.0001, "epochs": 8, "batch_size": 32, "schedule": "cosine",
                              "step_size": 5, "gamma": 0.1},
    "models.resnet18_scratch": {"arch": "resnet18", "weights": "none", "frozen": [], "head_hidden": 0,
                                "dropout": 0.0, "optimizer": "adam", "lr": 0.001, "momentum": 0.9,
                                "weight_decay": 0.0001, "epochs": 10, "batch_size": 32, "schedule": "cosine",
                                "step_size": 5, "gamma": 0.1},
    "models.resnet18_pretrained": {"arch": "resnet18", "weights": "imagenet", "frozen": [], "head_hidden": 0,
                                   "dropout": 0.0, "optimizer": "adam", "lr": 0.0003, "momentum": 0.9,
                                   "weight_decay": 0.0001, "epochs": 8, "batch_size": 32, "schedule": "cosine",
                                   "step_size": 5, "gamma": 0.1},
}
CONFIGS = ("before", "defaults", "typical")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="an image-folder tree: <folder>/<class>/*")
    parser.add_argument("--recipe", choices=RECIPES, default="resnet18_scratch")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params.yaml key for 'defaults', as dvc exp run -S does (YAML value)")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads, every side")
    parser.add_argument("--members", type=int, default=1,
                        help="defaults: train this many runs a seed (inits seed, seed + 1000, ...) and score their "
                             "mean probabilities as one ensemble; train s is their sum")
    parser.add_argument("--params", default="params.yaml")
    return parser.parse_args(argv)


def with_overrides(raw: dict, overrides: dict) -> dict:
    """raw params with dotted keys replaced (models.resnet18_scratch.lr=0.01, train.augment={...})."""
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        if last not in node:
            raise SystemExit(f"error: --set {key}: no such key in params.yaml")
        node[last] = value
    return raw


def config_params(raw: dict, config: str, sets: list[str], folder: Path, img_size: int, threads: int):
    overrides = dict(BEFORE) if config in ("before", "typical") else {}
    if config == "defaults":
        pairs = (item.split("=", 1) for item in sets)
        overrides.update({key: load_yaml(value, f"--set {key}")[0] for key, value in pairs})  # as dvc exp run -S
    raw = with_overrides(raw, overrides)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    for task in raw["data"]:
        raw["data"][task].update(source="folder", path=str(folder.resolve()), classes=classes, img_size=img_size)
    raw["train"].update(threads=threads, device="cpu")
    raw["wandb"]["mode"] = "disabled"
    return parse_params(raw)


def facelab_side(params, recipe_name: str, seed: int, prepared: Path, members: int = 1) -> dict:
    """The stages' own path: training.loop.train_loop, then the test split scored as evaluate scores it.
    members > 1: as many runs on this seed's split, initialised (and their batches drawn) with seed, seed + 1000,
    seed + 2000, ..., scored as one ensemble (the mean of their softmax probabilities); the first member is the run
    that members = 1 trains."""
    splits, classes = load_prepared(prepared, seed, params.data["face"].split)
    recipe, settings = params.models[recipe_name], params.train
    batch = settings.eval_batch_size
    test = Inputs(splits["test"], None, batch, flips=False)
    labels = test.data.labels.cpu()
    probabilities: dict[bool, list[torch.Tensor]] = {False: [], True: []}
    results = []
    for member in range(members):
        result = loop.train_loop(f"seed {seed}", recipe, settings, seed + 1000 * member, splits, classes)
        model = trained_model(recipe, len(classes), result.state_dict)
        for flip in (False, True):  # the run's setting and the other one, for free
            probabilities[flip].append(forward_logits(model, test, batch, flip).softmax(1))
        results.append(result)
    scored = {}
    for flip, members_ in probabilities.items():
        mean = torch.stack(members_).mean(0)
        loss = nn.functional.nll_loss(mean.clamp_min(1e-12).log(), labels).item()
        scored[flip] = split_scores(labels.numpy(), mean.argmax(1).numpy(), loss, len(classes))
    scores = scored[settings.tta_flip]
    member_acc = [float((p.argmax(1) == labels).float().mean()) for p in probabilities[settings.tta_flip]]
    first = results[0].summary
    cost = augment_seconds(splits, augmentation(recipe, settings), recipe.batch_size, seed)
    return {"acc": scores["acc"], "macro_f1": scores["macro_f1"],
            "train_s": sum(r.summary["train_seconds"] for r in results),
            "flip_acc": scored[True]["acc"], "flip_macro_f1": scored[True]["macro_f1"],
            "best_epoch": first["best_epoch"], "epochs": first["epochs"], "member_acc": member_acc,
            "augment_share": cost / (first["train_seconds"] / first["epochs"]) if recipe.frozen == () else None}


def augment_seconds(splits, augment, batch_size: int, seed: int) -> float:
    """Seconds one epoch's augmentation adds to building its batches: every batch built with the draws and
    without (identity), alternating, the fastest of 3 each."""
    inputs = Inputs(splits["train"], None, batch_size, flips=False)
    n = len(inputs)
    draws = draw(augment, n, torch.Generator().manual_seed(seed))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):
        for augmented in (True, False):
            started = time.perf_counter()
            for start in range(0, n, batch_size):
                part = slice(start, start + batch_size)
                inputs.batch(order[part], draws[part] if augmented else None)
            timings[augmented].append(time.perf_counter() - started)
    return max(0.0, min(timings[True]) - min(timings[False]))


def typical_side(params, recipe_name: str, seed: int, folder: Path, manifest: pd.DataFrame, img_size: int,
                 threads: int) -> dict:
    files = {split: set(manifest.loc[manifest["split"] == split, "file"]) for split in ("train", "test")}
    model, classes, seconds, _ = typical_train(folder, files["train"], img_size, params.models[recipe_name], seed,
                                            threads, "cpu", workers=0)
    test_transform = transforms.Compose([transforms.Resize(img_size), transforms.CenterCrop(img_size),
                                         transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    dataset = ImageFolder(str(folder), test_transform)
    keep = [i for i, (path, _) in enumerate(dataset.samples) if os.path.relpath(path, folder) in files["test"]]
    model.eval()
    batches: list[torch.Tensor] = []
    truths: list[torch.Tensor] = []
    with torch.no_grad():
        for x, y in DataLoader(Subset(dataset, keep), batch_size=128):
            batches.append(model(x).argmax(1))
            truths.append(y)
    predicted, actual = torch.cat(batches).numpy(), torch.cat(truths).numpy()
    return {"acc": float(np.mean(predicted == actual)),
            "macro_f1": float(f1_score(actual, predicted, average="macro", labels=list(range(len(classes))),
                                       zero_division=0)),
            "train_s": seconds, "best_epoch": params.models[recipe_name].epochs, "flip_acc": None,
            "epochs": params.models[recipe_name].epochs, "augment_share": None}


def mean_std(values: list[float], digits: int) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def table(runs: dict[str, list[dict]], seeds: list[int]) -> list[str]:
    lines = ["| config | seed | test acc | test macro F1 | train s | kept epoch / epochs "
             "| augmentation, share of epoch | test acc / macro F1 with test-time flip |",
             "|---|---|---|---|---|---|---|---|"]
    for config, results in runs.items():
        for seed, r in zip(seeds, results):
            share = f"{100 * r['augment_share']:.1f}%" if r["augment_share"] is not None else ""
            flip = f"{r['flip_acc']:.3f} / {r['flip_macro_f1']:.3f}" if r["flip_acc"] is not None else ""
            lines.append(f"| {config} | {seed} | {r['acc']:.3f} | {r['macro_f1']:.3f} | {r['train_s']:.0f} | "
                         f"{r['best_epoch']} / {r['epochs']} | {share} | {flip} |")
    for config, results in runs.items():
        shares = [r["augment_share"] for r in results if r["augment_share"] is not None]
        share = mean_std([100 * s for s in shares], 1) + "%" if shares else ""
        flipped = [r for r in results if r["flip_acc"] is not None]
        flip = (f"{mean_std([r['flip_acc'] for r in flipped], 3)} / "
                f"{mean_std([r['flip_macro_f1'] for r in flipped], 3)}" if flipped else "")
        lines.append(f"| **{config}** | mean ± std | {mean_std([r['acc'] for r in results], 3)} | "
                     f"{mean_std([r['macro_f1'] for r in results], 3)} | "
                     f"{mean_std([r['train_s'] for r in results], 0)} | | {share} | {flip} |")
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    raw = raw_params(args.params)
    load = os.getloadavg()
    runs: dict[str, list[dict]] = {config: [] for config in args.configs}
    with tempfile.TemporaryDirectory(prefix="facelab-quality-") as tmp:
        for seed in args.seeds:
            prepared = Path(tmp) / f"prepared-{seed}"
            params = {config: config_params(raw, config, args.set, args.folder, args.img_size, args.threads)
                      for config in args.configs}
            any_params = next(iter(params.values()))
            # the data params are the same in every config
            prepare.prepare_task("quality", any_params.data["face"], seed, prepared)
            manifest = pd.read_csv(prepared / "manifest.csv")  # with the split this seed draws, as train draws it
            manifest["split"] = manifest["file"].map({name: split for split, names in split_files(
                prepared, prepared_split(prepared, seed, any_params.data["face"].split)).items() for name in names})
            for config in args.configs:
                if config == "typical":
                    result = in_fresh_process(typical_side, params[config], args.recipe, seed, args.folder, manifest,
                                              args.img_size, args.threads)
                else:
                    result = in_fresh_process(facelab_side, params[config], args.recipe, seed, prepared,
                                              args.members if config == "defaults" else 1)
                runs[config].append(result)
                print(f"seed {seed} {config}: acc {result['acc']:.4f} macro_f1 {result['macro_f1']:.4f} "
                      f"train {result['train_s']:.0f} s, kept epoch {result['best_epoch']}"
                      + (f", members' acc {', '.join(f'{a:.4f}' for a in result['member_acc'])}"
                         if len(result.get("member_acc", [])) > 1 else ""), flush=True)
    print(f"\n{args.recipe} on {args.folder} at {args.img_size} px, seeds {args.seeds}, torch threads {args.threads}; "
          f"--set {' '.join(args.set) or '(none)'}; load average before {load[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}\n")
    print("\n".join(table(runs, args.seeds)))


if __name__ == "__main__":
    main()
