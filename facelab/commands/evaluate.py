"""`facelab evaluate`: score a trained model on a labelled folder outside the pipeline (one sub-folder per class
of the model), each image once and checked against the model's own train/val/test images (facelab.commands.overlap);
writes the files a run's scoring writes, under metrics/<task>/external/<name>/ and plots/<task>/external/<name>/."""
from __future__ import annotations

import argparse
import dataclasses
import errno
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import torch

from facelab import paths
from facelab.commands.overlap import MAX_SEEN_SHARE, SHOWN, Overlap, check_unseen, model_overlap
from facelab.commands.predict import positive_int
from facelab.data.batches import SplitData
from facelab.data.images import Images
from facelab.data.listing import class_folder
from facelab.data.quality import Dedup, dedupe
from facelab.data.sources import folder_images
from facelab.errors import UserError
from facelab.evaluation.experiment import Evaluation, evaluate_model, score_lines, with_data, write_outputs
from facelab.files import plain_folder_name, read_json
from facelab.modelfile import load_trained
from facelab.params import RECIPES, TASKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--data", required=True, type=Path,
                        help="a folder with one sub-folder of images per class of the model, named like the class")
    parser.add_argument("--name", help="names the results' folder (default: the --data folder's name and a short "
                                       "digest of its full path)")
    parser.add_argument("--seed", type=int, help="the run: models/<task>/<recipe>/seed<seed>.pt (default: the only "
                                                 "run trained)")
    parser.add_argument("--model", type=Path, help="the .pt file instead (its .json must be beside it)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--allow-overlap", action="store_true",
                        help=f"score even when over {MAX_SEEN_SHARE:.0%} of the images are the model's own train or "
                             f"val images (the overlap is reported either way)")
    parser.add_argument("--force", action="store_true",
                        help="write under --name even where that folder holds results of another --data folder")


def evaluate_folder(task: str, recipe_name: str, data: Path, name: str | None = None, model: Path | None = None,
                    batch_size: int = 128, root: Path = Path("."), seed: int | None = None,
                    allow_overlap: bool = False, force: bool = False) -> tuple[Evaluation, dict[str, Path]]:
    """Score the model on every distinct usable image of `data`; write and return the results and where they went.

    root: the repository whose data/prepared/<task>/ the model was trained on (its overlap with `data` is checked).
    allow_overlap: score even when over MAX_SEEN_SHARE of the images are the model's train or val images.
    force: write under `name` even where that folder holds results of another --data folder."""
    data = Path(data)
    if name is not None:
        check_name(name)
    trained = load_trained(task, recipe_name, model, root, seed)
    folder = data_folder(data, trained.classes)
    out = paths.external_outputs(task, recipe_name, trained.card.settings.seed, name or default_name(folder), root)
    if not force:
        check_same_data(out, folder)
    images, dedup = labelled_folder(data, trained.classes, trained.img_size, trained.faces, trained.min_side,
                                    trained.faces_fallback)
    seen = model_overlap(trained, images, root)
    if not allow_overlap:
        check_unseen(seen, data, len(images.labels))
    split = SplitData(torch.from_numpy(np.asarray(images.pixels)), torch.from_numpy(images.labels))
    details = data_details(data, folder, images, dedup, seen)
    result = with_data(evaluate_model(trained, split, batch_size, list(images.files)), details)
    write_outputs(result, out)
    return result, out


def check_name(name: str) -> str:
    if not plain_folder_name(name):
        raise UserError(f"--name '{name}' is not a plain folder name; results go to metrics/<task>/external/<name>/, "
                        f"so pass a name without '/', '\\', '.' or '..'")
    return name


# --- the folder: where it really is, where its results go -----------------------------------------------------------

def data_folder(data: Path, classes: tuple[str, ...]) -> Path:
    """--data with every link resolved; a link loop, a missing path or a file is a UserError naming it."""
    wanted = f"pass a folder holding one sub-folder per class {list(classes)}"
    try:
        os.stat(data)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserError(f"--data '{data}' is (or passes through) a link that leads back to itself, a link loop; "
                            f"{wanted}, or point the link at one") from error
        if os.path.islink(data):
            raise UserError(f"--data '{data}' is a link to '{os.readlink(data)}', which does not exist; "
                            f"{wanted}") from error
        what = "does not exist" if error.errno == errno.ENOENT else f"cannot be read ({error.strerror})"
        raise UserError(f"--data '{data}' {what}; {wanted}") from error
    if not data.is_dir():
        raise UserError(f"--data '{data}' is not a folder; {wanted}")
    return Path(os.path.realpath(data))


def default_name(folder: Path) -> str:
    """The folder's name and a short digest of its full path: two folders both named 'photos' never share results,
    and the same folder evaluated again replaces its own."""
    digest = hashlib.sha256(os.fsencode(folder)).hexdigest()[:8]
    return f"{folder.name or 'root'}-{digest}"


def check_same_data(out: dict[str, Path], folder: Path) -> None:
    """Refuse to write among results of another folder: every details file under metrics/<task>/external/<name>/
    (any recipe, any seed) records the folder it scored."""
    results = out["metrics"].parent.parent
    others = sorted({scored for details in results.glob("*/*_details.json")
                     if (scored := scored_folder(details)) != str(folder)})
    if others:
        raise UserError(f"'{results}' holds results of --data '{others[0]}', not of '{folder}'; pass another --name "
                        f"(without one, each folder gets its own), or --force to write there anyway")


def scored_folder(details: Path) -> str:
    """The full path of the folder an earlier evaluation scored, from its details file."""
    try:
        data = read_json(details).get("data") or {}
    except (OSError, ValueError, AttributeError) as error:
        return f"unknown ('{details}' cannot be read: {error})"
    if "resolved" in data:
        return str(data["resolved"])
    return os.path.realpath(data["path"]) if "path" in data else f"unknown ('{details}' names no folder)"


# --- the images: decoded as prepare decodes them, each once -----------------------------------------------------------

def labelled_folder(root: Path, classes: tuple[str, ...], img_size: int, faces: str = "none",
                    min_side: int | None = None, fallback: str = "skip") -> tuple[Images, Dedup]:
    """The folder source's decoding of <root>/<class>/*, at the model's image size and with its smallest usable
    side (prepare's min_side), each image once with prepare's fates (facelab.data.quality.dedupe): copies with the
    same pixels under one class are scored once; copies under two classes (a link inside a class folder, a photo
    filed twice) are dropped, as their true class is unknown. Returns the images scored and those fates. A class
    without a folder or without a single usable image is an error (its recall could not be measured)."""
    missing = [name for name in classes if not class_folder(root, name).is_dir()]
    if missing:
        raise UserError(f"--data '{root}' has no folder for class(es) {missing}; the model's classes are "
                        f"{list(classes)}, and each needs a sub-folder of that exact name{case_hint(root, missing)}")
    decoded = folder_images(root, classes, img_size, faces=faces, min_side=min_side, fallback=fallback)
    dedup = dedupe(decoded.digests, decoded.labels, decoded.files, classes)
    images = dataclasses.replace(decoded, pixels=np.asarray(decoded.pixels)[dedup.keep],
                                 labels=decoded.labels[dedup.keep], files=[decoded.files[i] for i in dedup.keep],
                                 digests=[decoded.digests[i] for i in dedup.keep])
    empty = [name for k, name in enumerate(classes) if not (images.labels == k).any()]
    if empty:
        conflicts = [(file, name) for group in dedup.conflicts for file, name in zip(group["files"], group["classes"])]
        dropped = [file for file, name in conflicts if name in empty]
        also = (f", {len(dropped)} dropped as the same image is also under another class, e.g. "
                f"'{dropped[0]}'" if dropped else "")
        raise UserError(f"--data '{root}': no usable image for class(es) {empty} "
                        f"({len(images.skipped)} file(s) skipped{also}); every class needs at least one")
    return images, dedup


def case_hint(root: Path, missing: list[str]) -> str:
    """For a missing class whose folder is there in another case ('Target' for 'target'), say so."""
    try:
        with os.scandir(root) as scan:
            names = sorted(entry.name for entry in scan)
    except OSError:
        return ""
    return "".join(f"; '{root / found}' differs from '{name}' only in case: rename it to '{name}'"
                   for name in missing for found in names if found != name and found.casefold() == name.casefold())


def copy_warnings(dedup: Dedup) -> list[str]:
    """What the printed warnings say of copies: those dropped as under two classes, those counted once."""
    lines = []
    if dedup.conflicts:
        files = [file for group in dedup.conflicts for file in group["files"]]
        lines.append(f"{len(files)} file(s) hold the same image as a file of another class and are not scored (its "
                     f"class is unknown; prepare drops them too): " + ", ".join(files[:SHOWN])
                     + (" ..." if len(files) > SHOWN else "") + "; remove the copy, or the link inside a class folder "
                                                                "that makes it")
    removed = [file for group in dedup.duplicates for file in group["removed"]]
    if removed:
        lines.append(f"{len(removed)} file(s) are copies of another image of the same class and are scored once: "
                     + ", ".join(removed[:SHOWN]) + (" ..." if len(removed) > SHOWN else ""))
    return lines


# --- what is written and printed -------------------------------------------------------------------------------------

def data_details(root: Path, folder: Path, images: Images, dedup: Dedup, seen: Overlap) -> dict:
    """Which images were scored: the folder (as given and resolved), counts, every file not used with its reason,
    the copies found, and the overlap with the model's own data."""
    total = len(images.labels)
    warnings = list(images.warnings) + copy_warnings(dedup) + [w for w in [seen.warning(total)] if w]
    return {"path": str(root), "resolved": str(folder), "images": int(total),
            "skipped": [{"file": s.file, "reason": s.reason, "detail": s.detail} for s in images.skipped],
            "ignored": [{"file": s.file, "detail": s.detail} for s in images.ignored],
            "not_used": images.not_used, "duplicates": dedup.duplicates, "conflicts": dedup.conflicts,
            "overlap": seen.to_json(), "warnings": warnings}


def summary_lines(label: str, result: Evaluation, out: dict[str, Path]) -> list[str]:
    data = result.details.data or {}
    counts = f"images, {len(data.get('skipped', []))} skipped"
    conflicts = sum(len(group["files"]) for group in data.get("conflicts", []))
    counts += f", {conflicts} dropped as under two classes" if conflicts else ""
    lines = [f"[{label}] {line}" for line in score_lines(result, counts)]
    overlap = data.get("overlap", {})
    if overlap.get("checked"):
        lines.append(f"[{label}] images also in the model's own data ({overlap['prepared']}): " + ", ".join(
            f"{split} {n['exact']} exact + {n['near']} near" for split, n in overlap["splits"].items()))
    return lines + [f"[{label}] metrics: {out['metrics']}, details: {out['details']}"]


def execute(args: argparse.Namespace) -> Evaluation:
    result, out = evaluate_folder(args.task, args.recipe, args.data, args.name, args.model, args.batch_size,
                                  seed=args.seed, allow_overlap=args.allow_overlap, force=args.force)
    data = result.details.data or {}
    for warning in data.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    where = f"{args.task}/{args.recipe}/{out['metrics'].stem} on {Path(data.get('resolved', args.data)).name}"
    for line in summary_lines(where, result, out):
        print(line)
    return result
