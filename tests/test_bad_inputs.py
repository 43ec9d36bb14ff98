"""Bad inputs, one test per case: each asserts the exact error, or which files were skipped and that data.json counts
them."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab.data import prepare
from facelab.data.images import CORRUPT, EMPTY, NOT_IMAGE, TOO_LARGE, UNREADABLE, decode_image
from facelab.errors import DataError
from facelab.params import parse_params
from tests.conftest import split_counts

SPLIT = {"train": 0.5, "val": 0.25, "test": 0.25}  # each class needs at least 4 images


def noise(seed, size=(16, 16)):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))


def write_classes(root, per_class=6, classes=("a", "b")):
    """per_class distinct noise PNGs in each class folder: a/a00.png ..."""
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise(100 * k + i).save(root / name / f"{name}{i:02d}.png")
    return root


def folder_data(raw, root, classes=("a", "b"), **overrides):
    raw["data"]["emotion"].update(source="folder", path=str(root), classes=list(classes), split=SPLIT, **overrides)
    return parse_params(raw).data["emotion"]


def run(tmp_path, data):
    """prepare.prepare_task into tmp_path/out; the counts and the data.json report."""
    counts = prepare.prepare_task("emotion", data, 0, tmp_path / "out", tmp_path / "data.json").counts
    return counts, json.loads((tmp_path / "data.json").read_text())


def digest(array):
    return hashlib.sha256(array.tobytes()).hexdigest()


def test_duplicates_are_kept_once_and_conflicting_ones_dropped_before_the_split(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos")
    noise(7).save(root / "a" / "dup_1.png")       # the same image twice under a ...
    noise(7).save(root / "a" / "dup_2.bmp")       # ... once as a BMP: same pixels, other bytes
    noise(8).save(root / "a" / "clash.png")       # and one image under both a and b
    noise(8).save(root / "b" / "clash.png")
    counts, report = run(tmp_path, folder_data(tiny_raw, root))
    assert report["duplicates"] == [{"class": "a", "kept": "a/dup_1.png", "removed": ["a/dup_2.bmp"]}]
    assert report["conflicts"] == [{"files": ["a/clash.png", "b/clash.png"], "classes": ["a", "b"]}]
    assert report["classes"]["a"] == {"found": 9, "ignored": 0, "skipped": 0, "duplicates_removed": 1,
                                      "near_duplicates_removed": 0, "conflicts_dropped": 1, "test_copies_removed": 0,
                                      "used": 7}
    assert report["classes"]["b"] == {"found": 7, "ignored": 0, "skipped": 0, "duplicates_removed": 0,
                                      "near_duplicates_removed": 0, "conflicts_dropped": 1, "test_copies_removed": 0,
                                      "used": 6}
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert "a/dup_1.png" in set(manifest["file"]) and not ({"a/dup_2.bmp", "a/clash.png", "b/clash.png"}
                                                           & set(manifest["file"]))
    assert sum(counts["used"].values()) == len(manifest) == 13
    seen = [digest(x) for x in np.load(tmp_path / "out" / "images.npy")]
    assert len(seen) == len(set(seen)) == 13  # no image twice: no split can hold one twice, or in two splits


@pytest.mark.parametrize("name, content, reason", [
    ("zero.png", b"", EMPTY),
    ("notes.jpg", b"these are my notes, not a picture", NOT_IMAGE),
    ("truncated.jpg", "truncate", CORRUPT),
])
def test_unusable_file_is_skipped_listed_and_counted(tiny_raw, tmp_path, name, content, reason):
    root = write_classes(tmp_path / "photos", per_class=20)
    if content == "truncate":
        noise(5, (64, 64)).save(root / "b" / "full.jpg", quality=95)
        content = (root / "b" / "full.jpg").read_bytes()[:600]
        (root / "b" / "full.jpg").unlink()
    (root / "b" / name).write_bytes(content)
    counts, report = run(tmp_path, folder_data(tiny_raw, root))
    [skipped] = report["skipped"]
    assert ((skipped["file"], skipped["class"], skipped["reason"], skipped["counts_as_bad"])
            == (f"b/{name}", "b", reason, True))
    assert report["skipped_by_reason"] == {reason: 1}
    assert report["classes"]["b"]["skipped"] == 1 and report["classes"]["b"]["used"] == 20
    assert report["total"] == {"found": 41, "ignored": 0, "skipped": 1, "duplicates_removed": 0,
                               "near_duplicates_removed": 0, "conflicts_dropped": 0, "test_copies_removed": 0,
                               "used": 40}
    assert report["bad_fraction"] == round(1 / 41, 6)
    assert sum(counts[s]["b"] for s in counts) == 20


def test_file_without_read_permission_is_skipped_as_unreadable(tiny_raw, tmp_path, monkeypatch):
    root = write_classes(tmp_path / "photos", per_class=20)
    noise(9).save(root / "a" / "locked.png")
    real_open = Image.open

    def open_unless_locked(path, *args, **kwargs):  # chmod does not stop root, who runs CI
        if path.name == "locked.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(Image, "open", open_unless_locked)
    _, report = run(tmp_path, folder_data(tiny_raw, root))
    assert [(s["file"], s["reason"]) for s in report["skipped"]] == [("a/locked.png", UNREADABLE)]
    assert report["skipped"][0]["detail"] == f"[Errno 13] Permission denied: '{root / 'a' / 'locked.png'}'"
    assert report["classes"]["a"]["skipped"] == 1 and report["total"]["used"] == 40


def test_too_many_unusable_files_fail_naming_the_worst_and_write_nothing(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos", per_class=6)
    for i in range(3):
        (root / "b" / f"bad{i}.jpg").write_bytes(b"")
    (root / "a" / "bad.jpg").write_text("x")  # a photo's name, no image inside (a .txt would be ignored)
    data = folder_data(tiny_raw, root, max_bad_fraction=0.2)
    with pytest.raises(DataError) as error:
        run(tmp_path, data)
    assert str(error.value) == (
        "4 of 16 files cannot be used (25.0%, over data.emotion.max_bad_fraction = 0.2); unusable files per "
        "class: b: 3, a: 1; b/bad0.jpg (empty file: the file has 0 bytes); b/bad1.jpg (empty file: the file "
        "has 0 bytes); b/bad2.jpg (empty file: the file has 0 bytes); a/bad.jpg (not an image: PIL cannot "
        "identify it as an image (.jpg)). Remove or replace them, or raise data.emotion.max_bad_fraction to go "
        "on without them (data.json then lists them all)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "data.json").exists()
    assert run(tmp_path, folder_data(tiny_raw, root, max_bad_fraction=0.25))[1]["total"]["skipped"] == 4


def test_hidden_junk_is_never_read_and_never_fails(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos")
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (root / "b" / "._a00.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    _, report = run(tmp_path, folder_data(tiny_raw, root, max_bad_fraction=0.0))
    assert report["skipped"] == [] and report["ignored"] == [] and report["total"]["found"] == 12
    assert report["bad_fraction"] == 0.0 and report["total"]["used"] == 12


@pytest.mark.parametrize("mode, make, expected", [
    ("L", lambda: Image.new("L", (8, 8), 100), (100, 100, 100)),
    ("LA", lambda: Image.new("LA", (8, 8), (100, 255)), (100, 100, 100)),
    ("LA transparent", lambda: Image.new("LA", (8, 8), (100, 0)), (255, 255, 255)),
    ("P", lambda: Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE), (10, 200, 30)),
    ("RGBA", lambda: Image.new("RGBA", (8, 8), (10, 200, 30, 255)), (10, 200, 30)),
    ("RGBA half", lambda: Image.new("RGBA", (8, 8), (0, 0, 0, 128)), (127, 127, 127)),
    ("1", lambda: Image.new("1", (8, 8), 1), (255, 255, 255)),
])
def test_every_pil_mode_becomes_the_right_rgb(tmp_path, mode, make, expected):
    make().save(tmp_path / "image.png")
    pixels = decode_image(tmp_path / "image.png", 32).square
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    assert {tuple(p) for p in pixels.reshape(-1, 3)} == {expected}


def test_palette_with_a_transparent_index_becomes_white(tmp_path):
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.paste(0, (0, 0, 4, 8))
    image.save(tmp_path / "p.png", transparency=0)
    pixels = decode_image(tmp_path / "p.png", 32).square
    assert tuple(pixels[16, 2]) == (255, 255, 255) and tuple(pixels[16, 29]) == (10, 200, 30)


def test_cmyk_converts_like_print_colours(tmp_path):
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "cyan.tif")
    pixels = decode_image(tmp_path / "cyan.tif", 32).square
    assert {tuple(p) for p in pixels.reshape(-1, 3)} == {(0, 255, 255)}


def test_16_bit_greyscale_is_scaled_to_its_range_not_clipped(tmp_path):
    values = np.tile(np.array([1000, 3000], np.uint16).repeat(8), (16, 1))  # left half 1000, right 3000
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode == "I;16"
    pixels = decode_image(tmp_path / "deep.png", 32).square
    assert tuple(pixels[16, 2]) == (0, 0, 0) and tuple(pixels[16, 29]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: the left half ends on top
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    pixels = decode_image(tmp_path / "rotated.jpg", 32).square
    assert pixels[4, 16, 0] > 200 and pixels[4, 16, 2] < 60    # top: red
    assert pixels[28, 16, 2] > 200 and pixels[28, 16, 0] < 60  # bottom: blue


def test_images_over_the_decompression_bomb_limit_are_skipped(tiny_raw, tmp_path, monkeypatch):
    root = write_classes(tmp_path / "photos", per_class=10)
    noise(1, (40, 40)).save(root / "a" / "big.png")     # 1600 pixels: PIL itself only warns
    noise(2, (100, 100)).save(root / "b" / "huge.png")  # over twice the limit: PIL refuses it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _, report = run(tmp_path, folder_data(tiny_raw, root, max_bad_fraction=0.1))
    assert [(s["file"], s["reason"]) for s in report["skipped"]] == [("a/big.png", TOO_LARGE),
                                                                     ("b/huge.png", TOO_LARGE)]
    assert report["skipped"][0]["detail"] == "40x40 = 1600 pixels is over PIL's Image.MAX_IMAGE_PIXELS = 1000"
    assert report["total"]["used"] == 20


def test_missing_class_folder_is_an_error_with_the_counts(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos", classes=("a", "b"))
    with pytest.raises(DataError, match=r"^'.*photos/c' is missing \(files per class: a: 6, b: 6, c: 0\)"):
        run(tmp_path, folder_data(tiny_raw, root, classes=("a", "b", "c")))


def test_empty_class_folder_is_an_error_with_the_counts(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos")
    (root / "c").mkdir()
    with pytest.raises(DataError, match=r"^'.*photos/c' is empty \(files per class: a: 6, b: 6, c: 0\)"):
        run(tmp_path, folder_data(tiny_raw, root, classes=("a", "b", "c")))


def test_class_with_too_few_images_to_split_is_an_error_with_the_counts(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos")
    for path in sorted((root / "b").iterdir())[3:]:
        path.unlink()
    with pytest.raises(DataError, match=r"^too few images to split into train/val/test: b: 3 \(each class needs "
                                        r"at least 4 .*images per class .*: a: 6, b: 3\)"):
        run(tmp_path, folder_data(tiny_raw, root))


def test_class_of_unusable_files_only_is_too_few_to_split(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos", per_class=30, classes=("a",))
    (root / "b").mkdir()
    (root / "b" / "only.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"too few images to split into train/val/test: b: 0 "):
        run(tmp_path, folder_data(tiny_raw, root, max_bad_fraction=0.5))


def test_folders_params_do_not_name_are_a_listed_warning(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos", classes=("a", "b", "fear"))
    write_classes(root / "a", per_class=1, classes=("nested",))
    (root / "readme.txt").write_text("my photos")
    counts, report = run(tmp_path, folder_data(tiny_raw, root))
    assert report["not_used"] == {"fear": 6}
    # read, as ImageFolder does: its one image is a copy of a/a00.png (the same noise seed)
    assert report["duplicates"] == [{"class": "a", "kept": "a/a00.png", "removed": ["a/nested/nested00.png"]}]
    assert report["warnings"] == [
        f"1 file(s) directly in '{root}' are in no class folder and are not used: readme.txt",
        f"folder '{root / 'fear'}' (6 files) is not one of the classes ['a', 'b']; its files are not used"]
    data = folder_data(tiny_raw, root)
    assert report["total"]["used"] == 12 and sum(split_counts(tmp_path / "out", 0, data.split)["train"].values()) == 6


def test_a_failed_write_leaves_the_previous_output(tiny_raw, tmp_path, monkeypatch):
    data = folder_data(tiny_raw, write_classes(tmp_path / "photos"))
    run(tmp_path, data)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # a stage killed half way through writing
    monkeypatch.setattr(prepare, "write_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, data)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- every per-file failure is a listed skip; environment errors are `error:` lines; no debris

def test_any_decoder_exception_is_a_listed_skip_naming_the_file(tiny_raw, tmp_path, monkeypatch):
    from facelab.data import images
    root = write_classes(tmp_path / "photos")
    (root / "a" / "broken.avif").write_bytes(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 64)
    real_load = Image.Image.load

    # what a decoder plugin raises on a corrupt file (AVIF: RuntimeError, DDS: NotImplementedError)
    def plugin_load(self):
        if getattr(self, "filename", "").endswith("a03.png"):
            raise NotImplementedError("Unimplemented pixel format")
        if getattr(self, "filename", "").endswith("b02.png"):
            raise RuntimeError("Failed to decode image")
        return real_load(self)
    monkeypatch.setattr(images.Image.Image, "load", plugin_load)
    counts, report = run(tmp_path, folder_data(tiny_raw, root, max_bad_fraction=0.5))
    skipped = {s["file"]: (s["reason"], s["detail"]) for s in report["skipped"]}
    assert skipped["a/a03.png"] == (CORRUPT, "NotImplementedError: Unimplemented pixel format")
    assert skipped["b/b02.png"] == (CORRUPT, "RuntimeError: Failed to decode image")
    assert skipped["a/broken.avif"][0] in (CORRUPT, NOT_IMAGE)
    assert report["total"]["used"] == 10


def test_a_file_name_that_is_not_utf8_is_kept_and_written_escaped(tiny_raw, tmp_path):
    import os
    root = write_classes(tmp_path / "photos")
    name = os.fsdecode(b"caf\xe9.png")  # a Latin-1 name, as old Windows disks have
    noise(999).save(root / "a" / name)
    counts, report = run(tmp_path, folder_data(tiny_raw, root))
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert "a/caf\\xe9.png" in manifest["file"].tolist()
    assert report["total"]["used"] == 13


@pytest.mark.parametrize("path, message", [
    ("~nosuchuser_facelab/photos", r"^data.emotion.path: cannot expand '~nosuchuser_facelab/photos' \(.*\); "
                                   r"write the full path instead$"),
])
def test_a_path_that_cannot_be_expanded_is_an_error(tiny_raw, tmp_path, path, message):
    with pytest.raises(DataError, match=message):
        run(tmp_path, folder_data(tiny_raw, path))


def test_a_path_that_is_a_file_says_so(tiny_raw, tmp_path):
    (tmp_path / "photos.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"^image folder '.*photos.zip' is a file, not a folder; set data.<task>.path"):
        run(tmp_path, folder_data(tiny_raw, tmp_path / "photos.zip"))


def test_a_class_folder_of_sub_folders_is_read_at_every_depth(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos")
    for i, path in enumerate(sorted((root / "b").iterdir())):
        (root / "b" / ("2019" if i < 3 else "2020/summer")).mkdir(parents=True, exist_ok=True)
        path.rename(root / "b" / ("2019" if i < 3 else "2020/summer") / path.name)
    _, report = run(tmp_path, folder_data(tiny_raw, root))
    files = set(pd.read_csv(tmp_path / "out" / "manifest.csv")["file"])
    assert {"b/2019/b00.png", "b/2020/summer/b05.png"} <= files and report["classes"]["b"]["used"] == 6


def test_an_unreadable_class_folder_is_an_error_naming_it_and_the_fix(tiny_raw, tmp_path):
    import os
    if os.geteuid() == 0:
        pytest.skip("root reads every folder whatever its permissions")
    root = write_classes(tmp_path / "photos")
    (root / "b").chmod(0)
    try:
        with pytest.raises(DataError, match=r"cannot be listed \(permission denied\); give this user read"):
            run(tmp_path, folder_data(tiny_raw, root))
    finally:
        (root / "b").chmod(0o755)


def test_a_killed_runs_scratch_files_and_folders_are_removed_at_the_next_start(tiny_raw, tmp_path):
    data = folder_data(tiny_raw, write_classes(tmp_path / "photos"))
    debris = [tmp_path / ".out.1f2e3d.pixels.tmp", tmp_path / ".data.json.77aa.tmp"]
    for path in debris:
        path.write_bytes(b"x" * 100)
    (tmp_path / ".out.0a0b0c.tmp").mkdir()
    (tmp_path / ".out.0a0b0c.tmp" / "train_x.npy").write_bytes(b"half")
    run(tmp_path, data)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_read_only_report_folder_leaves_data_and_report_as_they_were(tiny_raw, tmp_path, monkeypatch):
    """The data folder is replaced only once the report has been written: the pair never disagrees."""
    root = write_classes(tmp_path / "photos")
    run(tmp_path, folder_data(tiny_raw, root))
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    report_before = (tmp_path / "data.json").read_text()
    noise(12345).save(root / "a" / "new.png")  # the data changed
    real_write = Path.write_text

    def read_only_folder(self, *args, **kwargs):  # root ignores chmod: refuse files in the report's folder
        if self.name.startswith(".data.json."):
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", read_only_folder)
    with pytest.raises(PermissionError):
        run(tmp_path, folder_data(tiny_raw, root))
    monkeypatch.undo()
    assert (tmp_path / "data.json").read_text() == report_before
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_too_few_images_says_what_was_dropped_on_the_way_and_keeps_the_old_output(tiny_raw, tmp_path):
    root = write_classes(tmp_path / "photos")
    run(tmp_path, folder_data(tiny_raw, root))
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    for path in sorted((root / "b").iterdir())[:3]:  # the same pixels filed under both classes: all copies dropped
        (root / "a" / f"copy_{path.name}").write_bytes(path.read_bytes())
    with pytest.raises(DataError, match=r"^too few images to split into train/val/test: b: 3 .*\. What prepare "
                                        r"found: 15 files: 9 used, 0 skipped \(none\), 0 duplicate copies removed, "
                                        r"6 dropped for conflicting labels$"):
        run(tmp_path, folder_data(tiny_raw, root))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_other_os_errors_keep_their_traceback():
    from facelab.cli import command_main
    with pytest.raises(ConnectionResetError):
        command_main(lambda: (_ for _ in ()).throw(ConnectionResetError(104, "reset")))()
