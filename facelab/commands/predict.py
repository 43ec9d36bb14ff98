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
from facelab.data.images import Skipped, image_suffix
from facelab.errors import UserError
from facelab.files import write_csv
from facelab.modelfile import load_trained
from facelab.params import RECIPES, TASKS

CSV_HEADER = b"file,predicted,"  # predictions_frame's first columns: --force may replace a CSV predict wrote


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--seed", type=int, help="the run: models/<task>/<recipe>/seed<seed>.pt (default: the only "
                                                 "run trained)")
    parser.add_argument("--model", type=Path, help="the .pt file instead (its .json must be beside it)")
    parser.add_argument("--out", type=Path, help="write the CSV here (atomically) instead of to stdout; a folder "
                                                 "gets predictions.csv inside it. An existing CSV is replaced only "
                                                 "with --force; any other existing file, never")
    parser.add_argument("--force", action="store_true", help="replace the CSV that --out names if it exists")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--threshold", type=float, help="two-class models: predict the second class when its "
                                                        "probability is at least this (default: the most probable)")
    parser.add_argument("--explain", type=Path, metavar="DIR",
                        help="write into DIR one Grad-CAM overlay PNG per image (where the model looked for its most "
                             "probable class), named after the input with its folders joined by '__' and a hash of "
                             "its path (the CSV's explanation column)")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="image files, or folders of them (a name starting with '-': put '--' before the paths)")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def execute(args: argparse.Namespace) -> Predictions:
    """Score every file, write the CSV and print the summary; return the predictions."""
    # a bad --out or --explain, and paths without a single file, fail before the model is loaded
    out = csv_path(args.out, args.force) if args.out is not None else None
    explain = explain_folder(args.explain) if args.explain is not None else None
    files, unlisted = image_files(args.paths)
    if not files:
        raise UserError(nothing_to_score(args.paths, unlisted))
    trained = load_trained(args.task, args.recipe, args.model, seed=args.seed)
    if args.threshold is not None:
        check_threshold(args.threshold, trained.classes)  # before any image is decoded
    result = predict_files(trained, files, args.batch_size, inference_accel(args.device, torch.cuda.is_available()),
                           explain)
    result = dataclasses.replace(result, skipped=unlisted + result.skipped)  # reported with the unusable files
    if not result.files:
        raise UserError(f"none of the {len(files)} file(s) is an image facelab can read ({reasons(result.skipped)})")
    predicted = choose_classes(result.probabilities, trained.classes, args.threshold)
    frame = predictions_frame(result.files, result.probabilities, predicted, trained.classes, explain is not None)
    if out is not None:
        write_csv(out, frame)
    else:
        frame.to_csv(sys.stdout, index=False, float_format="%.6g")
    for line in summary_lines(frame, trained.classes, result):
        print(line, file=sys.stderr)
    return result


def nothing_to_score(paths: list[Path], unlisted: list[Skipped]) -> str:
    """Why the PATHs gave no file (they are all folders: a given file is always listed)."""
    where = ", ".join(f"'{path}'" for path in paths)
    if not unlisted:
        return (f"{where} hold(s) no file at all (hidden files and NAS or OS folders such as @eaDir are not read); "
                f"pass image files or folders that hold them")
    return f"{where} hold(s) no file to score ({reasons(unlisted)}); pass image files or folders that hold them"


def reasons(skipped: list[Skipped], shown: int = 5) -> str:
    return "; ".join(f"{s.file}: {s.reason}" for s in skipped[:shown]) + (" ..." if len(skipped) > shown else "")


def csv_path(out: Path, force: bool = False) -> Path:
    """--out as given, or <out>/predictions.csv when it is an existing folder; refused when it names an image (a
    shell's '*' can turn a file named '--out=x.jpg' into the option), any other existing file that is not a CSV, or
    an existing CSV without --force."""
    path = out / "predictions.csv" if out.is_dir() else out
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"--out '{out}': '{out.parent}' is a file, not a folder; pass a CSV path in a folder")
    if image_suffix(path):
        raise UserError(f"--out '{out}' names an image file ({path.suffix}), and predict writes CSV; pass a path "
                        f"ending in .csv. If the shell's '*' matched a file named '--out={out}', it became this "
                        f"option: put '--' before the paths (facelab predict ... -- *) or write ./*")
    if path.exists() and not is_csv(path):
        raise UserError(f"--out '{path}' exists and is not a CSV; predict never overwrites it (not even with "
                        f"--force): pass a new path ending in .csv")
    if path.exists() and not force:
        raise UserError(f"--out '{path}' exists; pass --force to replace it, or another --out")
    return path


def is_csv(path: Path) -> bool:
    """A file named *.csv, or a file predict wrote (its header starts 'file,predicted,') whatever its name."""
    if not path.is_file():
        return False
    if path.suffix.lower() == ".csv":
        return True
    try:
        with open(path, "rb") as file:
            return file.read(len(CSV_HEADER)) == CSV_HEADER
    except OSError:
        return False


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
    lines += [f"no face found in {name}: scored its centre square, as the model's training photos without a face "
              f"were (faces_fallback: center)" for name in result.centred]
    return lines
