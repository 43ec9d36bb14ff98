"""Trained models used on new images: a model file and the params saved beside it in, class probabilities out.

Images are decoded exactly as prepare decodes them (facelab.data.images) at the image size the model was trained
at, and normalised as in training (facelab.data.inputs.to_input); nothing is read from today's params.yaml."""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from facelab.accel import CPU, Accel
from facelab.data.batches import Inputs, SplitData
from facelab.data.images import BadImage, Skipped, decode_image, display_name, not_an_image_detail
from facelab.data.listing import Problem, list_tree, system_folder_in
from facelab.errors import UserError
from facelab.evaluation.calibration import scaled_probabilities
from facelab.evaluation.forward import forward_logits
from facelab.evaluation.saliency import cam_layer, cams_from_activations, network_after, overlay, predict_recording
from facelab.files import write_with
from facelab.modelfile import TrainedModel

# An overlay's name: its input's path, its last 200 bytes at most (names stop at 255), and 10 hex digits (40 bits)
# of the path's SHA-256, so two paths that read alike ('a__b/c.jpg', 'a/b__c.jpg') share a name with odds 1e-12.
EXPLANATION_HASH, EXPLANATION_BYTES = 10, 200


@dataclass(frozen=True)
class Predictions:
    """Per usable file its logits (N, classes), on the CPU; the files that could not be used, with why; the
    model's temperature, which turns the logits into its calibrated probabilities."""
    files: list[str]
    logits: torch.Tensor
    skipped: list[Skipped]
    temperature: float
    centred: list[str] = field(default_factory=list)  # no face found: scored whole (faces_fallback)

    @property
    def probabilities(self) -> np.ndarray:
        """softmax(logits / temperature): the probabilities evaluate scores (ECE, gallery)."""
        return scaled_probabilities(self.logits, self.temperature).numpy()


def image_files(inputs: list[Path]) -> tuple[list[Path], list[Skipped]]:
    """Files as given, and every file under each folder as prepare lists a class folder (at any depth, links
    followed, hidden names and NAS/OS system folders such as @eaDir left out; facelab.data.listing), each folder's
    files sorted by path; and what was not listed, as skipped entries with their reason: folders that could not be
    (a link loop, an unreadable folder), and system folders, given or met (not counted as bad). A given link that
    leads nowhere (a loop, a dangling link) is a file: the decoder skips it with its reason."""
    files, unlisted = [], []
    for path in map(Path, inputs):
        inside = system_folder_in(path)  # `facelab predict *` in a Synology share passes its @eaDir
        if inside is not None:
            unlisted.append(skipped_folder(inside))
        elif path.is_dir():
            listing = list_tree(path)
            files += listing.files
            unlisted += [skipped_folder(problem) for problem in listing.problems + listing.ignored]
        elif path.exists() or os.path.islink(path):
            files.append(path)
        else:
            raise UserError(f"'{path}' does not exist; pass image files or folders of images")
    return files, unlisted


def skipped_folder(problem: Problem) -> Skipped:
    return Skipped(display_name(problem.path), "", problem.reason, problem.detail)


def decode_files(files: list[Path], img_size: int, faces: str = "none", min_side: int | None = None,
                 fallback: str = "skip") -> tuple[np.ndarray, list[Path], list[Skipped], list[Path]]:
    """prepare's decoding of each file: (N, img_size, img_size, 3) uint8, the files used, the files skipped and why,
    and the files used whole because no face was found in them (min_side: prepare's smallest usable image side;
    fallback: its faces_fallback, skip or center)."""
    squares, kept, skipped, centred = [], [], [], []
    for path in files:
        try:
            decoded = decode_image(path, img_size, faces=faces, min_side=min_side, fallback=fallback)
            squares.append(decoded.square)
            kept.append(path)
            if decoded.centred:
                centred.append(path)
        except BadImage as bad:  # an ignored file's detail without prepare's note on max_bad_fraction
            skipped.append(Skipped(display_name(path), "", bad.reason,
                                   not_an_image_detail(path) if bad.ignored else bad.detail))
    pixels = np.stack(squares) if squares else np.zeros((0, img_size, img_size, 3), np.uint8)
    return pixels, kept, skipped, centred


def logits_of(model: nn.Module, pixels: np.ndarray, batch_size: int, accel: Accel = CPU,
              tta_flip: bool = False) -> torch.Tensor:
    """fp32 logits (N, classes) on the CPU for uint8 NHWC images, through evaluation's own forward_logits
    (tta_flip: as the model's run scored it, the mean with each image's mirror)."""
    images = torch.from_numpy(pixels)
    split = SplitData(images, torch.zeros(len(images), dtype=torch.int64))  # labels are not read
    return forward_logits(model, Inputs(split, None, batch_size, flips=False, accel=accel), batch_size, tta_flip)


def predict_files(trained: TrainedModel, files: list[Path], batch_size: int, accel: Accel = CPU,
                  explain: Path | None = None) -> Predictions:
    """Decode and score the files batch_size at a time (memory stays one batch); a progress bar on a terminal.
    explain: a folder that gets one Grad-CAM overlay per usable file (explanation_name), for its most probable
    class, from the activations of the same forward pass."""
    model = accel.model(trained.model)
    names, logits, skipped, centred = [], [], [], []
    with tqdm(total=len(files), unit="image", disable=None, file=sys.stderr, leave=False) as bar:
        for start in range(0, len(files), batch_size):
            pixels, kept, bad, whole = decode_files(files[start:start + batch_size], trained.img_size,
                                                    trained.faces, trained.min_side, trained.faces_fallback)
            centred += [display_name(path) for path in whole]
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
    return Predictions(names, torch.cat(logits) if logits else torch.zeros(0, classes), skipped, trained.temperature,
                       centred)


def explained_logits(trained: TrainedModel, model: nn.Module, pixels: np.ndarray, names: list[str], batch_size: int,
                     accel: Accel, folder: Path) -> torch.Tensor:
    """logits_of, and each image's Grad-CAM overlay for its most probable class written into `folder`."""
    arch = trained.recipe.arch
    split = SplitData(torch.from_numpy(pixels), torch.zeros(len(pixels), dtype=torch.int64))
    layer = cam_layer(model, arch, pixels.shape[1])
    logits, activations = predict_recording(model, layer, Inputs(split, None, batch_size, flips=False, accel=accel),
                                            batch_size, trained.tta_flip)
    maps = cams_from_activations(network_after(model, arch, layer), activations, logits.argmax(1).numpy(),
                                 pixels.shape[1:3], batch_size)
    for name, image, cam in zip(names, pixels, maps):
        write_png(folder / explanation_name(name), overlay(image, cam))
    return logits


def explanation_name(name: str) -> str:
    """The overlay's file name for an input's display name: its folders joined by '__', then '-' and the first
    EXPLANATION_HASH hex digits of the name's SHA-256, then '.png' ('a__b/c.jpg' and 'a/b__c.jpg' both read
    'a__b__c.jpg', and differ in the digits). The readable part drops leading folders until it fits in
    EXPLANATION_BYTES, so a deep path stays under the file system's 255-byte limit."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".", "..")]
    while len(parts) > 1 and len("__".join(parts).encode()) > EXPLANATION_BYTES:
        parts = parts[1:]
    readable = "__".join(parts).encode()[-EXPLANATION_BYTES:].decode("utf-8", "ignore")  # one over-long file name
    digest = hashlib.sha256(name.encode()).hexdigest()[:EXPLANATION_HASH]
    return f"{readable}-{digest}.png"


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
                      classes: tuple[str, ...], explained: bool = False) -> pd.DataFrame:
    """file, predicted, p_<class> for each class: one row per usable file, in input order; explained: and the
    file name of its Grad-CAM overlay (explanation_name)."""
    frame = pd.DataFrame({"file": files, "predicted": [classes[i] for i in predicted]})
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = probabilities[:, k]
    if explained:
        frame["explanation"] = [explanation_name(file) for file in files]
    return frame
