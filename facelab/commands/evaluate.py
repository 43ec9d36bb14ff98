"""`facelab evaluate`: score a trained model on a labelled folder outside the pipeline (one sub-folder per class
of the model); writes the files a run's scoring writes, under metrics/<task>/external/<name>/ and
plots/<task>/external/."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from facelab import paths
from facelab.commands.predict import positive_int
from facelab.data.batches import SplitData
from facelab.data.images import Images
from facelab.data.listing import class_folder
from facelab.data.sources import folder_images
from facelab.errors import UserError
from facelab.evaluation.experiment import Evaluation, evaluate_model, score_lines, with_data, write_outputs
from facelab.files import plain_folder_name
from facelab.modelfile import load_trained
from facelab.params import RECIPES, TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--data", required=True, type=Path,
                        help="a folder with one sub-folder of images per class of the model, named like the class")
    parser.add_argument("--name", help="names the results' folder (default: the --data folder's name)")
    parser.add_argument("--seed", type=int, help="the run: models/<task>/<recipe>/seed<seed>.pt (default: the only "
                                                 "run trained)")
    parser.add_argument("--model", type=Path, help="the .pt file instead (its .json must be beside it)")
    parser.add_argument("--batch-size", type=positive_int, default=128)


def evaluate_folder(task: str, recipe_name: str, data: Path, name: str | None = None, model: Path | None = None,
                    batch_size: int = 128, root: Path = Path("."),
                    seed: int | None = None) -> tuple[Evaluation, dict[str, Path]]:
    """Score the model on every usable image of `data`; write and return the results and where they went."""
    name = check_name(name if name is not None else Path(data).resolve().name)
    trained = load_trained(task, recipe_name, model, root, seed)
    images = labelled_folder(Path(data), trained.classes, trained.img_size, trained.faces, trained.min_side)
    split = SplitData(torch.from_numpy(np.asarray(images.pixels)), torch.from_numpy(images.labels))
    result = with_data(evaluate_model(trained, split, batch_size, list(images.files)), data_details(Path(data), images))
    out = paths.external_outputs(task, recipe_name, trained.card.settings.seed, name, root)
    write_outputs(result, out)
    return result, out


def check_name(name: str) -> str:
    if not plain_folder_name(name):
        raise UserError(f"--name '{name}' is not a plain folder name; results go to metrics/<task>/external/<name>/, "
                        f"so pass a name without '/', '\\', '.' or '..'")
    return name


def labelled_folder(root: Path, classes: tuple[str, ...], img_size: int, faces: str = "none",
                    min_side: int | None = None) -> Images:
    """The folder source's decoding of <root>/<class>/*, at the model's image size and with its smallest usable
    side (prepare's min_side); a class without a folder or without a single usable image is an error (its recall
    could not be measured)."""
    if not root.is_dir():
        raise UserError(f"--data '{root}' is not a folder; pass a folder holding one sub-folder per class "
                        f"{list(classes)}")
    missing = [name for name in classes if not class_folder(root, name).is_dir()]
    if missing:
        raise UserError(f"--data '{root}' has no folder for class(es) {missing}; the model's classes are "
                        f"{list(classes)}, and each needs a sub-folder of that exact name")
    images = folder_images(root, classes, img_size, faces=faces, min_side=min_side)
    empty = [name for k, name in enumerate(classes) if not (images.labels == k).any()]
    if empty:
        raise UserError(f"--data '{root}': no usable image for class(es) {empty} "
                        f"({len(images.skipped)} file(s) skipped); every class needs at least one")
    return images


def data_details(root: Path, images: Images) -> dict:
    """Which images were scored: the folder, counts, and every file not used with its reason."""
    return {"path": str(root), "images": int(len(images.labels)),
            "skipped": [{"file": s.file, "reason": s.reason, "detail": s.detail} for s in images.skipped],
            "ignored": [{"file": s.file, "detail": s.detail} for s in images.ignored],
            "not_used": images.not_used, "warnings": list(images.warnings)}


def summary_lines(label: str, result: Evaluation, out: dict[str, Path]) -> list[str]:
    skipped = len(result.details.data["skipped"]) if result.details.data else 0
    lines = [f"[{label}] {line}" for line in score_lines(result, f"images, {skipped} skipped")]
    return lines + [f"[{label}] metrics: {out['metrics']}, details: {out['details']}"]


def execute(args: argparse.Namespace) -> Evaluation:
    result, out = evaluate_folder(args.task, args.recipe, args.data, args.name, args.model, args.batch_size,
                                  seed=args.seed)
    for warning in (result.details.data or {}).get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    where = f"{args.task}/{args.recipe}/{out['metrics'].stem} on {out['metrics'].parent.parent.name}"
    for line in summary_lines(where, result, out):
        print(line)
    return result
