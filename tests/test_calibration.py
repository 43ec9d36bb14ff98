"""Calibration: ECE against a hand-computed case, its bootstrap interval, temperature scaling on an over-confident
model, the reliability diagram's pixels."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from facelab.evaluation.calibration import (
    _binned,
    _resampled_ece,
    ece,
    ece_ci,
    fit_temperature,
    reliability_bins,
    scaled_probabilities,
)
from facelab.evaluation.explain import reliability_diagram

# Four images, two classes, 5 bins of width 0.2:
#   bin [0.8, 1.0): confidences 0.95 (right) and 0.85 (wrong): accuracy 0.5, mean confidence 0.90, gap 0.400
#   bin [0.6, 0.8): confidences 0.70 (right) and 0.65 (wrong): accuracy 0.5, mean confidence 0.675, gap 0.175
# each bin holds half the images: ECE = 0.5 * 0.4 + 0.5 * 0.175 = 0.2875
HAND_PROBABILITIES = np.array([[0.95, 0.05], [0.85, 0.15], [0.30, 0.70], [0.35, 0.65]])
HAND_LABELS = np.array([0, 1, 1, 0])


def overconfident(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a model that is right about 70% of the time but, scaled by 10, nearly always ~100% sure."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    logits = 1.2 * nn_one_hot(labels, 3) + torch.randn(n, 3, generator=generator)
    return 10 * logits, labels


def nn_one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, k).float()


def test_ece_matches_the_hand_computed_case():
    assert ece(HAND_PROBABILITIES, HAND_LABELS, bins=5) == pytest.approx(0.2875, abs=1e-6)


def test_ece_is_zero_when_confidence_equals_accuracy_and_one_when_sure_and_always_wrong():
    # every image at confidence 0.75, three of four right: accuracy equals confidence in the only bin
    probabilities = np.array([[0.75, 0.25]] * 4)
    assert ece(probabilities, np.array([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-6)
    assert ece(np.array([[0.999, 0.001]] * 3), np.array([1, 1, 1])) == pytest.approx(0.999, abs=1e-6)


def test_reliability_bins_agree_with_the_ece():
    logits, labels = overconfident(300, seed=1)
    probabilities = torch.softmax(logits / 7, dim=1).double().numpy()  # no image at confidence exactly 1.0
    table = reliability_bins(probabilities, labels.numpy(), 15)
    filled = table["count"] > 0
    by_bins = np.sum(table["count"][filled] / table["count"].sum()
                     * np.abs(table["accuracy"][filled] - table["confidence"][filled]))
    assert table["count"].sum() == 300
    assert by_bins == pytest.approx(ece(probabilities, labels.numpy()), abs=1e-5)


def test_ece_refuses_logits_and_mismatched_labels():
    with pytest.raises(ValueError, match="softmax"):
        ece(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="labels"):
        ece(HAND_PROBABILITIES, np.array([0, 1]))


def test_ece_and_the_intervals_resamples_are_scored_as_torchmetrics_scores_them():
    from torchmetrics.functional.classification import multiclass_calibration_error
    """The vectorised ECE ece_ci scores each resample with equals torchmetrics' on the images as they are,
    including confidences of exactly 1.0 (a bin of their own there) and confidences on bin edges."""
    logits, drawn = overconfident(300, seed=6)
    probabilities = np.concatenate([torch.softmax(logits, dim=1).double().numpy(),  # many round to 1.0
                                    [[0.6, 0.4, 0.0], [0.4, 0.6, 0.0], [0.2, 0.8, 0.0], [0.0, 0.2, 0.8]]])
    labels = np.concatenate([drawn.numpy(), [0, 0, 1, 1]])
    for p, y in ((probabilities, labels), (HAND_PROBABILITIES, HAND_LABELS)):
        for bins in (5, 15):
            slot, confidence, correct = _binned(p, y, bins)
            as_they_are = np.arange(len(y))[None, :]
            assert _resampled_ece(slot, correct - confidence, as_they_are, bins)[0] == pytest.approx(
                ece(p, y, bins), abs=1e-6)
            reference = multiclass_calibration_error(torch.from_numpy(p), torch.from_numpy(y), num_classes=p.shape[1],
                                                     n_bins=bins, norm="l1")
            assert ece(p, y, bins) == pytest.approx(float(reference), abs=1e-6)  # torchmetrics, the reference


def test_ece_interval_holds_the_estimate_and_repeats_with_its_seed():
    logits, labels = overconfident(200, seed=2)
    probabilities = scaled_probabilities(logits, 3.0).double().numpy()
    value = ece(probabilities, labels.numpy())
    low, high = ece_ci(probabilities, labels.numpy(), 15, n_resamples=300, seed=0, level=0.95)
    assert 0 <= low < value < high <= 1
    assert ece_ci(probabilities, labels.numpy(), 15, 300, 0, 0.95) == (low, high)
    assert ece_ci(probabilities, labels.numpy(), 15, 300, 1, 0.95) != (low, high)


def test_temperature_scaling_calibrates_an_overconfident_model_without_changing_its_predictions():
    val_logits, val_labels = overconfident(600, seed=0)
    test_logits, test_labels = overconfident(600, seed=3)
    temperature = fit_temperature(val_logits, val_labels)
    assert temperature > 3  # it must soften logits that were scaled up tenfold
    assert fit_temperature(val_logits, val_labels) == temperature  # deterministic
    for logits, labels in ((val_logits, val_labels), (test_logits, test_labels)):
        before = torch.softmax(logits, dim=1).double().numpy()
        after = scaled_probabilities(logits, temperature).double().numpy()
        assert ece(after, labels.numpy()) < 0.5 * ece(before, labels.numpy())
        assert np.array_equal(after.argmax(1), before.argmax(1))


def test_temperature_of_an_already_calibrated_model_is_near_one():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(4000, 3, generator=generator) * 2
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator).squeeze(1)  # drawn from its own p
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)


def test_fit_temperature_refuses_bad_logits():
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(torch.tensor([[float("nan"), 0.0]]), [0])
    with pytest.raises(ValueError, match="rows"):
        fit_temperature(torch.zeros(3, 2), [0, 1])


def test_reliability_diagram_draws_bars_and_puts_the_ece_in_its_title(tmp_path):
    logits, labels = overconfident(300, seed=5)
    probabilities = torch.softmax(logits, dim=1).double().numpy()
    path = tmp_path / "reliability.png"
    value = reliability_diagram(probabilities, labels.numpy(), 15, "emotion / resnet18_scratch", path)
    assert value == pytest.approx(ece(probabilities, labels.numpy()))
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 80) & (pixels[..., 1] > 90) & (pixels[..., 1] < 150)
    assert blue.sum() > 500  # the accuracy bars (tab:blue) are drawn, not an empty frame


class RedMeter(torch.nn.Module):
    """A model whose logits are a class's distance to the image's mean red, times `sharpness`: right most of the
    time, and with a large sharpness nearly always sure (over-confident)."""

    def __init__(self, sharpness: float):
        super().__init__()
        self.sharpness = sharpness

    def forward(self, x):
        red = x[:, 0].mean(dim=(1, 2))[:, None]  # normalised, as to_input feeds every model
        centres = torch.tensor([-1.0, 0.0, 1.0])[None]
        return -self.sharpness * (red - centres).abs()


def test_train_fits_a_temperature_that_lowers_val_ece_of_an_overconfident_model_and_keeps_its_classes(tiny_params):
    from facelab.data.batches import Inputs, SplitData
    from facelab.evaluation.forward import forward_logits
    from facelab.training.experiment import fit_calibration

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=generator)
    noise = 35 * torch.randn(300, 1, 1, generator=generator).expand(300, 8, 8)  # per image, not per pixel
    red = (70 + 55 * labels[:, None, None] + noise).clamp(0, 255)
    images = torch.stack([red, torch.full_like(red, 100), torch.full_like(red, 100)], dim=-1).to(torch.uint8)
    val, model = SplitData(images, labels), RedMeter(sharpness=60.0)
    assert tiny_params.train.calibrate == "temperature"  # params.yaml's default, as train reads it
    card = fit_calibration(model, val, tiny_params.train)
    assert card["temperature"] > 2
    assert card["val_ece"]["after"] < 0.5 * card["val_ece"]["before"]
    logits = forward_logits(model, Inputs(val, None, 64, flips=False), 64)
    accuracy = (logits.argmax(1) == labels).float().mean()
    assert 0.55 < accuracy < 0.95  # a model that is often wrong, not a trivially calibrated perfect one
    assert torch.equal(scaled_probabilities(logits, card["temperature"]).argmax(1), logits.argmax(1))
    off = fit_calibration(model, val, dataclasses.replace(tiny_params.train, calibrate="none"))
    assert off["temperature"] == 1.0 and off["val_ece"]["after"] == off["val_ece"]["before"]
