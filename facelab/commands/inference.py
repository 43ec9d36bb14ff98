"""Trained models used on new images: a model file and the params saved beside it in, class probabilities out.

Images are decoded exactly as prepare decodes them (facelab.data.images) at the image size the model was trained
at, and normalised as in training (facelab.data.batches.to_input); nothing is read from today's params.yaml."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from facelab import paths
from facelab.accel import CPU, Accel
from facelab.data.batches import Inputs, SplitData
from facelab.data.images import BadImage, Skipped, decode_image, display_name
from facelab.data.listing import list_tree
from facelab.errors import ModelFileError, UserError
from facelab.evaluation.calibration import scaled_probabilities
from facelab.evaluation.forward import predict
from facelab.evaluation.saliency import cams_from_activations, network_after, overlay, predict_recording
from facelab.files import write_with
from facelab.modelfile import read_card, read_weights, rebuild_command
from facelab.models import IMAGENET_MEAN, IMAGENET_STD, architecture, trained_model
from facelab.params import Recipe, parse_recipe


@dataclass(frozen=True)
class TrainedModel:
    """A model file read back: its path, the card saved beside it (settings and results), its weights, and the
    model holding them. Everything about how to run it comes from the card's settings."""
    path: Path
    info: dict
    state_dict: dict
    model: nn.Module

    @property
    def settings(self) -> dict:
        return self.info["settings"]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.settings["classes"])

    @property
    def img_size(self) -> int:
        return int(self.settings["img_size"])

    @property
    def tta_flip(self) -> bool:
        """Whether the model is scored with test-time flip averaging, as the evaluate stage scores it."""
        return bool(self.settings["train"]["tta_flip"])

    @property
    def faces(self) -> str:
        """The prepare stage's face setting the model was trained with."""
        return self.settings["faces"]

    @property
    def min_side(self) -> int:
        """The prepare stage's smallest usable image side: a smaller photo is skipped, as prepare skipped them."""
        return int(self.settings["min_side"])

    @property
    def temperature(self) -> float:
        """What the logits are divided by before softmax (train.calibrate), as the evaluate stage does."""
        return float(self.info["results"]["temperature"])


@dataclass(frozen=True)
class Predictions:
    """Per usable file its logits (N, classes), on the CPU; the files that could not be used, with why; the
    model's temperature, which turns the logits into its calibrated probabilities."""
    files: list[str]
    logits: torch.Tensor
    skipped: list[Skipped]
    temperature: float

    @property
    def probabilities(self) -> np.ndarray:
        """softmax(logits / temperature): the probabilities evaluate scores (ECE, gallery)."""
        return scaled_probabilities(self.logits, self.temperature).numpy()


def load_trained(task: str, recipe_name: str, path: Path | None = None) -> TrainedModel:
    """models/<task>/<recipe>.pt (or `path`) and its .json, checked to fit together; the model in eval mode."""
    path = Path(path) if path is not None else paths.model(task, recipe_name)
    rebuild = rebuild_command(task, recipe_name, paths.model(task, recipe_name))
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist; build it with {rebuild}")
    info = read_card(path.with_suffix(".json"), rebuild)
    settings = info["settings"]
    saved = (settings["task"], settings["recipe_name"])
    if saved != (task, recipe_name):
        raise ModelFileError(f"'{path.with_suffix('.json')}' is the model of task '{saved[0]}', recipe '{saved[1]}', "
                             f"not of --task {task} --recipe {recipe_name}; pass --task {saved[0]} --recipe {saved[1]}")
    check_normalisation(settings["normalisation"], path.with_suffix(".json"))
    recipe = parse_recipe(settings["recipe"], where=f"{path.with_suffix('.json')}: settings.recipe")
    state_dict = read_weights(path, rebuild)
    classes = len(settings["classes"])
    problems = state_dict_mismatch(expected_shapes(recipe, classes), state_dict)
    if problems:
        raise ModelFileError(f"'{path}' does not fit the recipe saved beside it ({recipe.arch}, head_hidden "
                             f"{recipe.head_hidden}, {classes} classes): {'; '.join(problems)}; "
                             f"the .pt and .json must come from the same training: rebuild both with {rebuild}")
    return TrainedModel(path, info, state_dict, trained_model(recipe, classes, state_dict).eval())


def check_normalisation(normalisation: dict, path: Path) -> None:
    """to_input normalises with the ImageNet statistics; a model trained with others would see shifted inputs."""
    wanted = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    saved = {key: normalisation.get(key) if isinstance(normalisation, dict) else None for key in wanted}
    if any(saved[key] is None or not np.allclose(saved[key], wanted[key]) for key in wanted):
        raise ModelFileError(f"'{path}': normalisation {saved} is not the ImageNet mean/std {wanted} that "
                             f"facelab.data.batches.to_input applies; this model needs the facelab version that "
                             f"trained it")


def expected_shapes(recipe: Recipe, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the recipe's model and its shape, from a model built on the meta device (no memory)."""
    with torch.device("meta"):
        model = architecture(recipe, num_classes)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def state_dict_mismatch(expected: dict[str, tuple[int, ...]], state_dict: dict) -> list[str]:
    """What keeps the state dict from loading: missing and unexpected keys, and shapes that differ (a few of each)."""
    missing = [key for key in expected if key not in state_dict]
    extra = [key for key in state_dict if key not in expected]
    shapes = [f"{key} is {tuple(state_dict[key].shape)} in the file, {expected[key]} for the recipe"
              for key in expected if key in state_dict and tuple(state_dict[key].shape) != expected[key]]
    problems = []
    for what, items in (("missing key(s)", missing), ("unexpected key(s)", extra), ("shape(s) differ", shapes)):
        if items:
            problems.append(f"{len(items)} {what}: " + ", ".join(items[:3]) + (" ..." if len(items) > 3 else ""))
    return problems


def image_files(inputs: list[Path]) -> tuple[list[Path], list[Skipped]]:
    """Files as given, and every file under each folder as prepare lists a class folder (at any depth, links
    followed, hidden names left out; facelab.data.listing), each folder's files sorted by path; and the folders
    under them that could not be listed (a link loop, an unreadable folder), as skipped entries with their reason."""
    files, unlisted = [], []
    for path in map(Path, inputs):
        if path.is_dir():
            listing = list_tree(path)
            files += listing.files
            unlisted += [Skipped(display_name(problem.path), "", problem.reason, problem.detail)
                         for problem in listing.problems]
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"'{path}' does not exist; pass image files or folders of images")
    return files, unlisted


def decode_files(files: list[Path], img_size: int, faces: str = "none",
                 min_side: int | None = None) -> tuple[np.ndarray, list[Path], list[Skipped]]:
    """prepare's decoding of each file: (N, img_size, img_size, 3) uint8, the files used, the files skipped and why
    (min_side: prepare's smallest usable image side)."""
    squares, kept, skipped = [], [], []
    for path in files:
        try:
            squares.append(decode_image(path, img_size, faces=faces, min_side=min_side)[0])
            kept.append(path)
        except BadImage as bad:
            skipped.append(Skipped(display_name(path), "", bad.reason, bad.detail))
    pixels = np.stack(squares) if squares else np.zeros((0, img_size, img_size, 3), np.uint8)
    return pixels, kept, skipped


def logits_of(model: nn.Module, pixels: np.ndarray, batch_size: int, accel: Accel = CPU,
              tta_flip: bool = False) -> torch.Tensor:
    """fp32 logits (N, classes) on the CPU for uint8 NHWC images, through evaluation's own predict
    (tta_flip: as the model's evaluate stage scored it, the mean with each image's mirror)."""
    images = torch.from_numpy(pixels)
    split = SplitData(images, torch.zeros(len(images), dtype=torch.int64))  # labels are not read
    return predict(model, Inputs(split, None, batch_size, flips=False, accel=accel), batch_size, tta_flip)


def predict_files(trained: TrainedModel, files: list[Path], batch_size: int, accel: Accel = CPU,
                  explain: Path | None = None) -> Predictions:
    """Decode and score the files batch_size at a time (memory stays one batch); a progress bar on a terminal.
    explain: a folder that gets one Grad-CAM overlay per usable file (explanation_name), for its most probable
    class, from the activations of the same forward pass."""
    model = accel.model(trained.model)
    names, logits, skipped = [], [], []
    with tqdm(total=len(files), unit="image", disable=None, file=sys.stderr, leave=False) as bar:
        for start in range(0, len(files), batch_size):
            pixels, kept, bad = decode_files(files[start:start + batch_size], trained.img_size, trained.faces,
                                             trained.min_side)
            if len(kept):
                if explain is None:
                    logits.append(logits_of(model, pixels, batch_size, accel, trained.tta_flip))
                else:
                    logits.append(explained_logits(trained, model, pixels, [display_name(p) for p in kept],
                                                   batch_size, accel, explain))
            names += [display_name(path) for path in kept]
            skipped += bad
            bar.update(len(kept) + len(bad))
    classes = len(trained.classes)
    return Predictions(names, torch.cat(logits) if logits else torch.zeros(0, classes), skipped, trained.temperature)


def explained_logits(trained: TrainedModel, model: nn.Module, pixels: np.ndarray, names: list[str], batch_size: int,
                     accel: Accel, folder: Path) -> torch.Tensor:
    """logits_of, and each image's Grad-CAM overlay for its most probable class written into `folder`."""
    arch = trained.settings["recipe"]["arch"]
    split = SplitData(torch.from_numpy(pixels), torch.zeros(len(pixels), dtype=torch.int64))
    logits, activations = predict_recording(model, arch, Inputs(split, None, batch_size, flips=False, accel=accel),
                                            batch_size, trained.tta_flip)
    maps = cams_from_activations(network_after(model, arch), activations, logits.argmax(1).numpy(),
                                 pixels.shape[1:3], batch_size)
    for name, image, cam in zip(names, pixels, maps):
        write_png(folder / explanation_name(name), overlay(image, cam))
    return logits


def explanation_name(name: str) -> str:
    """The overlay's file name for an input's display name: its folders joined by '__', '.png' added (unique
    as the names are, and sorted as they are)."""
    return name.replace("\\", "/").strip("/").replace("/", "__") + ".png"


def write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image
    write_with(path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))


def choose_classes(probabilities: np.ndarray, classes: tuple[str, ...], threshold: float | None) -> np.ndarray:
    """The predicted class index per row: the most probable class, or for two classes with a threshold,
    classes[1] exactly when its probability is at least the threshold."""
    if threshold is None:
        return probabilities.argmax(1)
    check_threshold(threshold, classes)
    return (probabilities[:, 1] >= threshold).astype(np.int64)


def check_threshold(threshold: float, classes: tuple[str, ...]) -> None:
    if len(classes) != 2:
        raise UserError(f"--threshold applies to two-class models; this one has {len(classes)} classes "
                        f"{list(classes)}: leave --threshold out to predict the most probable class")
    if not 0 <= threshold <= 1:
        raise UserError(f"--threshold {threshold} is not a probability; use a value inside [0, 1]")


def predictions_frame(files: list[str], probabilities: np.ndarray, predicted: np.ndarray,
                      classes: tuple[str, ...]) -> pd.DataFrame:
    """file, predicted, p_<class> for each class: one row per usable file, in input order."""
    frame = pd.DataFrame({"file": files, "predicted": [classes[i] for i in predicted]})
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = probabilities[:, k]
    return frame


def inference_accel(device: str, cuda_available: bool) -> Accel:
    """cpu, cuda or auto (CUDA when present); always fp32, so a GPU gives the CPU's predictions up to rounding."""
    if device == "cuda" and not cuda_available:
        raise UserError("--device cuda, but torch sees no CUDA device on this machine; use --device cpu or auto")
    if device == "cuda" or (device == "auto" and cuda_available):
        return Accel(torch.device("cuda"), None, channels_last=False, compile=False)
    return CPU
