"""prepare killed with SIGKILL (no cleanup runs) while decoding, while writing, and while replacing an old result:
the next run leaves no temporary files and writes what a clean run writes; a kill never loses the old output."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from facelab.data import prepare
from facelab.params import parse_params
from tests.conftest import ROOT, tiny_raw_params

pytestmark = pytest.mark.e2e  # starts prepare as a process, several times


def raw_params() -> dict:
    return tiny_raw_params()


def debris(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for folder in ("data", "metrics") if (root / folder).exists()
                  for p in (root / folder).rglob("*.tmp"))


def outputs(root: Path) -> dict[str, bytes]:
    files = [*(root / "data" / "prepared" / "face").iterdir(), root / "metrics" / "face" / "data.json"]
    return {p.name: p.read_bytes() for p in files}


# The child SIGKILLs itself on entering one library function: an exact kill point, no polling race.
KILLER = """
import os, runpy, signal, sys
import facelab.data.prepare as prepare
setattr(prepare, sys.argv[1], lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL))
sys.argv = ["stages.prepare", "--task", "face"]
runpy.run_module("stages.prepare", run_name="__main__")
"""
DECODING = "check_bad_fraction"  # every image decoded into the scratch file, nothing split or written yet
WRITING = "write_csv"  # the arrays written into the new folder's temporary name, the manifest not yet


THIS_CHECKOUT = {**os.environ, "PYTHONPATH": str(ROOT)}  # the workspace holds no code: import this checkout's


def kill_at(root: Path, function: str) -> subprocess.CompletedProcess[str]:
    """Run prepare and SIGKILL it when it calls `function` (a name in facelab.data.prepare)."""
    process = subprocess.run([sys.executable, "-c", KILLER, function], cwd=root, capture_output=True, text=True,
                             env=THIS_CHECKOUT)
    assert process.returncode == -signal.SIGKILL, f"prepare was not killed at {function}: {process.stderr[-2000:]}"
    return process


def finish(root: Path) -> None:
    subprocess.run([sys.executable, "-m", "stages.prepare", "--task", "face"], cwd=root, check=True, env=THIS_CHECKOUT,
                   capture_output=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clean")
    raw = raw_params()
    prepare.prepare_task("face", parse_params(raw).data["face"], raw["data_seed"], root / "data" / "prepared" / "face",
                root / "metrics" / "face" / "data.json")
    return outputs(root)


@pytest.fixture
def workspace(tmp_path) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params(), sort_keys=False))
    return tmp_path


def test_killed_while_decoding_then_rerun_leaves_no_debris_and_clean_outputs(workspace, clean):
    kill_at(workspace, DECODING)
    assert debris(workspace)  # the kill left its scratch file behind: no cleanup ran
    finish(workspace)
    assert debris(workspace) == [] and outputs(workspace) == clean


def test_killed_while_writing_then_rerun_leaves_no_debris_and_clean_outputs(workspace, clean):
    kill_at(workspace, WRITING)
    assert not (workspace / "data" / "prepared" / "face").exists()  # nothing half-written under the real name
    assert any(p.is_dir() and any(p.iterdir()) for p in workspace.glob("data/prepared/.face.*.tmp"))
    finish(workspace)
    assert debris(workspace) == [] and outputs(workspace) == clean


def test_killed_while_replacing_an_old_result_keeps_the_old_one_whole(workspace, clean):
    finish(workspace)
    kill_at(workspace, WRITING)
    assert outputs(workspace) == clean  # the previous result, untouched
    finish(workspace)
    assert debris(workspace) == [] and outputs(workspace) == clean


# Stops itself at the point instead, and goes on when continued: a writer still alive.
PAUSER = """
import os, runpy, signal, sys
import facelab.data.prepare as prepare
real = getattr(prepare, sys.argv[1])
setattr(prepare, sys.argv[1], lambda *args, **kwargs: (os.kill(os.getpid(), signal.SIGSTOP), real(*args, **kwargs))[1])
sys.argv = ["stages.prepare", "--task", "face"]
runpy.run_module("stages.prepare", run_name="__main__")
"""


def test_a_running_prepares_scratch_file_is_not_debris_to_the_next_run(workspace, clean):
    """`kill -9` of dvc alone leaves its prepare running: a new repro's prepare must not delete that process's
    scratch file as debris; both then finish with clean outputs."""
    paused = subprocess.Popen([sys.executable, "-c", PAUSER, DECODING], cwd=workspace, env=THIS_CHECKOUT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # until it has stopped itself, its scratch file written
            state = Path(f"/proc/{paused.pid}/stat").read_text().split(")")[-1].split()[0]
            if state == "T":
                break
            assert paused.poll() is None, paused.communicate()[1][-2000:]
            time.sleep(0.1)
        theirs = debris(workspace)
        assert theirs  # the paused writer's scratch file
        finish(workspace)
        assert debris(workspace) == theirs and outputs(workspace) == clean  # spared, and this run is clean
    finally:
        os.kill(paused.pid, signal.SIGCONT)
        _, stderr = paused.communicate(timeout=120)
    assert paused.returncode == 0, stderr[-2000:]
    assert debris(workspace) == [] and outputs(workspace) == clean
