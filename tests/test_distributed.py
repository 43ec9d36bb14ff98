"""torchrun with 2 CPU processes (gloo): trains, writes each output once, matches the single-process run."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from facelab import paths
from tests.conftest import ROOT
from tests.test_train_stage import SEED, workspace

pytestmark = pytest.mark.e2e  # starts dvc, torchrun or a training subprocess


def train_command(cwd, recipe, processes, env):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node",
                 str(processes), "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0"]
                if processes > 1 else [sys.executable])
    stage = ["-m", "stages.run", "--task", "emotion", "--recipe", recipe, "--seed", str(SEED)]
    return subprocess.run(launcher + stage,
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("recipe", ["vgg16_finetune"])
def test_two_process_ddp_matches_single_process(tiny_raw, tmp_path, torch_home, recipe):
    # no per-rank randomness; random frozen features: what is tested is DDP, not the 528 MB file each process reads
    tiny_raw["models"][recipe].update(dropout=0.0, epochs=2, batch_size=16, weights="none")
    tiny_raw["wandb"].update(mode="offline", dir=".")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(torch_home), "OMP_NUM_THREADS": "1"}
    results = {}
    for processes in (1, 2):
        cwd = workspace(tmp_path / f"p{processes}", tiny_raw)
        done = train_command(cwd, recipe, processes, env)
        assert done.returncode == 0, done.stderr[-3000:]
        epoch_lines = [line for line in done.stdout.splitlines()
                       if line.startswith(f"[emotion/{recipe}/seed{SEED}] epoch")]
        assert len(epoch_lines) == 2  # printed by rank 0 only
        # one W&B run, from rank 0 (one process also scores it, reopening the run by its id: a second folder)
        assert len({folder.name.rsplit("-", 1)[1] for folder in (cwd / "wandb").glob("offline-run-*")}) == 1
        info = json.loads(paths.model_info("emotion", recipe, SEED, cwd).read_text())
        history = pd.read_csv(paths.history("emotion", recipe, SEED, cwd))
        results[processes] = info, history
    single, ddp = results[1], results[2]
    # the two ranks together see each global batch a single process sees: only float order differs
    pd.testing.assert_frame_equal(ddp[1], single[1], rtol=2e-3)
    assert ddp[0]["results"]["val"]["loss"] == pytest.approx(single[0]["results"]["val"]["loss"], rel=2e-3)
    assert ddp[0]["results"]["best_epoch"] == single[0]["results"]["best_epoch"]
