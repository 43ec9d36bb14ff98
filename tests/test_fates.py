"""Every file prepare finds is used, ignored (not an image file: listed, never counted as bad) or skipped with its
reason, and metrics/<task>/data.json says which, on real files the tests write."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facelab.data import prepare
from facelab.data.detect import largest_face
from facelab.data.images import LINK_LOOP, NON_FINITE, NOT_IMAGE, TOO_SMALL, BadImage, decode_image
from facelab.errors import DataError
from facelab.params import parse_params
from tests.conftest import REAL_DATA

SPLIT = {"train": 0.5, "val": 0.25, "test": 0.25}
YALE = REAL_DATA / "face-yaleb"


def noise(seed: int, size=(24, 24)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8))


def classes_of(root, per_class: int = 8):
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise(100 * k + i).save(root / name / f"{name}{i:02d}.png")
    return root


def run(tiny_raw, tmp_path, root, **overrides) -> dict:
    tiny_raw["data"]["emotion"].update(source="folder", path=str(root), classes=["a", "b"], split=SPLIT, **overrides)
    prepare.prepare_task("emotion", parse_params(tiny_raw).data["emotion"], 0, tmp_path / "out", tmp_path / "data.json")
    return json.loads((tmp_path / "data.json").read_text())


def float_tiff(path, bad: float) -> None:
    pixels = np.random.default_rng(0).uniform(0, 1, (24, 24)).astype(np.float32)
    pixels[3, 4] = bad
    Image.fromarray(pixels, mode="F").save(path)


def test_a_takeout_export_prepares_with_its_sidecars_listed_as_ignored(tiny_raw, tmp_path):
    root = classes_of(tmp_path / "Takeout", per_class=8)
    for photo in sorted(root.glob("*/*.png")):  # Google Takeout: a .json beside every photo
        (photo.parent / f"{photo.name}.json").write_text(json.dumps({"title": photo.name, "photoTakenTime": {}}))
    (root / "a" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    (root / "a" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (root / "b" / "README.txt").write_text("my photos")
    report = run(tiny_raw, tmp_path, root, max_bad_fraction=0.0)
    assert report["total"]["used"] == 16 and report["total"]["ignored"] == 19 and report["total"]["skipped"] == 0
    assert report["total"]["found"] == 35 and report["bad_fraction"] == 0.0
    ignored = {row["file"]: row for row in report["ignored"]}
    assert set(ignored) == ({f"a/a{i:02d}.png.json" for i in range(8)} | {f"b/b{i:02d}.png.json" for i in range(8)}
                            | {"a/Thumbs.db", "a/desktop.ini", "b/README.txt"})
    assert ignored["a/Thumbs.db"] == {"file": "a/Thumbs.db", "class": "a", "detail": (
        "neither its suffix (.db) nor its content is an image's; listed, not counted toward max_bad_fraction")}
    assert report["skipped"] == [] and report["classes"]["a"]["ignored"] == 10


def test_an_image_by_content_is_used_whatever_its_suffix_and_a_photo_suffix_with_text_is_bad(tiny_raw, tmp_path):
    root = classes_of(tmp_path / "photos")
    noise(77).save(root / "a" / "scan.dat", format="PNG")  # an image with an odd suffix: used
    (root / "b" / "notes.jpg").write_text("not a picture")  # a photo's suffix, no image inside: counted as bad
    report = run(tiny_raw, tmp_path, root, max_bad_fraction=0.1)
    assert report["classes"]["a"]["used"] == 9
    assert ([(s["file"], s["reason"], s["counts_as_bad"]) for s in report["skipped"]]
            == [("b/notes.jpg", NOT_IMAGE, True)])
    assert report["ignored"] == []


@pytest.mark.parametrize("bad, name", [(float("nan"), "nan.tif"), (float("inf"), "inf.tif")])
def test_a_float_tiff_with_a_non_finite_pixel_is_skipped_not_used_as_black(tiny_raw, tmp_path, bad, name):
    float_tiff(tmp_path / name, bad)
    with pytest.raises(BadImage) as error:
        decode_image(tmp_path / name, 32)
    assert (error.value.reason, error.value.detail) == (
        NON_FINITE, "1 of 576 pixels are NaN or infinite (a float F image); re-export it with finite values")
    root = classes_of(tmp_path / "photos")
    float_tiff(root / "a" / "one.tif", bad)
    float_tiff(root / "b" / "two.tif", bad)  # two such files were once "copies" of each other
    report = run(tiny_raw, tmp_path, root, max_bad_fraction=0.2)
    assert [(s["file"], s["reason"]) for s in report["skipped"]] == [("a/one.tif", NON_FINITE),
                                                                     ("b/two.tif", NON_FINITE)]
    assert report["conflicts"] == [] and report["total"]["used"] == 16


def test_an_image_under_min_side_is_skipped_as_too_small(tiny_raw, tmp_path):
    root = classes_of(tmp_path / "photos")
    noise(1, (1, 1)).save(root / "a" / "pixel.png")
    noise(2, (40, 10)).save(root / "b" / "strip.png")
    noise(3, (16, 16)).save(root / "b" / "just.png")  # exactly min_side: used
    report = run(tiny_raw, tmp_path, root, max_bad_fraction=0.2, min_side=16)
    assert [(s["file"], s["reason"], s["detail"]) for s in report["skipped"]] == [
        ("a/pixel.png", TOO_SMALL, "1x1 pixels, under data.<task>.min_side = 16 on its shorter side; it would "
                                   "become a flat square"),
        ("b/strip.png", TOO_SMALL, "40x10 pixels, under data.<task>.min_side = 16 on its shorter side; it would "
                                   "become a flat square")]
    assert report["classes"]["b"]["used"] == 9


def test_an_animated_gif_uses_its_first_frame_and_says_so(tiny_raw, tmp_path):
    root = classes_of(tmp_path / "photos")
    frames = [noise(50 + i) for i in range(3)]
    frames[0].save(root / "a" / "burst.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    report = run(tiny_raw, tmp_path, root)
    assert report["first_frame_only"] == [{"file": "a/burst.gif", "frames": 3}]
    first = decode_image(root / "a" / "burst.gif", 24)
    still = tmp_path / "first.gif"
    frames[0].save(still)
    assert first.frames == 3 and np.array_equal(first.square, decode_image(still, 24).square)


def test_a_loop_of_file_links_is_a_link_loop_not_a_corrupt_file(tiny_raw, tmp_path):
    root = classes_of(tmp_path / "photos")
    (root / "a" / "x.png").symlink_to(root / "a" / "y.png")
    (root / "a" / "y.png").symlink_to(root / "a" / "x.png")
    report = run(tiny_raw, tmp_path, root, max_bad_fraction=0.2)
    assert [(s["file"], s["reason"]) for s in report["skipped"]] == [("a/x.png", LINK_LOOP), ("a/y.png", LINK_LOOP)]
    assert report["skipped"][0]["detail"] == (f"'{root / 'a' / 'x.png'}' is a link that leads back to itself; "
                                              f"replace it with the file it should point to")


def test_heic_photos_decode_through_pillow_heif(tiny_raw, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    if not pillow_heif.libheif_info().get("encoders"):
        pytest.skip("this libheif build cannot encode HEIC, so the test cannot write one")
    root = classes_of(tmp_path / "photos")
    noise(9, (40, 30)).save(root / "a" / "IMG_0001.HEIC", quality=95)
    report = run(tiny_raw, tmp_path, root)
    assert report["skipped"] == [] and report["classes"]["a"]["used"] == 9
    square = decode_image(root / "a" / "IMG_0001.HEIC", 24).square
    assert square.shape == (24, 24, 3) and square.std() > 20  # real pixels, not a flat fallback


@pytest.mark.skipif(not YALE.is_dir(), reason=f"real faces not present: {YALE} (the shared test data)")
@pytest.mark.e2e  # runs OpenCV's face detector, both passes, over real photos until 16 faces are found
def test_misses_of_the_detector_alone_over_the_limit_say_so_and_name_the_knob(tiny_raw, tmp_path):
    from tests.test_detect import frontal_lit, paste
    rng, root = np.random.default_rng(3), tmp_path / "photos"
    faces = iter(frontal_lit(YALE))
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        found = 0
        while found < 8:  # photos the detector finds a face in, and one noise photo per class without
            with Image.open(next(faces)) as face:
                canvas, _ = paste(face, rng)
            if largest_face(canvas) is not None:
                Image.fromarray(canvas).save(root / name / f"{found}.png")
                found += 1
        Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(root / name / "noise.png")
    with pytest.raises(DataError) as error:
        run(tiny_raw, tmp_path, root, faces="detect", max_bad_fraction=0.05)
    message = str(error.value)
    assert message.startswith("2 of 18 files cannot be used (11.1%, over data.emotion.max_bad_fraction = 0.05)")
    assert ("a/noise.png (no face found by the detector: OpenCV's Haar cascades found no face, frontal or profile"
            in message)
    assert message.endswith(
        "2 of these are photos in which the face detector found no face (data.emotion.faces: detect); without those "
        "misses the folder would pass. OpenCV's Haar cascades miss small, turned or dark faces: crop those photos to "
        "the face by hand, set data.emotion.faces_fallback: center to use their centre square, or raise "
        "data.emotion.max_bad_fraction to 0.17 to train without them. Remove or replace "
        "them, or raise data.emotion.max_bad_fraction to go on without them (data.json then lists them all)")
