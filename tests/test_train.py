import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.models import ResNet

from facelab import paths
from facelab.data import prepare
from facelab.data.augment import beyond_flip
from facelab.data.batches import data_split, load_prepared
from facelab.errors import TrainingDiverged
from facelab.evaluation.experiment import evaluate_model
from facelab.modelcard import WeightsProvenance
from facelab.modelfile import load_trained
from facelab.models import build_model, trained_model, weights_provenance
from facelab.params import AUGMENT_OFF, parse_params
from facelab.training import experiment as train
from facelab.training import loop, optim
from tests.conftest import tiny_raw_params, torch_state


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The tiny emotion data, at 45 images (31 to train on: two batches an epoch), prepared once for the module (no
    test changes it: trainings only read it)."""
    raw = tiny_raw_params()
    raw["data"]["emotion"]["generated"]["n_images"] = 45
    params = parse_params(raw)
    folder = tmp_path_factory.mktemp("prepared") / "emotion"
    prepare.prepare_task("emotion", params.data["emotion"], params.data_seed, folder)
    return load_prepared(folder, params.seeds[0], params.data["emotion"].split)


@pytest.fixture(scope="module")
def one_epoch(prepared):
    """The training several tests start from, done once for the module: resnet18_scratch for 1 epoch at the first
    seed with the tiny params' train settings (the tests read it and never change it)."""
    params = parse_params(tiny_raw_params())
    splits, classes = prepared
    recipe = dataclasses.replace(params.models["resnet18_scratch"], epochs=1)
    with torch_state():
        return loop.train_loop("e/r", recipe, params.train, params.seeds[0], splits, classes)


@pytest.mark.parametrize("select_by", ["val_loss", "val_macro_f1"])
def test_train_logs_each_epoch_and_keeps_the_best_epochs_weights(tiny_params, prepared, capsys, select_by):
    splits, classes = prepared
    settings = dataclasses.replace(tiny_params.train, select_by=select_by)
    result = loop.train_loop("emotion/resnet18_scratch", tiny_params.models["resnet18_scratch"],
                       settings, tiny_params.seeds[0], splits, classes)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[emotion/resnet18_scratch]")]
    assert len(lines) == 2
    assert lines[1].startswith("[emotion/resnet18_scratch] epoch 2/2  train loss ")
    assert list(result.history.columns) == ["epoch", "train/loss", "train/acc", "val/loss", "val/acc",
                                            "val/macro_f1", "lr"]
    history = result.history
    if select_by == "val_loss":
        best = int(history["val/loss"].idxmin()) + 1
    else:  # highest macro F1, ties to the lower val loss
        best = int(history.sort_values(["val/macro_f1", "val/loss"], ascending=[False, True]).index[0]) + 1
    assert result.summary["best_epoch"] == best
    assert result.summary["val"]["loss"] == pytest.approx(history["val/loss"][best - 1], rel=1e-5)
    assert result.summary["val"]["macro_f1"] == pytest.approx(history["val/macro_f1"][best - 1], rel=1e-5)
    assert result.summary["images_per_second"] > 0 and result.summary["epochs"] == 2
    health = result.summary["health"]
    assert health["frozen_layers"] == [] and not health["vanishing_gradients"]
    assert health["min_grad_norm"] == pytest.approx(result.gradients["norm"].min())
    assert set(result.gradients["epoch"]) == {1, 2} and "layer4.1.conv2" in set(result.gradients["layer"])


def test_cosine_schedule_follows_the_formula_epoch_by_epoch(tiny_raw, prepared):
    """lr of epoch e (logged before that epoch's scheduler step) = lr0 * (1 + cos(pi * (e - 1) / E)) / 2."""
    import math

    tiny_raw["models"]["resnet18_scratch"].update(epochs=3, schedule="cosine", lr=0.01)
    params = parse_params(tiny_raw)
    splits, classes = prepared
    result = loop.train_loop("e/r", params.models["resnet18_scratch"], params.train, 0, splits, classes)
    expected = [0.01 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert result.history["lr"].tolist() == pytest.approx(expected, rel=1e-6)
    assert expected[1] < expected[0] and expected[2] == pytest.approx(0.0025)  # fails on a constant lr


def test_history_csv_is_rewritten_after_every_epoch(tiny_params, prepared, tmp_path, monkeypatch):
    splits, classes = prepared
    written = []
    real_write = loop.write_csv

    def write_and_count(path, frame) -> None:
        written.append(len(frame))
        real_write(path, frame)

    monkeypatch.setattr(loop, "write_csv", write_and_count)
    result = loop.train_loop("e/r", tiny_params.models["resnet18_scratch"], tiny_params.train, 0, splits, classes,
                      history=tmp_path / "history.csv")
    assert written == [1, 2]
    on_disk = pd.read_csv(tmp_path / "history.csv")
    assert list(on_disk.columns) == list(result.history.columns)
    np.testing.assert_allclose(on_disk.values, result.history.values, rtol=1e-5)  # written with 6 significant digits


@pytest.mark.parametrize(("every", "saved"), [(0, [1]), (3600, [])])
def test_resume_checkpoints_follow_checkpoint_seconds(tiny_raw, prepared, tmp_path, monkeypatch, every, saved):
    """0: a checkpoint after every epoch but the last (of 2); an hour: none in a run shorter than that."""
    tiny_raw["models"]["resnet18_scratch"]["epochs"] = 2
    tiny_raw["train"]["checkpoint_seconds"] = every
    params = parse_params(tiny_raw)
    splits, classes = prepared
    epochs = []
    real_save = loop.save_checkpoint

    def save_and_count(path, epoch, *rest) -> None:
        epochs.append(epoch)
        real_save(path, epoch, *rest)

    monkeypatch.setattr(loop, "save_checkpoint", save_and_count)
    loop.train_loop("e/r", params.models["resnet18_scratch"], params.train, 0, splits, classes,
                    checkpoint=tmp_path / "resume.pt")
    assert epochs == saved
    assert (tmp_path / "resume.pt").exists() == bool(saved)


def test_step_schedule_and_early_stopping(tiny_raw, prepared):
    tiny_raw["models"]["resnet18_scratch"].update(epochs=8, schedule="step", step_size=1, gamma=0.5)
    tiny_raw["train"]["patience"] = 1
    params = parse_params(tiny_raw)
    splits, classes = prepared
    result = loop.train_loop("e/r", params.models["resnet18_scratch"], params.train, 0, splits, classes)
    epochs = result.summary["epochs"]
    assert len(result.history) == epochs
    assert epochs == min(8, result.summary["best_epoch"] + 1)  # stops 1 epoch after the best
    assert epochs < 8  # on 13 val images the val loss does not improve 8 times in a row
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = optim.make_scheduler(optimizer, params.models["resnet18_scratch"])
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == [0.125]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_optimizer_follows_the_default_implementations_updates(tiny_params, name):
    """facelab's optimizers run PyTorch's fused kernel; the update rule is the one users get by default."""
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], optimizer=name)
    weights = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Linear(20, 3)
        initial = model.weight.detach().clone()
        optimizer = optim.make_optimizer(model, recipe, fused=fused)
        assert optimizer.defaults["fused"] is (True if fused else None)
        for step in range(5):
            optimizer.zero_grad()
            model(torch.randn(8, 20, generator=torch.Generator().manual_seed(step))).square().sum().backward()
            optimizer.step()
        weights.append(model.weight.detach().clone())
    assert (weights[0] != initial).all()  # every weight moved
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lag", [0, 1])
def test_divergence_check_names_the_first_bad_step_at_once_or_one_step_late(lag):
    """lag 1 is the GPU's setting (each verdict read one step later, without stalling the queue)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    check = loop.DivergenceCheck(epoch=3, optimizer=optimizer, lag=lag)
    for step in (1, 2):
        check.add(step, torch.tensor(0.7))
    message = r"loss became inf at epoch 3, step 3 with learning rate 0.5;"
    if lag:  # step 3's verdict is read when step 4 is queued
        check.add(3, torch.tensor(float("inf")))
        with pytest.raises(TrainingDiverged, match=message):
            check.add(4, torch.tensor(float("nan")))
    else:
        with pytest.raises(TrainingDiverged, match=message):
            check.add(3, torch.tensor(float("inf")))
    last = loop.DivergenceCheck(epoch=1, optimizer=optimizer, lag=lag)
    last.add(1, torch.tensor(0.7))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, step 2 "):
        last.add(2, torch.tensor(float("nan")))
        last.finish()  # the epoch's last step is checked before the epoch ends


@pytest.mark.e2e  # builds VGG16 from its 528 MB (stand-in) ImageNet file and trains it twice
def test_frozen_vgg_features_are_cached_without_changing_results(tiny_params, prepared, torch_home):
    """Training the head on cached trunk outputs equals training the whole model end to end."""
    splits, classes = prepared
    flip_only = dataclasses.replace(AUGMENT_OFF, hflip=True)
    recipe = dataclasses.replace(tiny_params.models["vgg16_finetune"], augment=flip_only)
    cached = loop.train_loop("e/v", recipe, tiny_params.train, 0, splits, classes)
    original = loop.frozen_trunk
    try:
        loop.frozen_trunk = lambda model, recipe: (None, model)  # no cache: recompute every batch
        uncached = loop.train_loop("e/v", recipe, tiny_params.train, 0, splits, classes)
    finally:
        loop.frozen_trunk = original
    np.testing.assert_allclose(cached.history.values, uncached.history.values, rtol=1e-4)
    assert cached.summary["health"]["frozen_layers"][:2] == ["features.0", "features.10"]
    frozen_rows = cached.gradients[cached.gradients["frozen"]]
    assert len(frozen_rows) == 13 * 2 and frozen_rows["norm"].isna().all()  # frozen, not vanishing
    assert not cached.summary["health"]["vanishing_gradients"]


def test_evaluate_scores_test_split_with_the_saved_model(tiny_params, prepared, one_epoch, tmp_path):
    splits, classes = prepared
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], epochs=1)
    result = one_epoch
    settings = train.model_settings("emotion", "resnet18_scratch", recipe, tiny_params.train, tiny_params.seeds[0],
                                    data_split(splits, tiny_params.data["emotion"].split, classes), classes,
                                    {"img_size": 32, "faces": "none", "min_side": 32},
                                    WeightsProvenance(**weights_provenance(recipe)))
    calibration = train.fit_calibration(trained_model(recipe, len(classes), result.state_dict), splits["val"],
                                        tiny_params.train)
    train.save_outputs(result, settings, calibration,
                       paths.train_outputs("emotion", "resnet18_scratch", tiny_params.seeds[0], tmp_path))
    model_path = paths.model("emotion", "resnet18_scratch", tiny_params.seeds[0], tmp_path)
    info = json.loads(model_path.with_suffix(".json").read_text())
    names = [f"test/{i:03d}.png" for i in range(len(splits["test"].labels))]
    out = evaluate_model(load_trained("emotion", "resnet18_scratch", root=tmp_path), splits["test"], 64, names)
    metrics, details = out.metrics.model_dump(), out.details.to_json()
    # only what a reviewer compares; a scratch model has no starting weights to verify
    assert list(metrics) == ["test", "val", "train", "best_epoch", "train_seconds", "collapsed",
                             "weights_verified", "vanishing_gradients", "exploding_gradients"]
    assert metrics["weights_verified"] is None
    # where the weights were computed: torch's kernel set here, the threads trained with, as the card records
    assert details["compute"] == info["results"]["compute"]
    assert details["compute"]["kernels"] == torch.backends.cpu.get_cpu_capability()
    assert details["compute"]["device"] == "cpu" and details["compute"]["threads"] == tiny_params.train.threads
    assert details["compute"]["torch"] == torch.__version__ and details["compute"]["processor"]
    assert details["health"] == info["results"]["health"] and details["health"]["frozen_layers"] == []
    assert metrics["vanishing_gradients"] is info["results"]["health"]["vanishing_gradients"]
    assert list(metrics["test"]) == ["acc", "acc_ci", "macro_f1", "macro_f1_ci", "loss", "ece", "ece_ci"]
    calibrated = details["calibration"]
    assert calibrated["temperature"] == info["results"]["temperature"] > 0
    assert metrics["test"]["ece"] == calibrated["test"]["after"]["ece"]  # the probabilities users get
    assert metrics["test"]["ece_ci"][0] <= metrics["test"]["ece"] <= metrics["test"]["ece_ci"][1]
    assert calibrated["val"] == {"before": info["results"]["val_ece"]["before"],
                                 "after": info["results"]["val_ece"]["after"]}
    assert metrics["test"]["acc_ci"][0] <= metrics["test"]["acc"] <= metrics["test"]["acc_ci"][1]
    assert details["epochs"] == 1 and details["test_images"] == len(splits["test"].labels)
    assert details["collapse"]["collapsed"] is metrics["collapsed"]
    predictions = out.predictions
    assert list(predictions.columns) == ["actual", "predicted"] and len(predictions) == len(splits["test"].labels)
    assert metrics["test"]["acc"] == pytest.approx((predictions.actual == predictions.predicted).mean())
    raw = np.array(out.confusion.raw)
    assert raw.sum() == len(predictions) and np.trace(raw) == (predictions.actual == predictions.predicted).sum()
    assert out.confusion.classes == ["angry", "happy", "sad"]
    assert out.classes["happy"]["support"] == (predictions.actual == "happy").sum()


def test_two_same_seed_trainings_give_identical_metrics_and_byte_identical_model_files(tiny_params, prepared,
                                                                                      one_epoch, tmp_path):
    """Same data, params and seed: the same history, weights and summary (augmentation on). And torch.save into a
    file records that (temporary, random) file's name in the archive; the model file is written from memory, so
    identical weights give an identical file and DVC reruns nothing after it. The first training is the module's
    (one_epoch, trained before this test and others in this process), the second this test's own."""
    import hashlib
    splits, classes = prepared
    assert beyond_flip(tiny_params.train.augment)  # with the default augmentation on: crops, jitter, erasing
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], epochs=1)
    settings = train.model_settings("emotion", "resnet18_scratch", recipe, tiny_params.train, tiny_params.seeds[0],
                                    data_split(splits, tiny_params.data["emotion"].split, classes), classes,
                                    {"img_size": 32, "faces": "none", "min_side": 32},
                                    WeightsProvenance(**weights_provenance(recipe)))
    digests: list[str] = []
    runs: list[loop.TrainResult] = []
    for root in (tmp_path / "a", tmp_path / "b"):
        result = one_epoch if not runs else loop.train_loop("e/r", recipe, tiny_params.train, tiny_params.seeds[0],
                                                            splits, classes)
        runs.append(result)
        calibration = train.fit_calibration(trained_model(recipe, len(classes), result.state_dict), splits["val"],
                                            tiny_params.train)
        train.save_outputs(result, settings, calibration,
                           paths.train_outputs("emotion", "resnet18_scratch", tiny_params.seeds[0], root))
        digests.append(hashlib.sha256(paths.model("emotion", "resnet18_scratch", tiny_params.seeds[0], root)
                                      .read_bytes()).hexdigest())
    assert runs[0].history.equals(runs[1].history)
    assert all(torch.equal(runs[0].state_dict[k], runs[1].state_dict[k]) for k in runs[0].state_dict)
    assert runs[0].gradients.equals(runs[1].gradients) and runs[0].summary == {
        **runs[1].summary, "train_seconds": runs[0].summary["train_seconds"],
        "images_per_second": runs[0].summary["images_per_second"]}
    assert digests[0] == digests[1]
    card = json.loads(paths.model_info("emotion", "resnet18_scratch", tiny_params.seeds[0], tmp_path / "a").read_text())
    assert set(card) == {"format", "settings", "results"}
    assert card["settings"]["train"]["select_by"] == tiny_params.train.select_by  # settings, never shadowed by scores
    assert set(card["results"]["train"]) == {"loss", "acc", "macro_f1"}


def test_training_never_reads_the_test_split():
    """Train trains, evaluate evaluates: no module of facelab/training names the test split (a "test" key, the
    splits' names from facelab.names) or imports evaluate's test-set work (collapse, the per-class report, the
    evaluate stage itself), so the test images never go through a forward pass during training."""
    import ast

    from tests.conftest import ROOT

    evaluate_only = {"collapse", "class_report", "evaluate_model", "evaluate_experiment", "log_evaluation", "SPLITS"}
    found = []
    for path in sorted((ROOT / "facelab" / "training").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == "test":
                found.append(f"{path.name}:{node.lineno}: the string 'test'")
            elif isinstance(node, ast.ImportFrom):
                found += [f"{path.name}:{node.lineno}: imports {alias.name}" for alias in node.names
                          if alias.name in evaluate_only or (node.module or "").endswith("evaluation.experiment")]
    assert found == []


def test_ema_keeps_the_weights_average_which_tends_to_the_weights_as_the_decay_goes_to_zero(tiny_params, prepared,
                                                                                           one_epoch):
    splits, classes = prepared
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], epochs=1)

    def run(ema: float):
        return loop.train_loop("emotion/resnet18_scratch", recipe, dataclasses.replace(tiny_params.train, ema=ema),
                               tiny_params.seeds[0], splits, classes)

    assert tiny_params.train.ema == 0.0  # one_epoch is the run without an average
    plain, nearly, averaged = one_epoch, run(1e-9), run(0.9)
    pd.testing.assert_frame_equal(nearly.history, plain.history, rtol=1e-4)  # an average of the last step alone
    assert not np.allclose(averaged.history["val/loss"], plain.history["val/loss"], rtol=1e-3)
    # the kept weights are the average's: loaded into the model, they score what the summary says
    assert averaged.history["train/loss"].equals(plain.history["train/loss"])  # the training itself is the same
    model = trained_model(recipe, len(classes), averaged.state_dict)
    assert not torch.equal(averaged.state_dict["fc.weight"], plain.state_dict["fc.weight"])
    bn1 = model.bn1
    assert isinstance(bn1, torch.nn.BatchNorm2d) and bn1.running_mean is not None
    assert bn1.running_mean.abs().sum() > 0  # BatchNorm's statistics are averaged too, not left at zero


def test_mixup_and_cutmix_blend_the_batches_reproducibly(tiny_params, prepared, one_epoch):
    splits, classes = prepared
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], epochs=1)

    def run(**levers):
        return loop.train_loop("emotion/resnet18_scratch", recipe, dataclasses.replace(tiny_params.train, **levers),
                               tiny_params.seeds[0], splits, classes).history

    assert tiny_params.train.mixup == 0.0 and tiny_params.train.cutmix == 0.0  # one_epoch is the run without them
    plain, mixed = one_epoch.history, run(mixup=0.4, cutmix=1.0)
    assert not np.allclose(mixed["train/loss"], plain["train/loss"], rtol=1e-3)
    pd.testing.assert_frame_equal(run(mixup=0.4, cutmix=1.0), mixed)


def test_small_stem_keeps_a_small_image_whole_into_layer1_and_reloads(tiny_params):
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], stem="small")
    model = build_model(recipe, 3).eval()
    assert isinstance(model, ResNet)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    seen: dict[str, tuple[int, ...]] = {}
    model.layer1.register_forward_hook(lambda module, inputs, output: seen.update(grid=tuple(output.shape[-2:])))
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, 64, 64))
    assert seen["grid"] == (64, 64) and logits.shape == (2, 3)
    reloaded = trained_model(recipe, 3, model.state_dict()).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(torch.ones(1, 3, 64, 64)), model(torch.ones(1, 3, 64, 64)))
    plain = build_model(tiny_params.models["resnet18_scratch"], 3)
    assert isinstance(plain, ResNet)
    assert plain.conv1.kernel_size == (7, 7) and isinstance(plain.maxpool, torch.nn.MaxPool2d)
