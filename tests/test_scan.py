"""DVC sees the source data: after the scan stage lists a photo folder, `dvc status` reports prepare stale when a
file was added or deleted, and up to date when nothing changed; an unchanged folder never reruns prepare."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import yaml
from PIL import Image

from facelab.data.scan import fingerprint
from facelab.params import parse_params
from tests.conftest import make_repo, sh, stale_stages, tiny_raw_params
from tests.test_pipeline import stages_run


def noise_png(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)


def photo_folder(root, classes=("other", "target"), per_class=8):
    for k, name in enumerate(classes):
        for i in range(per_class):
            noise_png(root / name / f"{i:02d}.png", 100 * k + i)
    return root


def fer_release(root):
    """The image-folder release of FER2013: train/<label>/ and test/<label>/."""
    for part, count in (("train", 8), ("test", 4)):
        for k, label in enumerate(("angry", "happy", "sad")):
            for i in range(count):
                noise_png(root / part / label / f"{i:02d}.png", 1000 * k + 10 * i + (part == "test"))
    return root


def test_fingerprint_lists_every_file_with_size_and_mtime_and_nothing_for_generated(tmp_path, tiny_raw):
    root = photo_folder(tmp_path / "photos", per_class=2)
    tiny_raw["data"]["face"].update(source="folder", path=str(root))
    found = fingerprint("face", parse_params(tiny_raw).data["face"])
    assert [row[0] for row in found["files"]] == ["other/00.png", "other/01.png", "target/00.png", "target/01.png"]
    assert all(isinstance(row[1], int) and row[1] > 0 for row in found["files"])
    assert fingerprint("emotion", parse_params(tiny_raw).data["emotion"]) == {"source": "generated", "path": None,
                                                                              "files": []}


def test_the_fer2013_releases_fingerprint_changes_with_a_photo_added_to_test_or_deleted_from_train(tmp_path, tiny_raw):
    """The release's two parts (train/, test/) are both in the fingerprint; the e2e test below shows, on a class
    folder, that dvc reruns prepare exactly when the fingerprint changes (the same scan stage for every source)."""
    root = fer_release(tmp_path / "fer")
    tiny_raw["data"]["emotion"].update(source="fer2013", path=str(root))

    def scan() -> dict:
        return fingerprint("emotion", parse_params(tiny_raw).data["emotion"])

    first = scan()
    assert len(first["files"]) == 36 and {row[0].split("/")[0] for row in first["files"]} == {"train", "test"}
    assert scan() == first  # untouched: the same fingerprint, so prepare stays up to date
    noise_png(root / "test" / "sad" / "new.png", 4242)
    added = scan()
    assert [row[0] for row in added["files"]] == sorted([row[0] for row in first["files"]] + ["test/sad/new.png"])
    (root / "train" / "angry" / "00.png").unlink()
    assert "train/angry/00.png" not in [row[0] for row in scan()["files"]]


@pytest.mark.e2e
def test_dvc_status_sees_added_and_deleted_photos_and_an_untouched_folder_reruns_nothing(tmp_path):
    raw = tiny_raw_params()
    task, data_root = "face", photo_folder(tmp_path / "photos")
    raw["data"]["face"].update(source="folder", path=str(data_root), split={"train": 0.5, "val": 0.25, "test": 0.25})
    added, deleted = data_root / "target" / "new.png", data_root / "other" / "00.png"
    repo = make_repo(tmp_path / "repo", raw)
    first = sh("dvc", "repro", f"prepare@{task}", cwd=repo).stdout
    assert stages_run(first) == {f"scan@{task}", f"prepare@{task}"}

    def status_after_scan() -> dict:
        sh("dvc", "repro", "--single-item", f"scan@{task}", cwd=repo)
        return stale_stages(repo, None, f"prepare@{task}")

    assert status_after_scan() == {}  # touched nothing: prepare stays up to date
    assert stages_run(sh("dvc", "repro", f"prepare@{task}", cwd=repo).stdout) == {f"scan@{task}"}
    noise_png(added, 4242)
    assert f"prepare@{task}" in status_after_scan()  # a photo added
    sh("dvc", "repro", f"prepare@{task}", cwd=repo)
    assert status_after_scan() == {}
    deleted.unlink()
    stale = status_after_scan()
    assert list(stale) == [f"prepare@{task}"]  # a photo deleted
    assert stale[f"prepare@{task}"] == [{"changed deps": {f"data/sources/{task}.json": "modified"}}]


@pytest.mark.e2e
def test_dvc_repro_reruns_prepare_exactly_when_a_file_it_uses_changes_in_linked_nested_and_replaced_trees(tmp_path):
    import os
    import shutil
    elsewhere, data_root = tmp_path / "elsewhere", tmp_path / "photos"
    photo_folder(elsewhere, classes=("other",))
    for i in range(8):
        noise_png(data_root / "target" / f"{i:02d}.png", 500 + i)
    (data_root / "other").symlink_to(elsewhere / "other", target_is_directory=True)  # a linked class folder
    noise_png(data_root / "target" / "2019" / "a.png", 777)  # and a nested one
    noise_png(data_root / "unused" / "x.png", 1)  # a folder that is not a class
    raw = tiny_raw_params()
    raw["data"]["face"].update(source="folder", path=str(data_root), split={"train": 0.5, "val": 0.25, "test": 0.25})
    repo = make_repo(tmp_path / "repo", raw)

    def rerun() -> bool:
        """Whether `dvc repro prepare@face` reran prepare (scan always runs)."""
        ran = stages_run(sh("dvc", "repro", "prepare@face", cwd=repo).stdout)
        assert "scan@face" in ran
        return "prepare@face" in ran

    def used() -> int:
        import json
        return json.loads((repo / "metrics" / "face" / "data.json").read_text())["total"]["used"]

    assert rerun() and used() == 17
    assert not rerun()  # nothing changed
    noise_png(data_root / ".thumbnails" / "x.png", 1)  # hidden: never read
    noise_png(data_root / "unused" / "y.png", 2)  # not a class folder: never read
    (data_root / "target" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    assert not rerun()
    shutil.copytree(elsewhere / "other", tmp_path / "other2")  # the link's target changes: one photo more there
    noise_png(tmp_path / "other2" / "new.png", 4242)
    (data_root / "other").unlink()
    (data_root / "other").symlink_to(tmp_path / "other2", target_is_directory=True)
    assert rerun() and used() == 18
    noise_png(data_root / "target" / "2019" / "summer" / "b.png", 4343)  # a nested file added
    assert rerun() and used() == 19
    replaced = data_root / "target" / "00.png"  # replaced by another photo of the same size, mtime set back
    before = replaced.stat()
    noise_png(tmp_path / "swap.png", 4444)
    assert (tmp_path / "swap.png").stat().st_size == before.st_size
    os.replace(tmp_path / "swap.png", replaced)
    os.utime(replaced, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert rerun() and used() == 19
    assert not rerun()


@pytest.mark.e2e
def test_a_queued_experiment_reads_a_relative_path_from_the_repository_root_as_dvc_repro_does(tmp_path):
    """`dvc exp run --queue` runs the stages in a copy under .dvc/tmp/exps/; '../photos' still names the folder
    beside the repository (DVC_ROOT), and prepare writes the same data as `dvc repro` does in the repository."""
    import time
    photo_folder(tmp_path / "photos")
    raw = tiny_raw_params()
    raw["data"]["face"].update(source="folder", path="../photos", split={"train": 0.5, "val": 0.25, "test": 0.25})
    repo = make_repo(tmp_path / "repo", raw)
    sh("dvc", "repro", "prepare@face", cwd=repo)

    def prepared(lock: str) -> str:
        stage = yaml.safe_load(lock)["stages"]["prepare@face"]
        return next(out["md5"] for out in stage["outs"] if out["path"] == "data/prepared/face")

    in_repo = prepared((repo / "dvc.lock").read_text())
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "prepared", cwd=repo)
    # --force: prepare runs again in the copy instead of being skipped as unchanged
    sh("dvc", "exp", "run", "--queue", "--force", "-n", "relative", "prepare@face", cwd=repo)
    subprocess.run(["dvc", "queue", "start", "-j", "1"], cwd=repo, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # not through pipes: the detached worker would hold them open
    deadline, status = time.monotonic() + 120, ""
    try:
        while time.monotonic() < deadline:
            status = sh("dvc", "queue", "status", cwd=repo).stdout
            if "relative" in status and not any(word in status for word in ("Queued", "Running")):
                break
            time.sleep(2)
    finally:
        sh("dvc", "queue", "stop", "--kill", cwd=repo, check=False)
    log = sh("dvc", "queue", "logs", "relative", cwd=repo, check=False).stdout
    assert "Success" in status, f"{status}\n{log[-2000:]}"
    assert "Running stage 'prepare@face'" in log  # forced: prepared in the queue's copy, not skipped
    refs = sh("git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps", cwd=repo).stdout.split("\n")
    (commit,) = [line.split()[0] for line in refs if line.endswith("/relative")]  # the experiment's commit
    assert prepared(sh("git", "show", f"{commit}:dvc.lock", cwd=repo).stdout) == in_repo
