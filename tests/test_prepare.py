import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from facelab.data import prepare
from facelab.params import parse_params
from tests.conftest import REAL_DATA, make_repo, sh, split_counts, splits_of


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_prepare_generated_writes_every_image_once_and_each_seed_splits_it(tiny_params, tmp_path):
    data = tiny_params.data["emotion"]
    counts = prepare.prepare_task("emotion", data, tiny_params.data_seed, tmp_path / "emotion").counts
    out = tmp_path / "emotion"
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "groups.npy", "images.npy", "labels.npy",
                                                     "manifest.csv"]  # no own_test.npy: the split draws test too
    x = np.load(out / "images.npy")
    assert x.dtype == np.uint8 and x.shape == (90, 32, 32, 3) and counts == {"used": {"angry": 30, "happy": 30,
                                                                                        "sad": 30}}
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == ["file", "class", "group"]
    assert manifest["file"].is_unique and len(manifest) == 90
    splits = {seed: splits_of(out, seed, data.split) for seed in (42, 43)}
    assert sorted(splits[42]) == sorted(manifest["file"])  # every image in exactly one split
    tests = {seed: sorted(name for name, split in files.items() if split == "test") for seed, files in splits.items()}
    assert len(tests[42]) == len(tests[43]) == 14 and tests[42] != tests[43]  # round(90 * 0.15); a seed's own
    assert sorted(split_counts(out, 43, data.split)["test"].values()) == [4, 5, 5]  # stratified: 4 or 5 a class
    assert splits_of(out, 42, data.split) == splits[42]  # the same seed, the same split
    first = digest(out)
    prepare.prepare_task("emotion", data, tiny_params.data_seed, out)
    assert digest(out) == first  # same seed, same bytes
    assert not list(tmp_path.glob(".*tmp"))  # no temporary leftovers


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data not found at {REAL_DATA}")
def test_prepare_folder_source_on_real_fer_images(tiny_raw, tmp_path):
    tiny_raw["data"]["emotion"].update(source="folder", path=str(REAL_DATA / "emotion-fer2013"))
    data = parse_params(tiny_raw).data["emotion"]
    counts = prepare.prepare_task("emotion", data, 0, tmp_path / "fer", tmp_path / "data.json").counts
    assert {split: sum(per_class.values()) for split, per_class in split_counts(tmp_path / "fer", 0, data.split).items()
            } == {"train": 2097, "val": 449, "test": 452}
    report = json.loads((tmp_path / "data.json").read_text())
    assert report["counts"] == counts and report["total"] == {
        "found": 3000, "ignored": 0, "skipped": 0, "duplicates_removed": 0, "near_duplicates_removed": 0,
        "conflicts_dropped": 2, "test_copies_removed": 0, "used": 2998}
    assert report["skipped"] == [] and report["duplicates"] == [] and report["conflicts"] == []
    # FER2013 holds one photo twice under different names (re-encoded) and a happy photo with a cropped copy: each
    # pair is grouped, so both land in one split. A photo cropped two ways, once angry and once sad, is dropped.
    pair = ["angry/Training_48130684.jpg", "angry/Training_72631670.jpg"]
    assert report["near_duplicates"]["examples"] == [
        {"class": "angry", "files": pair},
        {"class": "happy", "files": ["happy/Training_33448258.jpg", "happy/Training_62827526.jpg"]}]
    assert report["near_duplicates"]["conflicts"] == [
        {"files": ["angry/Training_53987417.jpg", "sad/Training_75159666.jpg"], "classes": ["angry", "sad"]}]
    manifest = pd.read_csv(tmp_path / "fer" / "manifest.csv")
    assert manifest.set_index("file").loc[pair, "group"].nunique() == 1
    assert all(len({splits_of(tmp_path / "fer", seed, data.split)[name] for name in pair}) == 1 for seed in (0, 1))
    assert manifest["file"].str.match(r"^(angry|happy|sad)/").all()
    assert (manifest["file"].str.split("/").str[0] == manifest["class"]).all()


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data not found at {REAL_DATA}")
@pytest.mark.e2e
def test_exp_run_with_folder_sources_writes_data_metrics(tiny_raw, tmp_path):
    repo = make_repo(tmp_path / "repo", tiny_raw)
    sh("dvc", "exp", "run", "-S", "data.face.source=folder", "-S", f"data.face.path={REAL_DATA / 'face-yaleb'}",
       "-S", "data.emotion.source=folder", "-S", f"data.emotion.path={REAL_DATA / 'emotion-fer2013'}",
       "prepare@face", "prepare@emotion", cwd=repo)
    face = json.loads((repo / "metrics" / "face" / "data.json").read_text())
    assert face["total"]["used"] == 384 and face["classes"]["target"]["found"] == 64
    assert face["counts"] == {"used": {"other": 320, "target": 64}}  # per seed, the split is train's and evaluate's
    fractions = parse_params(tiny_raw).data["face"].split
    assert {s: sum(c.values()) for s, c in split_counts(repo / "data" / "prepared" / "face", tiny_raw["seeds"][0],
                                                        fractions).items()} == {"train": 268, "val": 58, "test": 58}
    emotion = json.loads((repo / "metrics" / "emotion" / "data.json").read_text())
    # one photo cropped two ways, once angry and once sad, is dropped (test_prepare_folder_source_on_real_fer_images)
    assert emotion["counts"]["used"] == {"angry": 999, "happy": 1000, "sad": 999}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {out["path"] for out in lock["stages"]["prepare@face"]["outs"]}
    assert outs == {"data/prepared/face", "metrics/face/data.json"}  # an output DVC tracks, not a metric to diff
