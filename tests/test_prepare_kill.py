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

from facelab.params import parse_params
from facelab.data import prepare
from tests.conftest import tiny_raw_params

pytestmark = pytest.mark.e2e  # starts prepare as a process, several times


def raw_params() -> dict:
    raw = tiny_raw_params()
    # enough pixels that decoding and writing each take a moment in which to kill the process
    raw["data"]["face"].update(img_size=96)
    raw["data"]["face"]["generated"].update(n_images=600)
    return raw


def debris(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for folder in ("data", "metrics") if (root / folder).exists()
                  for p in (root / folder).rglob("*.tmp"))


def outputs(root: Path) -> dict[str, bytes]:
    files = [*(root / "data" / "prepared" / "face").iterdir(), root / "metrics" / "face" / "data.json"]
    return {p.name: p.read_bytes() for p in files}


def kill_when(root: Path, seen) -> subprocess.Popen:
    """Start prepare and SIGKILL it the moment `seen(root)` is true (checked every millisecond)."""
    process = subprocess.Popen([sys.executable, "-m", "stages.prepare", "--task", "face"], cwd=root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while process.poll() is None and not seen(root):
        time.sleep(0.001)
    assert process.poll() is None, f"prepare ended before the kill point: {process.stderr.read()[-2000:]}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return process


def decoding(root: Path) -> bool:
    return any(root.glob("data/prepared/.face.*.pixels.tmp"))


def writing(root: Path) -> bool:
    return any(p.is_dir() and any(p.iterdir()) for p in root.glob("data/prepared/.face.*.tmp"))


def finish(root: Path) -> None:
    subprocess.run([sys.executable, "-m", "stages.prepare", "--task", "face"], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clean")
    raw = raw_params()
    prepare.run("face", parse_params(raw).data["face"], raw["seed"], root / "data" / "prepared" / "face",
                root / "metrics" / "face" / "data.json")
    return outputs(root)


@pytest.fixture
def workspace(tmp_path) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params(), sort_keys=False))
    return tmp_path


def test_killed_while_decoding_then_rerun_leaves_no_debris_and_clean_outputs(workspace, clean):
    kill_when(workspace, decoding)
    assert debris(workspace)  # the kill left its scratch file behind: no cleanup ran
    finish(workspace)
    assert debris(workspace) == [] and outputs(workspace) == clean


def test_killed_while_writing_then_rerun_leaves_no_debris_and_clean_outputs(workspace, clean):
    kill_when(workspace, writing)
    assert not (workspace / "data" / "prepared" / "face").exists()  # nothing half-written under the real name
    finish(workspace)
    assert debris(workspace) == [] and outputs(workspace) == clean


def test_killed_while_replacing_an_old_result_keeps_the_old_one_whole(workspace, clean):
    finish(workspace)
    kill_when(workspace, writing)
    assert outputs(workspace) == clean  # the previous result, untouched
    finish(workspace)
    assert debris(workspace) == [] and outputs(workspace) == clean
