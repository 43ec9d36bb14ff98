import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from facelab.training.health import (
    PERCENTILE_SAMPLE,
    HealthRecorder,
    health_verdict,
    histogram_epochs,
    layers,
    tensor_stats,
)


def test_tensor_stats_are_percentiles_and_norm():
    stats = tensor_stats(np.arange(101, dtype=np.float32))
    assert [stats[k] for k in ("p1", "p25", "p50", "p75", "p99")] == [1, 25, 50, 75, 99]
    assert stats["norm"] == pytest.approx(np.sqrt((np.arange(101) ** 2).sum()))


def test_a_large_layers_percentiles_come_from_its_sample_within_three_standard_errors_and_its_norm_is_exact():
    values = np.random.default_rng(0).standard_normal(2_359_296).astype(np.float32)  # layer4's 3x3 convolution
    stats = tensor_stats(values)
    ranks = [np.mean(values <= stats[f"p{q}"]) for q in (1, 25, 50, 75, 99)]
    # a sample of n values puts a percentile's rank within sqrt(p(1-p)/n) (one standard error) of p, most of the time
    n = len(values[::len(values) // PERCENTILE_SAMPLE])
    expected = np.array([0.01, 0.25, 0.50, 0.75, 0.99])
    assert np.all(np.abs(np.array(ranks) - expected) < 3 * np.sqrt(expected * (1 - expected) / n))
    assert stats["norm"] == pytest.approx(float(np.linalg.norm(values)), rel=1e-6)


def test_verdict_flags_vanishing_and_exploding_but_not_frozen_layers():
    rows = pd.DataFrame([
        {"epoch": 1, "layer": "conv", "frozen": True, "norm": np.nan},
        {"epoch": 1, "layer": "fc", "frozen": False, "norm": 1e-9},
        {"epoch": 2, "layer": "fc", "frozen": False, "norm": 5e3}])
    verdict = health_verdict(rows, vanishing=1e-7, exploding=1e3)
    assert verdict["vanishing_gradients"] and verdict["exploding_gradients"]
    assert verdict["min_grad_norm"] == 1e-9 and verdict["max_grad_norm"] == 5e3
    assert verdict["frozen_layers"] == ["conv"]
    healthy = health_verdict(rows.iloc[:1].assign(norm=np.nan), 1e-7, 1e3)
    assert not healthy["vanishing_gradients"] and healthy["min_grad_norm"] is None


def test_recorder_rows_per_layer_and_epoch():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    model[0].bias.requires_grad_(False)
    assert list(layers(model)) == ["0", "2"]
    recorder = HealthRecorder(model, histogram_epochs(3))
    for epoch in (1, 2, 3):
        model(torch.ones(5, 4)).sum().backward()
        recorder.after_backward()
        recorder.end_epoch(epoch)
        model.zero_grad()
    gradients, parameters = recorder.frames()
    assert len(gradients) == len(parameters) == 6
    trained = gradients[gradients["layer"] == "2"]
    hidden = model[0](torch.ones(1, 4)).relu()
    # d(sum of outputs over 5 rows)/dW2 = 5 * hidden for each of the 2 output rows; bias grads are 5
    expected = np.sqrt(2 * 25 * hidden.pow(2).sum().item() + 2 * 25)
    assert trained["norm"].tolist() == pytest.approx([expected] * 3, rel=1e-5)
    assert gradients[gradients["layer"] == "0"]["norm"].isna().all()
    assert set(recorder.histograms["gradients"]) == {1, 2, 3} and "0" not in recorder.histograms["gradients"][1]
    assert histogram_epochs(10) == {1, 5, 10}


def test_wandb_histograms_count_the_finite_values_in_64_bins_and_skip_an_all_nan_layer():
    from facelab.training.health import wandb_histograms

    values = np.array([0.0, 1.0, 2.0, np.nan, np.inf, -np.inf, 3.0], dtype=np.float32)
    found = wandb_histograms({"gradients/fc": values, "gradients/dead": np.full(4, np.nan, np.float32)})
    counts, edges = found["gradients/fc"]
    assert counts.sum() == 4 and len(counts) == 64 and edges[0] == 0.0 and edges[-1] == 3.0
    assert "gradients/dead" not in found
