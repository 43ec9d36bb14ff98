"""Calibration: do a model's probabilities mean what they say? Expected calibration error with a bootstrap
interval, one fitted temperature, the reliability table (drawn by evaluation.explain, so train imports no
plotting)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facelab.evaluation.stats import _check_resampling, _interval, _labels, _stratified_indices

# Guo et al. 2017 ("On Calibration of Modern Neural Networks") report ECE with 15 equal-width bins; so do we.
ECE_BINS = 15


def _checked(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) probabilities and (N,) class indices of the same, non-zero length."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be (images, classes) with at least 2 classes, got {probabilities.shape}")
    labels = _labels(labels, probabilities.shape[1], "labels")
    if labels.size != probabilities.shape[0]:
        raise ValueError(f"{probabilities.shape[0]} rows of probabilities but {labels.size} labels")
    if labels.size == 0:
        raise ValueError("no images to score")
    if not np.allclose(probabilities.sum(axis=1), 1, atol=1e-4) or probabilities.min() < 0:
        raise ValueError("each row of probabilities must be a distribution (non-negative, summing to 1); "
                         "pass softmax(logits), not logits")
    return probabilities, labels


def ece(probabilities, labels, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error: the mean |accuracy - confidence| over equal-width confidence
    bins, weighted by each bin's share of the images. The same number as torchmetrics' MulticlassCalibrationError
    (norm l1), which the tests check it against; importing torchmetrics costs each evaluate process 1.2 s."""
    probabilities, labels = _checked(probabilities, labels)
    slot, confidence, correct = _binned(probabilities, labels, bins)
    return float(_resampled_ece(slot, correct - confidence, np.arange(labels.size)[None, :], bins)[0])


def ece_ci(probabilities, labels, bins: int, n_resamples: int, seed: int, level: float) -> tuple[float, float]:
    """Stratified percentile bootstrap interval of the ECE, resampled as the accuracy intervals are
    (each true class keeps its count), so ECE and accuracy intervals describe the same kind of test set.

    Vectorised like stats.bootstrap_ci (one bincount per chunk of resamples): calling torchmetrics once per
    resample took 0.2 to 2 s for 2000 resamples of 150 images on the project's busy 2-core machine, this
    takes milliseconds. Images are binned exactly as torchmetrics bins them (a test checks the two agree)."""
    _check_resampling(n_resamples, level)
    probabilities, labels = _checked(probabilities, labels)
    slot, confidence, correct = _binned(probabilities, labels, bins)
    rng = np.random.default_rng(seed)
    values = [_resampled_ece(slot, correct - confidence, index, bins)
              for index in _stratified_indices(labels, probabilities.shape[1], n_resamples, rng)]
    return _interval(np.concatenate(values), level)


def _resampled_ece(slot: np.ndarray, gap: np.ndarray, index: np.ndarray, bins: int) -> np.ndarray:
    """The ECE of each row of `index` (resamples x images), from each image's bin slot and correct - confidence:
    per bin, |sum of gaps| / n is its share of the images times |accuracy - mean confidence|."""
    rows, slots = index.shape[0], bins + 1
    codes = slot[index] + (np.arange(rows) * slots)[:, None]
    sums = np.bincount(codes.ravel(), weights=gap[index].ravel(), minlength=rows * slots)
    return np.abs(sums.reshape(rows, slots)).sum(axis=1) / index.shape[1]


def _binned(probabilities: np.ndarray, labels: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image's confidence bin, confidence and correctness, binned as torchmetrics bins them: float32
    confidences, bins [lo, hi), and a confidence of exactly 1.0 in a slot of its own (index `bins`)."""
    confidence = torch.from_numpy(probabilities).float().max(dim=1)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float32)
    slot = (torch.bucketize(confidence.values, edges, right=True) - 1).numpy()
    correct = (confidence.indices.numpy() == labels).astype(np.float64)
    return slot, confidence.values.double().numpy(), correct


def fit_temperature(logits: torch.Tensor, labels) -> float:
    """The one temperature T > 0 that minimises the negative log-likelihood of softmax(logits / T) on
    these (validation) logits. Dividing by a scalar never changes the argmax, so predictions stay the same.

    Optimised over log T (so T stays positive without a constraint) with L-BFGS in float64 on the CPU:
    the same logits always give the same T."""
    logits = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be a non-empty (images, classes) tensor, got shape {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits hold NaN or infinite values; a temperature cannot be fitted to them")
    labels = torch.from_numpy(_labels(np.asarray(labels), logits.shape[1], "labels"))
    if labels.numel() != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits but {labels.numel()} labels")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, tolerance_grad=1e-10,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not np.isfinite(temperature) or temperature <= 0:  # e.g. every logit row identical: NLL is flat in T
        raise ValueError(f"fitting a temperature gave {temperature}; the logits carry no signal to calibrate")
    return temperature


def scaled_probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T): the calibrated probabilities of a model with fitted temperature T."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return torch.softmax(torch.as_tensor(logits).float() / temperature, dim=1)


def reliability_bins(probabilities, labels, bins: int) -> dict:
    """Per equal-width confidence bin: image count, accuracy and mean confidence of the top-label prediction
    (empty bins hold NaN). Bins are [lo, hi) as in the ECE; here a confidence of 1.0 joins the last bin."""
    probabilities, labels = _checked(probabilities, labels)
    slot, confidence, correct = _binned(probabilities, labels, bins)
    slot = np.minimum(slot, bins - 1)
    count = np.bincount(slot, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(slot, weights=correct, minlength=bins) / count
        mean_confidence = np.bincount(slot, weights=confidence, minlength=bins) / count
    return {"edges": np.linspace(0, 1, bins + 1), "count": count, "accuracy": accuracy,
            "confidence": mean_confidence}


def calibrate(logits: torch.Tensor, labels, method: str, bins: int = ECE_BINS) -> dict:
    """What train saves beside a model: the temperature for `method` ("temperature": fitted on these validation
    logits; "none": 1.0) and the validation ECE before and after dividing the logits by it."""
    if method not in ("none", "temperature"):
        raise ValueError(f"calibrate must be none or temperature, got '{method}'")
    labels = np.asarray(labels)
    temperature = fit_temperature(logits, labels) if method == "temperature" else 1.0
    before = ece(scaled_probabilities(logits, 1.0).double().numpy(), labels, bins)
    after = ece(scaled_probabilities(logits, temperature).double().numpy(), labels, bins)
    return {"temperature": temperature, "val_ece": {"before": before, "after": after, "bins": bins}}
