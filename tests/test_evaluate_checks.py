"""`facelab evaluate`'s checks before it scores: each image once (copies made through a link inside a class folder
get prepare's fates), the model's own train/val/test images found and a folder of them refused, one results folder
per --data folder, and one-line errors for a link loop and a class folder that differs only in case."""
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab import app, paths
from facelab.commands import evaluate as external
from facelab.commands.overlap import MAX_SEEN_SHARE
from facelab.data import faces
from facelab.data.batches import prepared_split
from facelab.files import read_json
from facelab.params import Split
from tests.conftest import tiny_raw_params, train_tiny
from tests.test_near_edits import cropped
from tests.test_predict import EMOTIONS, RECIPE, SEED, write_photos


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models):
    """A root holding data/prepared/emotion/ and the model trained on it, models/emotion/resnet18_scratch/seed42.*"""
    root = tmp_path_factory.mktemp("trained")
    tiny_models("emotion", root)
    return root


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own folder: results go to ./metrics/, the model's data is looked up in ./data/."""
    monkeypatch.chdir(tmp_path)


def command(trained, data, *extra) -> list[str]:
    return ["evaluate", "--task", "emotion", "--recipe", RECIPE, "--model",
            str(paths.model("emotion", RECIPE, SEED, trained)), "--data", str(data), *extra]


def outputs(data, name: str | None = None) -> dict:
    """Where an evaluation of `data` run from the current folder writes (the default name unless `name`)."""
    return paths.external_outputs("emotion", RECIPE, SEED, name or external.default_name(data.resolve()))


def refused(args, capsys) -> str:
    """The one error line `facelab` ends with (status 1)."""
    with pytest.raises(SystemExit) as stopped:
        app.main(args)
    err = capsys.readouterr().err.splitlines()
    assert stopped.value.code == 1 and len(err) == 1, err
    return err[0]


def test_copies_through_a_link_inside_a_class_folder_get_prepares_fates(trained, tmp_path, capsys):
    """Why-item 3: happy/also -> ../angry/sub made two angry photos count as happy too. The same image under two
    classes is dropped and listed (as prepare drops it); an exact copy within a class is scored once."""
    photos = tmp_path / "photos"
    write_photos(photos)
    angry = sorted((photos / "angry").iterdir())
    (photos / "angry" / "sub").mkdir()
    for path in angry[:2]:
        path.rename(photos / "angry" / "sub" / path.name)
    (photos / "happy" / "also").symlink_to("../angry/sub")
    first_happy = sorted((photos / "happy").glob("*.*"))[0]
    shutil.copy(first_happy, photos / "happy" / "copy.png")
    app.main(command(trained, photos))
    out = outputs(photos)
    data = read_json(out["details"])["data"]
    moved = [f"angry/sub/{p.name}" for p in angry[:2]]
    assert data["conflicts"] == [{"files": [name, name.replace("angry/sub", "happy/also")],
                                  "classes": ["angry", "happy"]} for name in moved]
    assert data["duplicates"] == [{"class": "happy", "kept": f"happy/{first_happy.name}",
                                   "removed": ["happy/copy.png"]}]
    support = {name: read_json(out["classes"])[name]["support"] for name in EMOTIONS}
    written = {name: len(list((photos / name).glob("*.*"))) for name in EMOTIONS}
    assert support == {"angry": written["angry"], "happy": written["happy"] - 1, "sad": written["sad"]}
    assert data["images"] == 23 == len(pd.read_csv(out["predictions"]))  # 25 photos, two of them in no class
    captured = capsys.readouterr()
    assert any(line.startswith("warning: 4 file(s) hold the same image as a file of another class and are not "
                               "scored") for line in captured.err.splitlines())
    assert captured.out.splitlines()[0].endswith("(23 images, 0 skipped, 4 dropped as under two classes)")


def test_a_link_to_the_root_inside_a_class_folder_leaves_the_other_classes_empty(trained, tmp_path, capsys):
    """The issue's own case, happy/up -> ..: every angry and sad photo is under happy too, so neither has an image
    of known class left, and evaluate says why in one line instead of scoring them as happy."""
    photos = tmp_path / "photos"
    write_photos(photos, n=9)
    (photos / "happy" / "up").symlink_to("..")
    line = refused(command(trained, photos, "--name", "up"), capsys)
    assert line.startswith(f"error: --data '{photos}': no usable image for class(es) ['angry', 'sad'] (1 file(s) "
                           f"skipped, 6 dropped as the same image is also under another class, e.g. 'angry/")


def model_images(trained, split: str, folder, rows: slice = slice(None), brighter: int = 0) -> list[str]:
    """The model's prepared images of one split (by its card's seed and shares) saved as PNGs in class folders;
    `brighter` adds to every pixel (the same photo to the near-duplicate hash, other pixels)."""
    prepared = paths.prepared("emotion", trained)
    card = read_json(paths.model_info("emotion", RECIPE, SEED, trained))
    index = prepared_split(prepared, SEED, Split(**card["settings"]["split"]["fractions"]))[split][rows]
    pixels = np.load(paths.prepared_images(prepared))
    manifest = pd.read_csv(paths.prepared_manifest(prepared))
    names = []
    for row in index:
        name = f"{manifest['class'][row]}/{split}{row:05d}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels[row].astype(int) + brighter, 0, 255).astype(np.uint8)).save(folder / name)
        names.append(name)
    return names


def test_a_folder_of_the_models_training_images_is_refused_and_scored_with_allow_overlap(trained, tmp_path, capsys):
    """What-to-build 3: the model's own train images (exact), val images a shade brighter (near-duplicates) and test
    images: over MAX_SEEN_SHARE of them are train or val images, so evaluate refuses; --allow-overlap scores them and
    reports the overlap per split."""
    shutil.copytree(paths.prepared("emotion", trained), paths.prepared("emotion", tmp_path))
    prepared = paths.prepared("emotion", tmp_path)
    assert not paths.prepared_sizes(prepared).exists()  # generated faces are no files: no sizes, the hashes alone
    seen = tmp_path / "seen"
    train = model_images(trained, "train", seen)
    val = model_images(trained, "val", seen, slice(0, 3), brighter=2)
    test = model_images(trained, "test", seen, slice(0, 3))
    seen_count, total = len(train) + 3, len(train) + 6
    line = refused(command(trained, seen), capsys)
    assert line == (f"error: {seen_count} of the {total} images in --data '{seen}' ({seen_count / total:.0%}) are "
                    f"the model's own training images ({len(train)} train, 3 val; exact or near-duplicate copies, "
                    f"e.g. {', '.join(sorted(train + val)[:3])}), over the {MAX_SEEN_SHARE:.0%} evaluate accepts: "
                    f"scores on them would overstate the model; evaluate on images it has not seen, or pass "
                    f"--allow-overlap to score anyway")
    assert not outputs(seen)["metrics"].exists()
    app.main(command(trained, seen, "--allow-overlap"))
    overlap = read_json(outputs(seen)["details"])["data"]["overlap"]
    assert overlap["checked"] and overlap["prepared"] == str(prepared.relative_to(tmp_path))
    assert overlap["splits"] == {"train": {"exact": len(train), "near": 0}, "val": {"exact": 0, "near": 3},
                                 "test": {"exact": 3, "near": 0}}
    assert sorted(overlap["files"]["val"]["near"]) == sorted(val)
    assert sorted(overlap["files"]["test"]["exact"]) == sorted(test)
    assert overlap["seen"] == len(train) + 3
    captured = capsys.readouterr()
    assert (f"[emotion/{RECIPE}/seed{SEED} on seen] images also in the model's own data (data/prepared/emotion): "
            f"train {len(train)} exact + 0 near, val 0 exact + 3 near, test 3 exact + 0 near") in captured.out
    assert any(line.startswith(f"warning: {len(train) + 3} of the {total} images are the model's own train or val "
                               f"images") for line in captured.err.splitlines())


def test_copies_cut_out_of_the_models_training_photos_count_as_its_own_images(tmp_path, capsys):
    """Prepared from photo files, the prepared folder keeps each file's size, so copies cut out of the model's train
    photos (2% a side, 7% at the bottom, 3/8/6/1%: between the hashes' windows) are found as prepare finds them
    among its own images; without the sizes (the hashes alone) they are not."""
    photos, evaluated = tmp_path / "photos", tmp_path / "evaluated"
    images, labels = faces.generate_emotions(60, 12, 120, seed=3)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        (photos / EMOTIONS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(photos / EMOTIONS[label] / f"{i:03d}.png")
    raw = tiny_raw_params()
    raw["data"]["emotion"].update(source="folder", path=str(photos), img_size=64)  # the size the search is measured at
    train_tiny("emotion", tmp_path, raw)
    prepared = paths.prepared("emotion", tmp_path)
    assert np.load(paths.prepared_sizes(prepared)).tolist() == [[120, 120]] * 60
    card = read_json(paths.model_info("emotion", RECIPE, SEED, tmp_path))
    rows = prepared_split(prepared, SEED, Split(**card["settings"]["split"]["fractions"]))["train"][:3]
    files = pd.read_csv(paths.prepared_manifest(prepared))["file"]
    cuts = []
    for row, cut in zip(rows, [(.02, .02, .02, .02), (0, 0, 0, .07), (.03, .08, .06, .01)]):
        name = f"{files[row].split('/')[0]}/cut{row}.jpg"
        (evaluated / name).parent.mkdir(parents=True, exist_ok=True)
        with Image.open(photos / files[row]) as image:
            cropped(image.convert("RGB"), *cut).save(evaluated / name, quality=90)
        cuts.append(name)
    write_photos(evaluated, n=30, seed=9)  # photos the model has not seen
    capsys.readouterr()
    app.main(command(tmp_path, evaluated, "--allow-overlap"))
    overlap = read_json(outputs(evaluated)["details"])["data"]["overlap"]
    assert sorted(overlap["files"]["train"]["near"]) == sorted(cuts), overlap["files"]
    paths.prepared_sizes(prepared).unlink()  # as a folder prepared before sizes were kept: the hashes alone
    app.main(command(tmp_path, evaluated, "--allow-overlap"))
    overlap = read_json(outputs(evaluated)["details"])["data"]["overlap"]
    assert len(overlap["files"]["train"]["near"]) < len(cuts)


def test_fresh_photos_have_no_overlap_and_a_model_without_its_data_says_why(trained, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_photos(photos)
    app.main(command(trained, photos))  # no data/prepared/emotion/ here: the model was copied without it
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: the images could not be compared with the model's own train/val/test images: "
                   f"'{paths.prepared('emotion')}' does not exist (the model was copied without the data it was "
                   f"trained on); run from the repository that trained it, or `dvc pull data/prepared/emotion` there"]
    assert read_json(outputs(photos)["details"])["data"]["overlap"]["checked"] is False
    shutil.copytree(paths.prepared("emotion", trained), paths.prepared("emotion", tmp_path))
    app.main(command(trained, photos))
    overlap = read_json(outputs(photos)["details"])["data"]["overlap"]
    assert overlap["checked"] and overlap["seen"] == 0
    assert overlap["splits"] == {split: {"exact": 0, "near": 0} for split in ("train", "val", "test")}
    assert capsys.readouterr().err == ""


def test_each_data_folder_gets_its_own_results_and_a_name_of_another_folder_needs_force(trained, tmp_path, capsys):
    """What-to-build 4: two folders both named photos never overwrite each other's results."""
    first, second = tmp_path / "a" / "photos", tmp_path / "b" / "photos"
    write_photos(first, n=9, seed=1)
    write_photos(second, n=9, seed=2)
    for data in (first, second):
        app.main(command(trained, data))
    names = [outputs(data)["metrics"].parent.parent.name for data in (first, second)]
    assert names[0] != names[1] and all(re.fullmatch(r"photos-[0-9a-f]{8}", name) for name in names)
    assert [read_json(outputs(d)["details"])["data"]["resolved"] for d in (first, second)] == [str(first), str(second)]
    app.main(command(trained, first, "--name", "mine"))
    app.main(command(trained, first, "--name", "mine"))  # the same folder again: its own results are replaced
    kept = outputs(first, "mine")["metrics"].read_text()
    capsys.readouterr()
    line = refused(command(trained, second, "--name", "mine"), capsys)
    assert line == (f"error: '{outputs(first, 'mine')['metrics'].parents[1]}' holds results of --data '{first}', not "
                    f"of '{second}'; pass another --name (without one, each folder gets its own), or --force to "
                    f"write there anyway")
    assert outputs(first, "mine")["metrics"].read_text() == kept
    app.main(command(trained, second, "--name", "mine", "--force"))
    assert read_json(outputs(first, "mine")["details"])["data"]["resolved"] == str(second)


def test_a_link_loop_and_a_class_folder_in_another_case_are_one_line_each(trained, tmp_path, capsys):
    """Why-item 11: --data LOOP (a link to itself) printed a RuntimeError traceback; 'Sad' for 'sad' did not say that
    only the case differs."""
    loop = tmp_path / "LOOP"
    loop.symlink_to("LOOP")
    assert refused(command(trained, loop), capsys) == (
        f"error: --data '{loop}' is (or passes through) a link that leads back to itself, a link loop; pass a folder "
        f"holding one sub-folder per class {list(EMOTIONS)}, or point the link at one")
    photos = tmp_path / "photos"
    write_photos(photos, n=9)
    os.rename(photos / "sad", photos / "Sad")
    line = refused(command(trained, photos), capsys)
    assert line.startswith(f"error: --data '{photos}' has no folder for class(es) ['sad']")
    assert line.endswith(f"; '{photos / 'Sad'}' differs from 'sad' only in case: rename it to 'sad'")
