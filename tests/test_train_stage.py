"""The train stage as a process: divergence stops it cleanly, a killed run resumes to the same result."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from facelab import paths
from facelab.data import prepare
from facelab.params import parse_params
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e  # starts dvc, torchrun or a training subprocess

TIMING = ("train_seconds", "images_per_second")


def workspace(path, raw):
    """A folder laid out like the repo: params.yaml and prepared emotion data."""
    path.mkdir()
    (path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = parse_params(raw)
    prepare.prepare_task("emotion", params.data["emotion"], params.data_seed, path / "data" / "prepared" / "emotion")
    return path


SEED = 42


def train_process(cwd, recipe="resnet18_scratch"):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "stages.run", "--task", "emotion", "--recipe", recipe,
                             "--seed", str(SEED)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outputs(cwd):
    info = json.loads(paths.model_info("emotion", "resnet18_scratch", SEED, cwd).read_text())
    plots = paths.plots("emotion", "resnet18_scratch", SEED, cwd)
    info["results"] = {k: v for k, v in info["results"].items() if k not in TIMING}
    return (info,
            pd.read_csv(plots / "history.csv"), pd.read_csv(plots / "gradients.csv"))


def test_nan_loss_stops_at_once_naming_epoch_step_and_lr(tiny_raw, tmp_path):
    tiny_raw["models"]["resnet18_scratch"].update(lr=1e6, optimizer="sgd")
    cwd = workspace(tmp_path / "ws", tiny_raw)
    stale = paths.model("emotion", "resnet18_scratch", SEED, cwd)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an old model")
    process = train_process(cwd)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "error: loss became" in err and "at epoch 1, step" in err and "learning rate 1e+06" in err
    assert "Traceback" not in err
    assert not stale.exists() and not paths.history("emotion", "resnet18_scratch", SEED, cwd).exists()
    assert not list((cwd / ".cache").rglob("*.pt"))


def test_killed_run_resumes_to_the_same_metrics(tiny_raw, tmp_path):
    tiny_raw["models"]["resnet18_scratch"]["epochs"] = 3
    tiny_raw["train"]["checkpoint_seconds"] = 0  # tiny epochs: a checkpoint after each one, so epoch 2's is there
    tiny_raw["train"]["augment"].update(rotation=10, erasing=0.5)  # the resumed epochs draw the same augmentation
    tiny_raw["train"].update(ema=0.9, mixup=0.4, cutmix=1.0)  # the same blends, and the average resumes too
    straight = workspace(tmp_path / "straight", tiny_raw)
    assert train_process(straight).wait(timeout=300) == 0

    interrupted = workspace(tmp_path / "interrupted", tiny_raw)
    process = train_process(interrupted)
    for line in process.stdout:
        if "epoch 2/3" in line:
            process.kill()  # like a preempted machine: no clean-up runs
            break
    process.wait(timeout=60)
    assert process.returncode != 0 and not paths.model("emotion", "resnet18_scratch", SEED, interrupted).exists()
    (checkpoint,) = (interrupted / ".cache" / "facelab" / "checkpoints").glob("emotion-resnet18_scratch-*.pt")

    resumed = train_process(interrupted)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming after epoch 2" in out and "epoch 1/3" not in out and "epoch 3/3" in out
    assert not checkpoint.exists()  # removed once the outputs are written
    expected, got = outputs(straight), outputs(interrupted)
    assert got[0] == expected[0]
    pd.testing.assert_frame_equal(got[1], expected[1])
    pd.testing.assert_frame_equal(got[2], expected[2])
