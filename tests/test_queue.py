"""End to end: a grid queued with `dvc exp run --queue -S`, run by `dvc queue start -j 2`, listed by `dvc exp show`."""
import json
import os
import subprocess
import time
from datetime import datetime

import pytest

from facelab import paths
from tests.conftest import copy_repo, sh, tiny_raw_params
from tests.test_pipeline import stages_run
from tests.test_tracking import read_wandb, wandb_folders

pytestmark = pytest.mark.e2e  # starts dvc, torchrun or a training subprocess

GRID = {"lr-high": 0.01, "lr-low": 0.0001}  # experiment name: models.resnet18_scratch.lr
SEED = tiny_raw_params()["seeds"][0]
TARGET = f"run@face-resnet18_scratch-{SEED}"  # one cell of the matrix keeps the test near a minute
METRICS = paths.metrics("face", "resnet18_scratch", SEED).as_posix()


def queue_status(path, env) -> dict[str, str]:
    """Experiment name -> Queued | Running | Success | Failed, from `dvc queue status`."""
    rows = [line.split() for line in sh("dvc", "queue", "status", cwd=path, env=env).stdout.splitlines()]
    return {row[1]: row[-1] for row in rows if len(row) >= 4 and row[1] in GRID}


def run_queue(path, env, timeout: float = 150) -> dict[str, str]:
    """Start two workers and wait for the grid; the final statuses."""
    # not through pipes: the detached workers inherit them, and reading to EOF would wait for the workers
    subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=path, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            status = queue_status(path, env)
            if len(status) == len(GRID) and not {"Queued", "Running"} & set(status.values()):
                return status
            time.sleep(2)
    finally:
        sh("dvc", "queue", "stop", "--kill", cwd=path, env=env, check=False)
    logs = {name: sh("dvc", "queue", "logs", name, cwd=path, env=env, check=False).stdout[-2000:] for name in GRID}
    raise AssertionError(f"queue not done after {timeout} s: {status}\n{logs}")


@pytest.fixture(scope="module")
def queued(tmp_path_factory, built_repo):
    """A copy of the shared built repo with the grid queued and run; W&B offline in the queued experiments only,
    to check that parallel workers' runs land in the repository."""
    path = copy_repo(built_repo[0], tmp_path_factory.mktemp("queue") / "repo")
    env = {**os.environ, "WANDB_SILENT": "true"}
    for name, lr in GRID.items():
        sh("dvc", "exp", "run", "--queue", "-n", name, "-S", f"models.resnet18_scratch.lr={lr}",
           "-S", "wandb.mode=offline", TARGET, cwd=path, env=env)
    return path, env, run_queue(path, env)


def training_interval(run_dir) -> tuple[float, float]:
    """When a training ran, from its own W&B record: start time and start + runtime, in epoch seconds."""
    summary, _ = read_wandb(run_dir)
    start = datetime.fromisoformat(summary["start_time"].replace("Z", "+00:00")).timestamp()
    return start, start + summary["summary"]["_runtime"]


def test_two_workers_run_the_grid_at_once_and_rerun_only_the_changed_stages(queued):
    path, env, status = queued
    assert status == dict.fromkeys(GRID, "Success")
    intervals = {read_wandb(folders[0])[0]["config"]["dvc_exp_name"]: training_interval(folders[0])
                 for folders in wandb_folders(path / "wandb").values()}  # one folder per run
    (start_a, end_a), (start_b, end_b) = (intervals[name] for name in GRID)
    assert max(start_a, start_b) < min(end_a, end_b), intervals  # the two trainings overlapped in time
    for name in GRID:
        log = sh("dvc", "queue", "logs", name, cwd=path, env=env).stdout
        assert stages_run(log) == {"scan@face", TARGET}  # scan always runs
        assert "Stage 'prepare@face' didn't change, skipping" in log  # restored from the shared cache


def test_exp_show_lists_every_experiment_with_its_params_and_metrics(queued):
    path, env, _ = queued
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=path, env=env).stdout)
    baseline = next(row for row in shown if row["name"] == "main")
    experiments = {exp["name"]: exp["revs"][0]["data"] for exp in baseline["experiments"]}
    assert set(experiments) == set(GRID)
    tests = {}
    for name, data in experiments.items():
        params = data["params"]["params.yaml"]["data"]
        assert params["models"]["resnet18_scratch"]["lr"] == GRID[name]
        assert params["models"]["vgg16_finetune"]["lr"] == 0.0001  # the rest of the grid point is the baseline's
        tests[name] = data["metrics"][METRICS]["data"]["test"]
        assert set(tests[name]) == {"acc", "loss", "macro_f1", "ece"}
    base = baseline["data"]["metrics"][METRICS]["data"]["test"]
    assert tests["lr-high"]["loss"] != tests["lr-low"]["loss"] != base["loss"] != tests["lr-high"]["loss"]


def test_parallel_workers_write_their_own_wandb_runs_into_the_repository(queued):
    """Queue workspaces are deleted after the run; W&B goes to DVC_ROOT/wandb/, one folder per run."""
    path, _, _ = queued
    runs = wandb_folders(path / "wandb")
    assert [len(folders) for folders in runs.values()] == [1, 1]  # trained and scored in one process, one run open
    configs = {}
    for (folder,) in runs.values():
        record = read_wandb(folder)[0]
        configs[record["config"]["dvc_exp_name"]] = record["config"]
        # the scoring adds the test scores and collapse flags to the training's run, as it writes them in the metrics
        summary = record["summary"]
        assert isinstance(summary["collapsed"], bool) and 0 <= summary["test/acc"] <= 1
    assert set(configs) == set(GRID)  # one run per experiment
    for name, lr in GRID.items():
        assert configs[name]["recipe"]["lr"] == lr
