import json
import subprocess
from pathlib import Path

import pytest

from facelab.data import prepare
from facelab.data.batches import load_prepared
from facelab.params import WandbParams
from facelab.training import loop
from facelab.training.tracking import finish_wandb, start_wandb, wandb_summary


def read_wandb(run_dir):
    """The run as W&B wrote it: summary (leet --summary) and history records (leet --json)."""
    summary = subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(run_dir)],
                             capture_output=True, text=True, check=True)
    records = subprocess.run(["wandb", "leet", "inspect", "--json", str(run_dir)],
                             capture_output=True, text=True, check=True)
    parsed = [json.loads(line) for line in records.stdout.splitlines() if line.startswith("{")]
    return json.loads(summary.stdout), parsed


@pytest.mark.e2e  # a real W&B run, read back with wandb's own reader
def test_offline_wandb_run_holds_config_epoch_metrics_and_summary(tiny_raw, tiny_params, tmp_path):
    prepare.prepare_task("emotion", tiny_params.data["emotion"], 0, tmp_path / "emotion")
    splits, classes = load_prepared(tmp_path / "emotion", 0, tiny_params.data["emotion"].split)
    settings = WandbParams(mode="offline", project="facelab-test", entity=None, dir=str(tmp_path))
    run = start_wandb(settings, "emotion", "resnet18_scratch", 0, {**tiny_raw, "git_commit": "abc"})
    result = loop.train_loop("emotion/resnet18_scratch", tiny_params.models["resnet18_scratch"],
                       tiny_params.train, 0, splits, classes, run)
    finish_wandb(run, wandb_summary(result.summary))
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    summary, records = read_wandb(run_dir)
    assert summary["state"] == "finished" and summary["name"] == "emotion/resnet18_scratch/seed0"
    assert summary["project"] == "facelab-test"
    assert summary["config"]["models"]["resnet18_scratch"]["lr"] == tiny_params.models["resnet18_scratch"].lr
    assert summary["config"]["git_commit"] == "abc"
    assert summary["summary"]["best_epoch"] == result.summary["best_epoch"]
    # the logged key holds the last epoch's value; the kept epoch's scores are under best/
    assert summary["summary"]["val/acc"] == pytest.approx(result.history["val/acc"].iloc[-1])
    assert summary["summary"]["best/val/acc"] == pytest.approx(result.summary["val"]["acc"])
    assert summary["summary"]["health/vanishing_gradients"] is False
    assert summary["summary"]["compute/kernels"] == result.summary["compute"]["kernels"]  # where it was computed
    history = [r["history"] for r in records if r["type"] == "history"]
    logged = {k: v for h in history for k, v in h["item"].items()}
    for key in ("gradients/layer1.0.conv1", "gradients/fc", "parameters/layer4.1.bn2", "parameters/conv1"):
        assert logged[f"{key}._type"] == "histogram" and len(logged[f"{key}.values"]) == 64
    # each epoch's row holds its per-layer histograms, the layers gradients.csv has
    epochs = [h["item"] for h in history if "val/loss" in h["item"]]
    layers = set(result.gradients["layer"])
    assert all({f"gradients/{layer}._type" for layer in layers} <= set(item) for item in epochs)
    history = [h for h in history if "val/loss" in h["item"]]
    assert len(history) == 2
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "images_per_second"} <= set(history[0]["item"])
    assert [h["item"]["val/loss"] for h in history] == pytest.approx(result.history["val/loss"].tolist())
    run_record = next(r["run"] for r in records if r["type"] == "run")
    assert run_record["run_group"] == "emotion/resnet18_scratch"  # one group per experiment: its seeds together


def test_disabled_wandb_starts_nothing(tmp_path):
    disabled = WandbParams(mode="disabled", project="p", entity=None, dir=str(tmp_path))
    assert start_wandb(disabled, "t", "r", 0, {}) is None
    assert not (tmp_path / "wandb").exists()


def test_online_without_a_key_falls_back_to_offline_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no stored key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    settings = WandbParams(mode="online", project="p", entity=None, dir=str(tmp_path))
    with pytest.warns(UserWarning, match=r"could not start .*logging offline.*wandb sync") as caught:
        run = start_wandb(settings, "emotion", "resnet18_scratch", 1, {"seed": 1})
    assert len(caught) == 1 and run.settings.mode == "offline"
    finish_wandb(run, {"best_epoch": 1})
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1


def wandb_folders(wandb_dir) -> dict[str, list]:
    """Each W&B run id and its local folders, oldest first: train's, then the one evaluate adds when it reopens the
    run offline (`wandb sync` uploads both into the one run)."""
    runs: dict[str, list] = {}
    for folder in sorted(Path(wandb_dir).glob("offline-run-*")):
        runs.setdefault(folder.name.rsplit("-", 1)[1], []).append(folder)
    return runs


@pytest.mark.e2e  # trains a tiny model and reads its W&B run back with wandb's own reader
def test_evaluate_adds_the_test_results_to_the_training_run_and_train_logs_none(tiny_params, tmp_path):
    import dataclasses

    from facelab import paths
    from facelab.evaluation.experiment import evaluate_experiment
    from facelab.files import read_json

    settings, seed = train_one_epoch(tiny_params, tmp_path, leave_run_open=False)
    card = read_json(paths.model_info("emotion", "resnet18_scratch", seed, tmp_path))
    (trained,) = wandb_folders(tmp_path / "wandb").values()
    assert len(trained) == 1 and card["results"]["wandb"]["folder"] == f"wandb/{trained[0].name}"
    summary, records = read_wandb(trained[0])
    assert not [key for key in summary["summary"] if key.startswith("test/")] and "collapsed" not in summary["summary"]
    result = evaluate_experiment("emotion", "resnet18_scratch", seed, 64, tmp_path, tracking=settings)
    (folders,) = wandb_folders(tmp_path / "wandb").values()
    assert len(folders) == 2 and folders[0] == trained[0]  # the same run id: the training's run, reopened
    summary, records = read_wandb(folders[1])
    assert summary["run_id"] == card["results"]["wandb"]["id"] and summary["state"] == "finished"
    metrics = read_json(paths.evaluate_outputs("emotion", "resnet18_scratch", seed, tmp_path)["metrics"])
    for key in ("acc", "macro_f1", "loss", "ece"):
        assert summary["summary"][f"test/{key}"] == pytest.approx(metrics["test"][key])
    assert summary["summary"]["test/acc_ci"] == pytest.approx(metrics["test"]["acc_ci"])
    assert summary["summary"]["collapsed"] is metrics["collapsed"] is result.metrics.collapsed
    assert summary["summary"]["collapse_reason"] == result.details.collapse.reason
    logged = {k for r in records if r["type"] == "history" for k in r["history"]["item"]}
    assert any(k.startswith("test/confusion_matrix") for k in logged), logged
    assert any(k.startswith("test/classification_report") for k in logged), logged
    disabled = dataclasses.replace(settings, mode="disabled")  # W&B off now: evaluate reopens nothing
    evaluate_experiment("emotion", "resnet18_scratch", seed, 64, tmp_path, tracking=disabled)
    assert len(next(iter(wandb_folders(tmp_path / "wandb").values()))) == 2


@pytest.mark.e2e  # a real W&B run, read back with wandb's own reader
def test_a_run_trained_and_scored_in_one_process_is_one_wandb_folder_with_both_halves(tiny_params, tmp_path):
    """Stage run@...: training leaves its run open and the scoring finds it as W&B's current run (no reopening)."""
    from facelab import paths
    from facelab.evaluation.experiment import evaluate_experiment
    from facelab.files import read_json

    settings, seed = train_one_epoch(tiny_params, tmp_path, leave_run_open=True)
    evaluate_experiment("emotion", "resnet18_scratch", seed, 64, tmp_path, tracking=settings)
    card = read_json(paths.model_info("emotion", "resnet18_scratch", seed, tmp_path))
    ((folder,),) = wandb_folders(tmp_path / "wandb").values()
    summary, _ = read_wandb(folder)
    assert summary["run_id"] == card["results"]["wandb"]["id"] and summary["state"] == "finished"
    assert summary["summary"]["best_epoch"] == 1 and "test/macro_f1" in summary["summary"]


def train_one_epoch(tiny_params, root, leave_run_open: bool) -> tuple[WandbParams, int]:
    """One epoch of emotion/resnet18_scratch trained under root with an offline W&B run; its settings and seed."""
    import dataclasses

    from facelab import paths
    from facelab.training.experiment import train_experiment

    settings = WandbParams(mode="offline", project="facelab-test", entity=None, dir=str(root))
    prepare.prepare_task("emotion", tiny_params.data["emotion"], tiny_params.data_seed, paths.prepared("emotion", root))
    recipe = dataclasses.replace(tiny_params.models["resnet18_scratch"], epochs=1)
    seed = tiny_params.seeds[0]
    train_experiment("emotion", "resnet18_scratch", recipe, tiny_params.train, settings, seed,
                     tiny_params.data["emotion"].split, root=root, leave_run_open=leave_run_open)
    return settings, seed
