"""LFW through scikit-learn's cache layout and FER2013 as CSV and as image-folder release, on tiny copies written by
the tests."""
import hashlib
import json
import socket
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab.data import prepare
from facelab.data.dataset import load_images
from facelab.data.images import BAD_ROW
from facelab.data.public import LFW_FACE_BOX
from facelab.errors import DataError
from facelab.params import parse_params
from tests.conftest import REAL_DATA, split_counts, splits_of

needs_real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data not found at {REAL_DATA}")
SPLIT = {"train": 0.5, "val": 0.25, "test": 0.25}
PEOPLE = {"Alice_Smith": 6, "Bob_Jones": 3, "Carol_White": 4, "Dan_Brown": 2}


def write_lfw(data_home):
    """The layout fetch_lfw_people(download_if_missing=False) accepts: three pairs files and lfw_funneled/<Person>/."""
    lfw_home = data_home / "lfw_home"
    for k, (person, n) in enumerate(PEOPLE.items()):
        (lfw_home / "lfw_funneled" / person).mkdir(parents=True)
        for i in range(n):
            image = Image.new("RGB", (250, 250), (255, 255, 255))  # white background, a noise face in the box
            rng = np.random.default_rng(100 * k + i)
            face = rng.integers(0, 100, (LFW_FACE_BOX[3] - LFW_FACE_BOX[1], LFW_FACE_BOX[2] - LFW_FACE_BOX[0], 3))
            image.paste(Image.fromarray(face.astype(np.uint8)), LFW_FACE_BOX[:2])
            image.save(lfw_home / "lfw_funneled" / person / f"{person}_{i + 1:04d}.jpg", quality=95)
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt"):
        (lfw_home / name).write_text("1\n")
    return data_home


def lfw_data(raw, data_home, **lfw):
    raw["data"]["face"].update(source="lfw", path=str(data_home), split=SPLIT,
                               lfw={"target": "Alice_Smith", "n_other": 6, "download": False, **lfw})
    return parse_params(raw).data["face"]


def test_lfw_draws_the_target_against_seeded_others_and_crops_the_face(tiny_raw, tmp_path):
    data = lfw_data(tiny_raw, write_lfw(tmp_path / "sk"))
    images = load_images("face", data, seed=3)
    assert images.labels.tolist() == [0] * 6 + [1] * 6
    assert images.files[6:] == [f"Alice_Smith/Alice_Smith_{i:04d}.jpg" for i in range(1, 7)]
    assert all(f.split("/")[0] in ("Bob_Jones", "Carol_White", "Dan_Brown") for f in images.files[:6])
    assert (images.files == load_images("face", data, seed=3).files
            and images.files != load_images("face", data, seed=4).files)
    assert images.pixels.max() < 130  # only the face box: none of the white background is left
    counts = prepare.prepare_task("face", data, 0, tmp_path / "out").counts
    assert counts == {"used": {"other": 6, "target": 6}}
    assert split_counts(tmp_path / "out", 0, data.split) == {"train": {"other": 3, "target": 3},
                                                             "val": {"other": 1, "target": 2},
                                                             "test": {"other": 2, "target": 1}}


@pytest.mark.parametrize("lfw, message", [
    ({"target": "Alice_Smyth"},
     r"'Alice_Smyth' is not a person in '.*lfw_funneled' \(4 people\); closest names: \['Alice_Smith'\]"),
    ({"n_other": 10}, r"data.<task>.lfw.n_other: 10 is more than the 9 images of other people"),
])
def test_lfw_wrong_person_or_too_many_others_is_an_error(tiny_raw, tmp_path, lfw, message):
    with pytest.raises(DataError, match=message):
        load_images("face", lfw_data(tiny_raw, write_lfw(tmp_path / "sk"), **lfw), seed=0)


def test_lfw_without_cache_or_download_names_the_cache_folder(tiny_raw, tmp_path):
    with pytest.raises(DataError, match=rf"^LFW is not in the cache folder '{tmp_path}/empty/lfw_home' "
                                        r"\(.*pairsDevTrain.txt is missing\) and data.<task>.lfw.download is false; "
                                        r"run prepare once"):
        load_images("face", lfw_data(tiny_raw, tmp_path / "empty"), seed=0)


@pytest.mark.filterwarnings("ignore:Retry downloading from url")
def test_lfw_download_without_network_names_the_cache_folder(tiny_raw, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # scikit-learn waits between its retries
    with pytest.raises(DataError, match=rf"^LFW is not in the cache folder '{tmp_path}/offline/lfw_home' "
                                        r"\(.*Network is unreachable.*\) and downloading it failed; "
                                        r"run prepare once on a machine with network"):
        load_images("face", lfw_data(tiny_raw, tmp_path / "offline", download=True), seed=0)


def fer_images(emotion, n, start=0):
    """n real FER2013 48x48 greyscale images of one emotion, as arrays."""
    paths = sorted((REAL_DATA / "emotion-fer2013" / emotion).iterdir())[start:start + n]
    return [np.asarray(Image.open(p).convert("L")) for p in paths]


def fer_data(raw, path):
    raw["data"]["emotion"].update(source="fer2013", path=str(path), split=SPLIT)
    return parse_params(raw).data["emotion"]


def digests(out):
    return [hashlib.sha256(x.tobytes()).hexdigest() for x in np.load(out / "images.npy")]


@needs_real
def test_fer2013_csv_maps_labels_uses_its_test_rows_and_skips_bad_rows(tiny_raw, tmp_path):
    rows = []
    for code, emotion in ((0, "angry"), (3, "happy"), (4, "sad"), (2, "sad")):  # 2 is fear: not mapped
        for i, image in enumerate(fer_images(emotion, 7, start=10 * code)):
            usage = ("Training",) * 5 + ("PublicTest", "PrivateTest")
            rows.append((code, " ".join(map(str, image.ravel())), usage[i]))
    rows.append((3, "1 2 3", "Training"))
    pd.DataFrame(rows, columns=["emotion", "pixels", "Usage"]).to_csv(tmp_path / "fer2013.csv", index=False)
    data = fer_data(tiny_raw, tmp_path / "fer2013.csv")
    counts = prepare.prepare_task("emotion", data, 0, tmp_path / "out", tmp_path / "d.json").counts
    assert counts["own_test"] == {"angry": 2, "happy": 2, "sad": 2}  # the PublicTest and PrivateTest rows
    for seed in (0, 1):  # every run tests on the release's own test rows; train and val vary with the seed
        split = split_counts(tmp_path / "out", seed, data.split)
        assert split["test"] == counts["own_test"]
        assert {s: sum(c.values()) for s, c in split.items()} == {"train": 10, "val": 5, "test": 6}
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["not_used"] == {"fear": 7}
    assert [(s["file"], s["class"], s["reason"]) for s in report["skipped"]] == [("fer2013.csv:30", "happy", BAD_ROW)]
    split_of = splits_of(tmp_path / "out", 0, data.split)
    assert {name for name, split in split_of.items() if split == "test"} == {f"fer2013.csv:{line}"
                                                                              for line in (7, 8, 14, 15, 21, 22)}


def test_fer2013_csv_with_a_wrong_emotion_says_which_line(tiny_raw, tmp_path):
    (tmp_path / "fer.csv").write_text("emotion,pixels,Usage\n3,1 2,Training\n9,1 2,Training\n")
    with pytest.raises(DataError, match=r"fer.csv' line 3: emotion '9' is not 0-6 \(0 angry, 1 disgust"):
        prepare.prepare_task("emotion", fer_data(tiny_raw, tmp_path / "fer.csv"), 0, tmp_path / "out")


def write_release(root):
    """A tiny FER2013 image-folder release: train/ and test/, each with angry, happy, sad and disgust."""
    for part, start, n in (("train", 0, 6), ("test", 100, 2)):
        for emotion in ("angry", "happy", "sad", "disgust"):
            (root / part / emotion).mkdir(parents=True)
            for i, image in enumerate(fer_images("angry" if emotion == "disgust" else emotion, n,
                                                 start + 50 * (emotion == "disgust"))):
                Image.fromarray(image).save(root / part / emotion / f"{part}_{i}.png")
    return root


@needs_real
def test_fer2013_release_keeps_its_test_split_as_released_and_drops_the_train_side_copies(tiny_raw, tmp_path):
    """Scores on a released test split stay comparable with published ones: every test image stays, and copies of
    one outside it (same pixels or near-duplicates, whatever their label) leave train and val instead."""
    root = write_release(tmp_path / "fer")
    same, clash, near, twice, apart = fer_images("sad", 5, start=500)
    for path in ("train/angry/same_1.png", "train/angry/same_2.png", "test/happy/same_3.png"):
        Image.fromarray(same).save(root / path)  # a test image's copies under another label in train: they go
    for path in ("train/sad/copy_train.png", "test/sad/copy_test.png"):
        Image.fromarray(clash).save(root / path)  # same label in train and test: the train copy goes
    Image.fromarray(near).save(root / "test" / "angry" / "near_test.png")
    Image.fromarray(np.ascontiguousarray(near[:, ::-1])).save(root / "train" / "angry" / "near_train.png")  # mirrored
    for path in ("test/happy/twice_1.png", "test/happy/twice_2.png"):
        Image.fromarray(twice).save(root / path)  # one picture twice in the release's test split: both stay
    for path in ("train/sad/apart_1.png", "train/sad/apart_2.png"):
        Image.fromarray(apart).save(root / path)  # copies outside the test split: one is kept, as before
    data = fer_data(tiny_raw, root)
    counts = prepare.prepare_task("emotion", data, 0, tmp_path / "out", tmp_path / "d.json").counts
    released = {emotion: len(list((root / "test" / emotion).iterdir())) for emotion in ("angry", "happy", "sad")}
    assert counts["own_test"] == released == {"angry": 3, "happy": 5, "sad": 3}
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["test_copies"] == [
        {"match": "same pixels", "test": ["test/happy/same_3.png"],
         "removed": ["train/angry/same_1.png", "train/angry/same_2.png"], "classes": ["angry", "angry"]},
        {"match": "same pixels", "test": ["test/sad/copy_test.png"], "removed": ["train/sad/copy_train.png"],
         "classes": ["sad"]},
        {"match": "near-duplicate", "test": ["test/angry/near_test.png"], "removed": ["train/angry/near_train.png"],
         "classes": ["angry"]}]
    assert report["conflicts"] == []
    assert report["duplicates"] == [{"class": "sad", "kept": "train/sad/apart_1.png",
                                     "removed": ["train/sad/apart_2.png"]}]
    assert ({name: row["test_copies_removed"] for name, row in report["classes"].items()}
            == {"angry": 3, "happy": 0, "sad": 1})
    assert report["not_used"] == {"train/disgust": 6, "test/disgust": 2}
    for seed in (0, 1):
        split_of = splits_of(tmp_path / "out", seed, data.split)
        assert {name for name, split in split_of.items() if split == "test"} == {
            f"test/{emotion}/{path.name}" for emotion in released for path in (root / "test" / emotion).iterdir()}
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert not manifest.file.str.contains("same_1|same_2|copy_train|near_train|apart_2").any()


def test_fer2013_release_needs_a_train_folder(tiny_raw, tmp_path):
    (tmp_path / "angry").mkdir()
    with pytest.raises(DataError, match=r"is not a FER2013 image-folder release: it has no train/ folder "
                                        r"\(it holds \['angry'\]\)"):
        prepare.prepare_task("emotion", fer_data(tiny_raw, tmp_path), 0, tmp_path / "out")
