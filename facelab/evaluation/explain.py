"""Why a model is right or wrong, per experiment (evaluate): calibration before and after the saved temperature, the
mistake gallery, Grad-CAM saliency; their numbers and three PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from facelab.data.batches import prepared_split, split_files
from facelab.evaluation.calibration import ECE_BINS, ece, ece_ci, reliability_bins, scaled_probabilities
from facelab.evaluation.gallery import mistake_gallery, select_mistakes, short_name
from facelab.evaluation.saliency import CamLayer, experiment_saliency, saliency_figure
from facelab.evaluation.stats import BOOTSTRAP
from facelab.params import Split
from facelab.plotting import pyplot, save


def names_of_test_images(prepared: Path, seed: int, fractions: Split) -> list[str]:
    """The test images' file names of one run's split (seed, data.<task>.split), in its test arrays' row order."""
    return split_files(prepared, prepared_split(prepared, seed, fractions))["test"]


def calibration(logits: torch.Tensor, actual: np.ndarray, temperature: float, val_ece: dict) -> dict:
    """Test ECE (ECE_BINS bins) with its bootstrap interval, before and after dividing the logits by the model's
    temperature; the validation ECE it was fitted on, from the model card, beside them."""
    scored = {}
    for when, t in (("before", 1.0), ("after", temperature)):
        probabilities = scaled_probabilities(logits, t).double().numpy()
        scored[when] = {"ece": ece(probabilities, actual, ECE_BINS),
                        "ece_ci": list(ece_ci(probabilities, actual, ECE_BINS, **BOOTSTRAP))}
    return {"temperature": temperature, "bins": ECE_BINS, "test": scored,
            "val": {"before": val_ece["before"], "after": val_ece["after"]}}


def explanation(rest: nn.Sequential, activations: torch.Tensor, pixels: np.ndarray, names: list[str],
                actual: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...],
                batch_size: int, layer: CamLayer) -> dict:
    """What the gallery and saliency images show: the mistakes chosen (select_mistakes, on the calibrated
    probabilities a user gets) and the Grad-CAM maps from the activations evaluate's own forward pass recorded."""
    if len(names) != len(actual):
        raise ValueError(f"{len(names)} file names for {len(actual)} test images; the manifest does not describe "
                         f"these arrays: rerun prepare")
    cells = select_mistakes(actual, predicted, probabilities)
    gallery = [i for cell in cells for i in cell["index"]]
    saliency = experiment_saliency(rest, activations, pixels, actual, predicted, gallery, len(classes), batch_size)
    captions = [f"{short_name(names[i])}\n{classes[actual[i]]} \u2192 {classes[predicted[i]]}" for i in gallery]
    return {"pixels": pixels, "names": names, "actual": actual, "predicted": predicted,
            "probabilities": probabilities, "classes": classes, "saliency": saliency, "captions": captions,
            "layer": layer}


def draw(explained: dict, calibrated: dict, title: str, out: dict[str, Path]) -> None:
    """The three PNGs: reliability diagram (after the temperature, the ECE before it in the title), mistake
    gallery, saliency figure."""
    before, t = calibrated["test"]["before"]["ece"], calibrated["temperature"]
    reliability_diagram(explained["probabilities"], explained["actual"], ECE_BINS,
                        f"{title}, after temperature {t:.2f}\n(ECE before it: {before:.3f})", out["reliability"])
    mistake_gallery(explained["pixels"], explained["actual"], explained["predicted"], explained["probabilities"],
                    explained["names"], explained["classes"], out["gallery"])
    saliency_figure(explained["saliency"], explained["classes"], explained["captions"],
                    f"{title}: {explained['layer'].caption()}", out["saliency"])


def reliability_diagram(probabilities, labels, bins: int, title: str, path: str | Path) -> float:
    """A PNG of per-bin accuracy against confidence (bars) beside the diagonal of perfect calibration, the gap
    to each bin's mean confidence shaded, and how many images fall in each bin; returns the ECE in its title."""
    value = ece(probabilities, labels, bins)
    table = reliability_bins(probabilities, labels, bins)
    left, width = table["edges"][:-1], 1 / bins
    filled = table["count"] > 0
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(4.2, 5), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 1]})
    top.bar(left[filled], table["accuracy"][filled], width=width, align="edge", color="tab:blue",
            edgecolor="black", label="accuracy")
    gap_low = np.minimum(table["accuracy"], table["confidence"])[filled]
    top.bar(left[filled], np.abs(table["confidence"] - table["accuracy"])[filled], bottom=gap_low, width=width,
            align="edge", color="tab:red", alpha=0.35, edgecolor="tab:red", label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.set_title(f"{title}\nECE {value:.3f} ({bins} bins, {int(table['count'].sum())} images)", fontsize=9)
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(left, table["count"], width=width, align="edge", color="grey", edgecolor="black")
    bottom.set(xlabel="confidence (top-class probability)", ylabel="images")
    fig.tight_layout()
    save(fig, path)
    return value
