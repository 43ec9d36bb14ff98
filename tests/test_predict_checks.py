"""`facelab predict` as careful as prepare (issue 32): --out never overwrites a photo, nor a CSV without --force;
--explain overlays never share a name; NAS/OS folders (@eaDir ...) are neither read by prepare and scan nor
predicted; a link loop is a listed skip; empty folders, dash-named files and ignored files get lines that say what
happened."""
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab import app
from facelab.commands.inference import explanation_name, image_files
from facelab.data import prepare
from facelab.data.images import LINK_LOOP
from facelab.data.listing import SYSTEM_FOLDER, list_tree
from facelab.data.scan import fingerprint
from facelab.errors import DataError
from facelab.params import parse_params
from tests.test_predict import RECIPE, model_file

# The folders NAS boxes and OSes leave among photos, each with a JPEG inside as they hold them.
DEBRIS = ("@eaDir/p0.png/SYNOPHOTO_THUMB_M.jpg", "#recycle/old.jpg", ".@__thumb/p0.png", ".Trashes/501/p.jpg",
          "$RECYCLE.BIN/S-1-5-21/$R0.jpg")


@pytest.fixture(scope="module")
def face_model(tmp_path_factory, tiny_models):
    """models/face/resnet18_scratch/seed42.pt (32 px, 1 epoch): its path."""
    root = tmp_path_factory.mktemp("trained")
    tiny_models("face", root)
    return model_file(root, "face")


def photo(path, seed: int, size: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")


def predict(model, *args) -> None:
    app.main(["predict", "--task", "face", "--recipe", RECIPE, "--model", str(model), *map(str, args)])


def refused(capsys, model, *args, code: int = 1) -> str:
    """predict's one error line (argparse's usage line aside) for args; it must end the command with `code`."""
    capsys.readouterr()  # what earlier commands printed
    with pytest.raises(SystemExit) as stopped:
        predict(model, *args)
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("usage:", " "))]
    assert stopped.value.code == code and len(err) == 1, err
    return err[0]


def test_out_refuses_a_photo_any_other_file_and_a_csv_without_force_before_loading_the_model(tmp_path, capsys):
    """The model does not exist: each refusal comes before it is loaded, so before any image is decoded."""
    photo(tmp_path / "in" / "a.jpg", 1)
    photo(tmp_path / "photo.jpg", 2)
    before = (tmp_path / "photo.jpg").read_bytes()
    nothing = tmp_path / "no-model.pt"
    for out, force, message in (
            ("photo.jpg", [], "names an image file (.jpg), and predict writes CSV; pass a path ending in .csv. If "
                              "the shell's '*' matched a file named '--out="),
            ("photo.jpg", ["--force"], "names an image file (.jpg)"),
            ("new.PNG", [], "names an image file (.PNG)"),
            ("notes.txt", ["--force"], "exists and is not a CSV; predict never overwrites it (not even with --force)"),
            ("old.csv", [], "exists; pass --force to replace it, or another --out"),
            ("folder", [], "exists; pass --force to replace it, or another --out")):
        (tmp_path / "notes.txt").write_text("my notes")
        (tmp_path / "old.csv").write_text("a,b\n1,2\n")
        (tmp_path / "folder").mkdir(exist_ok=True)
        (tmp_path / "folder" / "predictions.csv").write_text("a,b\n1,2\n")
        line = refused(capsys, nothing, "--out", tmp_path / out, *force, tmp_path / "in")
        assert line.startswith("error: --out '") and message in line, line
    assert (tmp_path / "photo.jpg").read_bytes() == before and (tmp_path / "notes.txt").read_text() == "my notes"
    assert not (tmp_path / "new.PNG").exists()


def test_out_replaces_a_csv_with_force_and_a_star_that_matched_an_option_named_file_says_what_to_do(
        face_model, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "shared"
    for i in range(3):
        photo(folder / f"p{i}.jpg", 10 + i)
    photo(folder / "--out=x.jpg", 20)  # a real photo whose name a shell's `*` passes as an option
    monkeypatch.chdir(folder)
    star = sorted(os.listdir("."))  # what `facelab predict *` receives
    line = refused(capsys, face_model, *star)
    assert line == ("error: --out 'x.jpg' names an image file (.jpg), and predict writes CSV; pass a path ending in "
                    ".csv. If the shell's '*' matched a file named '--out=x.jpg', it became this option: put '--' "
                    "before the paths (facelab predict ... -- *) or write ./*")
    predict(face_model, "--out", tmp_path / "p.csv", "--", *star)
    assert pd.read_csv(tmp_path / "p.csv").file.tolist() == ["--out=x.jpg", "p0.jpg", "p1.jpg", "p2.jpg"]
    predict(face_model, "--out", tmp_path / "p.txt", *[f"./{name}" for name in star])  # ./ works too; any name
    assert refused(capsys, face_model, "--out", tmp_path / "p.txt", "p0.jpg").endswith("pass --force to replace it, "
                                                                                      "or another --out")
    predict(face_model, "--out", tmp_path / "p.txt", "--force", "p0.jpg")  # a CSV predict wrote, though not *.csv
    predict(face_model, "--out", tmp_path / "p.csv", "--force", "p1.jpg")
    assert pd.read_csv(tmp_path / "p.txt").file.tolist() == ["p0.jpg"]
    assert pd.read_csv(tmp_path / "p.csv").file.tolist() == ["p1.jpg"]


def test_a_path_that_starts_with_a_dash_is_answered_with_the_two_ways_to_pass_it(face_model, tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "-face.jpg", 1)
    photo(tmp_path / "b.jpg", 2)
    hint = "'-face.jpg' starts with '-', so it reads as an option: if it is a file, put '--' before the paths "
    alone = refused(capsys, face_model, "-face.jpg", code=2)
    assert alone.startswith("facelab predict: error: the following arguments are required: PATH; " + hint)
    assert alone.endswith("(facelab predict ... -- -face.jpg) or write ./-face.jpg")
    among = refused(capsys, face_model, "b.jpg", "-face.jpg", code=2)
    assert among.startswith("facelab predict: error: unrecognized arguments: -face.jpg; " + hint)
    capsys.readouterr()
    predict(face_model, "--", "-face.jpg", "b.jpg")
    predict(face_model, "./-face.jpg")
    out = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in out] == ["file", "-face.jpg", "b.jpg", "file", "-face.jpg"]


def test_explain_overlays_of_paths_that_read_alike_differ_and_the_csv_names_each(face_model, tmp_path, capsys):
    photos = tmp_path / "photos"
    photo(photos / "a__b" / "c.jpg", 1)
    photo(photos / "a" / "b__c.jpg", 2)
    predict(face_model, "--out", tmp_path / "p.csv", "--explain", tmp_path / "overlays", photos)
    frame = pd.read_csv(tmp_path / "p.csv")
    assert frame.file.tolist() == [str(photos / "a" / "b__c.jpg"), str(photos / "a__b" / "c.jpg")]
    written = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert len(written) == 2 and sorted(frame.explanation) == written
    readable = str(photos).strip("/").replace("/", "__") + "__a__b__c.jpg-"
    assert all(name.startswith(readable) and name.endswith(".png") for name in written)
    pictures = [np.asarray(Image.open(tmp_path / "overlays" / name)) for name in frame.explanation]
    first, second = pictures
    assert not np.array_equal(first, second)  # each row's own overlay: the two photos differ
    deep = "/".join(["folder"] * 80) + "/x.jpg"  # 562 bytes: the name keeps its end, under the 255-byte limit
    assert len(explanation_name(deep).encode()) <= 255 and explanation_name(deep).startswith("folder__")
    assert explanation_name(deep) != explanation_name(deep.replace("folder/folder", "folder__folder", 1))


def debris_tree(root):
    """root/<class>/ with 4 photos each, every debris folder inside target/ (and an @eaDir beside the classes)."""
    for k, name in enumerate(("other", "target")):
        for i in range(4):
            photo(root / name / f"{i}.png", 10 * k + i)
    for i, path in enumerate(DEBRIS):
        photo(root / "target" / path, 100 + i)
    photo(root / "@eaDir" / "target" / "SYNOPHOTO_THUMB_S.jpg", 200)
    return root


def test_nas_and_os_folders_are_listed_as_ignored_never_read_by_scan_prepare_or_predict(face_model, tiny_raw,
                                                                                       tmp_path, capsys):
    root = debris_tree(tmp_path / "photos")
    found = list_tree(root / "target")
    assert [p.name for p in found.files] == ["0.png", "1.png", "2.png", "3.png"]
    assert [(p.path.name, p.reason) for p in found.ignored] == [
        ("#recycle", SYSTEM_FOLDER), ("$RECYCLE.BIN", SYSTEM_FOLDER), (".@__thumb", SYSTEM_FOLDER),
        (".Trashes", SYSTEM_FOLDER), ("@eaDir", SYSTEM_FOLDER)]
    assert found.ignored[-1].detail == ("'@eaDir' holds a Synology NAS's thumbnails and metadata "
                                        "(SYNOPHOTO_THUMB_*.jpg), never photos of its own; not read")
    # prepare: used 8, the five folders listed as ignored (not counted as bad); scan counts what prepare found
    tiny_raw["data"]["face"].update(source="folder", path=str(root), split={"train": 0.5, "val": 0.25, "test": 0.25},
                                    max_bad_fraction=0.0)
    data = parse_params(tiny_raw).data["face"]
    prepare.prepare_task("face", data, 0, tmp_path / "out", tmp_path / "data.json")
    report = json.loads((tmp_path / "data.json").read_text())
    assert report["total"]["used"] == 8 and report["skipped"] == [] and report["not_used"] == {}
    assert sorted(row["file"] for row in report["ignored"]) == sorted(
        f"target/{path.split('/')[0]}" for path in DEBRIS)
    assert report["warnings"] == [f"folder '{root / '@eaDir'}': '@eaDir' holds a Synology NAS's thumbnails and "
                                  f"metadata (SYNOPHOTO_THUMB_*.jpg), never photos of its own; not read"]
    assert len(fingerprint("face", data)["files"]) == report["total"]["found"] == 13
    # predict: the folder, and the same folder's entries as a shell's `*` passes them
    capsys.readouterr()
    star = sorted(p for p in (root / "target").iterdir() if not p.name.startswith("."))  # `*` passes no '.name'
    for paths in ([root / "target"], star):
        predict(face_model, *paths)
        out, err = capsys.readouterr()
        assert pd.read_csv(io.StringIO(out)).file.tolist() == [str(root / "target" / f"{i}.png")
                                                                        for i in range(4)]
        assert f"skipped {root / 'target' / '@eaDir'}: {SYSTEM_FOLDER} ('@eaDir' holds a Synology NAS's" in err
        assert err.count(f": {SYSTEM_FOLDER} (") == (5 if len(paths) == 1 else 3)
    files, unlisted = image_files([root / "target" / "@eaDir" / "p0.png" / "SYNOPHOTO_THUMB_M.jpg"])  # `**/*.jpg`
    assert files == [] and [s.reason for s in unlisted] == [SYSTEM_FOLDER]


def test_a_link_loop_is_a_listed_skip_for_predict_and_named_for_prepare(face_model, tiny_raw, tmp_path, capsys):
    photo(tmp_path / "a.jpg", 1)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "ping").symlink_to(tmp_path / "pong")
    (tmp_path / "pong").symlink_to(tmp_path / "ping")
    capsys.readouterr()
    predict(face_model, tmp_path / "a.jpg", tmp_path / "loop", tmp_path / "ping")
    out, err = capsys.readouterr()
    assert pd.read_csv(io.StringIO(out)).file.tolist() == [str(tmp_path / "a.jpg")]
    for name in ("loop", "ping"):
        assert f"skipped {tmp_path / name}: {LINK_LOOP} ('{tmp_path / name}' is a link that leads back to itself" in err
    line = refused(capsys, face_model, tmp_path / "loop")
    assert line == f"error: none of the 1 file(s) is an image facelab can read ({tmp_path / 'loop'}: {LINK_LOOP})"
    assert list_tree(tmp_path / "loop").problems[0].reason == LINK_LOOP
    tiny_raw["data"]["face"].update(source="folder", path=str(tmp_path / "loop"))
    with pytest.raises(DataError, match=r"^image folder '.*loop' is a link loop \(a link that leads back to "
                                        r"itself\); "):
        prepare.prepare_task("face", parse_params(tiny_raw).data["face"], 0, tmp_path / "out")
    root = tmp_path / "classes"
    for i in range(4):
        photo(root / "other" / f"{i}.png", i)
    (root / "target").symlink_to(root / "target")  # a class folder that is a loop: not merely 'missing'
    tiny_raw["data"]["face"].update(path=str(root))
    with pytest.raises(DataError, match=r"^'.*classes/target' is a link loop \(a link that leads back to itself\) "
                                        r"\(files per class: other: 4, target: 0\)"):
        prepare.prepare_task("face", parse_params(tiny_raw).data["face"], 0, tmp_path / "out")


def test_empty_folders_and_ignored_files_get_lines_that_say_what_happened(face_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    line = refused(capsys, tmp_path / "no-model.pt", tmp_path / "empty")  # before the model is loaded
    assert line == (f"error: '{tmp_path / 'empty'}' hold(s) no file at all (hidden files and NAS or OS folders such "
                    f"as @eaDir are not read); pass image files or folders that hold them")
    photo(tmp_path / "nas" / "@eaDir" / "a.jpg" / "SYNOPHOTO_THUMB_M.jpg", 1)
    line = refused(capsys, tmp_path / "no-model.pt", tmp_path / "nas")
    assert line == (f"error: '{tmp_path / 'nas'}' hold(s) no file to score ({tmp_path / 'nas' / '@eaDir'}: "
                    f"{SYSTEM_FOLDER}); pass image files or folders that hold them")
    photo(tmp_path / "nas" / "a.jpg", 1)
    (tmp_path / "nas" / "notes.txt").write_text("my notes")
    predict(face_model, tmp_path / "nas")
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'nas' / 'notes.txt'}: not an image file (neither its suffix (.txt) nor its " \
           f"content is an image's)\n" in err
    assert "max_bad_fraction" not in err
