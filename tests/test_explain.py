"""The evaluate stage's explanations, through its real path (evaluate_experiment on a tiny trained model): ECE before
and after the saved temperature in the metrics and details, and its three images (reliability, mistakes, saliency)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from facelab import paths
from facelab.data.batches import load_prepared
from facelab.evaluation.calibration import ece, scaled_probabilities
from facelab.evaluation.experiment import evaluate_experiment
from facelab.evaluation.explain import names_of_test_images
from facelab.files import read_json
from facelab.params import parse_params
from tests.conftest import TINY_RECIPE, TINY_SEED, tiny_raw_params, train_tiny

TASK, RECIPE, SEED = "emotion", TINY_RECIPE, TINY_SEED


@pytest.fixture(scope="module", params=[False, pytest.param(True, marks=pytest.mark.e2e)], ids=["plain", "tta_flip"])
def evaluated(request, tmp_path_factory, tiny_models):
    """A tiny model trained as the stages do, with train.tta_flip off (the tiny params' own: the process's tiny
    model, tiny_models) or on, and evaluated."""
    root, raw = tmp_path_factory.mktemp("explain"), tiny_raw_params()
    assert raw["train"]["tta_flip"] is False
    if request.param:
        raw["train"]["tta_flip"] = True
        train_tiny(TASK, root, raw)
    else:
        tiny_models(TASK, root)
    splits, _ = load_prepared(paths.prepared(TASK, root), SEED, parse_params(raw).data[TASK].split)
    return root, splits, evaluate_experiment(TASK, RECIPE, SEED, 64, root)


def picture(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_metrics_carry_the_test_ece_after_the_saved_temperature_and_details_both(evaluated):
    root, splits, result = evaluated
    card = read_json(paths.model_info(TASK, RECIPE, SEED, root))
    metrics = read_json(paths.evaluate_outputs(TASK, RECIPE, SEED, root)["metrics"])
    calibrated = read_json(paths.evaluate_outputs(TASK, RECIPE, SEED, root)["details"])["calibration"]
    assert calibrated["temperature"] == card["results"]["temperature"]
    assert metrics["test"]["ece"] == calibrated["test"]["after"]["ece"]
    assert metrics["test"]["ece_ci"] == calibrated["test"]["after"]["ece_ci"]
    for when in ("before", "after"):
        low, high = calibrated["test"][when]["ece_ci"]
        assert low <= calibrated["test"][when]["ece"] <= high
    # the after-ECE is that of softmax(logits / T) on the predictions evaluate made
    probabilities = result.explained["probabilities"]
    assert metrics["test"]["ece"] == pytest.approx(ece(probabilities, splits["test"].labels.numpy()))
    assert np.array_equal(probabilities.argmax(1), result.explained["predicted"])


def test_three_images_are_written_and_show_something(evaluated):
    root, splits, result = evaluated
    out = paths.evaluate_outputs(TASK, RECIPE, SEED, root)
    for key in ("reliability", "gallery", "saliency"):
        pixels = picture(out[key])
        assert pixels.shape[0] > 100 and pixels.shape[1] > 200, key
        assert (pixels < 250).any(axis=2).mean() > 0.02, f"{key} is blank"
    explained = result.explained
    wrong = int((explained["actual"] != explained["predicted"]).sum())
    assert len(explained["captions"]) == len(explained["saliency"]["gallery_maps"]) == min(wrong, 32)
    correct = explained["actual"] == explained["predicted"]
    assert explained["saliency"]["counts"].sum() == correct.sum()  # class maps average the correct images


def test_gallery_names_come_from_the_manifest_in_row_order(evaluated):
    root, splits, result = evaluated
    names = names_of_test_images(paths.prepared(TASK, root), SEED, parse_params(tiny_raw_params()).data[TASK].split)
    assert len(names) == len(splits["test"].labels) and result.explained["names"] == names
    class_of = dict(line.split(",")[:2] for line in
                    (paths.prepared(TASK, root) / "manifest.csv").read_text().splitlines()[1:])
    classes = result.explained["classes"]
    assert [class_of[name] for name in names] == [classes[i] for i in splits["test"].labels.numpy()]


def test_scaled_probabilities_keep_every_prediction(evaluated):
    root, _, result = evaluated
    card = read_json(paths.model_info(TASK, RECIPE, SEED, root))
    assert card["results"]["temperature"] > 0
    assert card["results"]["val_ece"]["before"] >= 0 and card["results"]["val_ece"]["after"] >= 0
    logits = np.log(result.explained["probabilities"])
    rescaled = scaled_probabilities(logits, 1.0).numpy()
    assert np.array_equal(rescaled.argmax(1), result.explained["predicted"])


def test_evaluate_swaps_in_all_its_files_together_or_leaves_the_old_set(evaluated, tmp_path, monkeypatch):
    """A failure while writing evaluate's files (here the metrics) leaves the previous set as it was, images
    included, and no temporary file behind."""
    import json
    from pathlib import Path

    from facelab import files
    from facelab.evaluation import experiment as evaluate
    _, _, result = evaluated
    outputs = paths.evaluate_outputs(TASK, RECIPE, SEED, tmp_path)
    evaluate.write_outputs(result, outputs)
    old = {key: path.read_bytes() for key, path in outputs.items()}
    flipped = not result.metrics.collapsed
    changed = dataclasses.replace(result, metrics=result.metrics.model_copy(update={"collapsed": flipped}))

    def full_disk(path, data):
        if Path(path).name.startswith(f".{outputs['metrics'].name}."):
            raise OSError(28, "No space left on device", str(path))
        files.write_json(path, data)
    monkeypatch.setattr(evaluate, "write_json", full_disk)
    with pytest.raises(OSError):
        evaluate.write_outputs(changed, outputs)
    assert {key: path.read_bytes() for key, path in outputs.items()} == old
    assert [p for path in outputs.values() for p in path.parent.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    evaluate.write_outputs(changed, outputs)
    assert json.loads(outputs["metrics"].read_text())["collapsed"] is flipped
