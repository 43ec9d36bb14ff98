"""A trained model's two files: the weights (.pt, byte-identical for identical weights) and beside them a .json
that keeps the settings it was trained with apart from the results of that training.

{"format": 2, "settings": {task, recipe_name, seed, classes, img_size, faces, normalisation, recipe, train,
weights}, "results": {train, val, epochs, best_epoch, train_seconds, images_per_second, health, augment_applied,
wandb, temperature, val_ece}}: no key of one can shadow a key of the other, and every reader takes settings
from "settings" only. temperature: the one T that predict and evaluate divide the logits by (train.calibrate;
1.0 for none); val_ece: the validation ECE before and after it."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from facelab.errors import ModelFileError
from facelab.files import read_json

FORMAT = 2
SETTINGS = ("task", "recipe_name", "seed", "classes", "img_size", "faces", "min_side", "normalisation", "recipe",
            "train", "weights")
RESULTS = ("train", "val", "epochs", "best_epoch", "train_seconds", "images_per_second", "health",
           "augment_applied", "wandb", "temperature", "val_ece")


def model_card(settings: dict, results: dict) -> dict:
    """The .json's content; refuses a settings or results dict that lacks a key readers rely on."""
    for part, keys, given in (("settings", SETTINGS, settings), ("results", RESULTS, results)):
        missing = [key for key in keys if key not in given]
        if missing:
            raise ValueError(f"model card {part} lacks {missing}")  # a bug in the caller
    return {"format": FORMAT, "settings": settings, "results": results}


def weights_bytes(state_dict: dict) -> bytes:
    """torch.save into memory: a file path would put its (temporary, random) name into the archive, so equal
    weights would give files with different hashes and DVC would rerun every stage after them."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def read_card(path: Path, rebuild: str) -> dict:
    """The .json beside a model, in the current shape; an older shape is refused with the command that rebuilds it."""
    if not path.is_file():
        raise ModelFileError(f"'{path}' (the settings saved beside the model file) does not exist; rebuild both "
                             f"with {rebuild}")
    try:
        card = read_json(path)
    except (OSError, ValueError) as error:
        raise ModelFileError(f"'{path}' cannot be read as JSON ({error}); rebuild it with {rebuild}") from error
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' was written by an older facelab (no separate settings and results); "
                             f"rebuild it with {rebuild}")
    missing = [f"settings.{k}" for k in SETTINGS if k not in card.get("settings", {})]
    missing += [f"results.{k}" for k in RESULTS if k not in card.get("results", {})]
    if missing:
        raise ModelFileError(f"'{path}' lacks key(s) {missing}; it was not written by train; rebuild it with {rebuild}")
    return card


def read_weights(path: Path, rebuild: str) -> dict:
    """Tensors only (weights_only): a model file never runs code when it is loaded."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise ModelFileError(f"'{path}' cannot be read as a PyTorch state dict ({error}); rebuild it with "
                             f"{rebuild}") from error
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ModelFileError(f"'{path}' holds a {type(state_dict).__name__}, not a state dict of tensors; "
                             f"rebuild it with {rebuild}")
    return state_dict


def rebuild_command(task: str, recipe_name: str, model: Path) -> str:
    return f"`dvc repro train@{task}-{recipe_name}` (or `dvc pull {model}`)"
