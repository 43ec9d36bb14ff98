"""`facelab predict`: a trained model's class probabilities (calibrated with its saved temperature) for image files
and folders; CSV on stdout or --out, per-class counts and skipped files on stderr, Grad-CAM overlays with --explain."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from facelab.accel import inference_accel
from facelab.commands.inference import (
    Predictions,
    check_threshold,
    choose_classes,
    image_files,
    predict_files,
    predictions_frame,
)
from facelab.errors import UserError
from facelab.files import write_csv
from facelab.modelfile import load_trained
from facelab.params import RECIPES, TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--seed", type=int, help="the run: models/<task>/<recipe>/seed<seed>.pt (default: the only "
                                                 "run trained)")
    parser.add_argument("--model", type=Path, help="the .pt file instead (its .json must be beside it)")
    parser.add_argument("--out", type=Path, help="write the CSV here (atomically) instead of to stdout; a folder "
                                                 "gets predictions.csv inside it")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--threshold", type=float, help="two-class models: predict the second class when its "
                                                        "probability is at least this (default: the most probable)")
    parser.add_argument("--explain", type=Path, metavar="DIR",
                        help="write into DIR one Grad-CAM overlay PNG per image (where the model looked for its most "
                             "probable class), named after the input with its folders joined by '__'")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files, or folders of them")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def execute(args: argparse.Namespace) -> Predictions:
    """Score every file, write the CSV and print the summary; return the predictions."""
    out = csv_path(args.out) if args.out is not None else None  # a bad --out fails before any image is decoded
    explain = explain_folder(args.explain) if args.explain is not None else None
    trained = load_trained(args.task, args.recipe, args.model, seed=args.seed)
    files, unlisted = image_files(args.paths)
    if args.threshold is not None:
        check_threshold(args.threshold, trained.classes)  # before any image is decoded
    result = predict_files(trained, files, args.batch_size, inference_accel(args.device, torch.cuda.is_available()),
                           explain)
    result = dataclasses.replace(result, skipped=unlisted + result.skipped)  # reported with the unusable files
    if not result.files:
        reasons = "; ".join(f"{s.file}: {s.reason}" for s in result.skipped[:5])
        raise UserError(f"none of the {len(files)} file(s) is an image facelab can read ({reasons}"
                        f"{' ...' if len(result.skipped) > 5 else ''})")
    predicted = choose_classes(result.probabilities, trained.classes, args.threshold)
    frame = predictions_frame(result.files, result.probabilities, predicted, trained.classes)
    if out is not None:
        write_csv(out, frame)
    else:
        frame.to_csv(sys.stdout, index=False, float_format="%.6g")
    for line in summary_lines(frame, trained.classes, result):
        print(line, file=sys.stderr)
    return result


def csv_path(out: Path) -> Path:
    """--out as given, or <out>/predictions.csv when it is an existing folder."""
    if out.is_dir():
        return out / "predictions.csv"
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"--out '{out}': '{out.parent}' is a file, not a folder; pass a CSV path in a folder")
    return out


def explain_folder(folder: Path) -> Path:
    """--explain's folder, created; a file in its place fails before any image is decoded."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--explain '{folder}' is a file; pass a folder for the overlay PNGs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def summary_lines(frame, classes: tuple[str, ...], result: Predictions) -> list[str]:
    """One line per class (how many files it was predicted for), then one per skipped file with its reason."""
    counts = frame["predicted"].value_counts()
    lines = [f"predicted {name}: {int(counts.get(name, 0))}" for name in classes]
    lines += [f"skipped {s.file}: {s.reason} ({s.detail})" for s in result.skipped]
    return lines
