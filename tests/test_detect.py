"""Face finding: real Yale B faces pasted into random noise are found and cropped with their centre and area."""
import re

import numpy as np
import pytest
from PIL import Image

from facelab.data.detect import crop_face, expand_box, largest_face
from tests.conftest import REAL_DATA

YALE = REAL_DATA / "face-yaleb"
CANVAS = 400


def frontal_lit(folder):
    """Yale B images lit from within 25 degrees of the camera (file names hold azimuth A and elevation E);
    under side light half the face is black and no frontal-face cascade finds it."""
    files = []
    for path in sorted(folder.glob("*/*.png")):
        lighting = re.search(r"A([+-]\d+)E([+-]\d+)", path.name)
        assert lighting, f"no azimuth and elevation in {path.name}"
        azimuth, elevation = map(int, lighting.groups())
        if abs(azimuth) <= 25 and abs(elevation) <= 25:
            files.append(path)
    return files


def paste(face: Image.Image, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The face, scaled to 100-160 px high, at a random place on a white-noise canvas; and where it went."""
    canvas = rng.integers(0, 256, (CANVAS, CANVAS, 3), dtype=np.uint8)
    height = int(rng.integers(100, 161))
    width = round(height * face.width / face.height)
    top, left = int(rng.integers(0, CANVAS - height)), int(rng.integers(0, CANVAS - width))
    canvas[top:top + height, left:left + width] = np.asarray(face.convert("RGB").resize((width, height),
                                                                                        Image.Resampling.BICUBIC))
    return canvas, (left, top, left + width, top + height)


def overlap(a, b) -> float:
    """The share of box b's area inside box a."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return width * height / ((b[2] - b[0]) * (b[3] - b[1]))


@pytest.mark.e2e  # the detector over 120 real photos pasted into 400 px canvases
@pytest.mark.skipif(not YALE.is_dir(), reason=f"real faces not present: {YALE} (the shared test data)")
def test_pasted_real_faces_are_found_and_the_crop_holds_them():
    rng = np.random.default_rng(0)
    files = frontal_lit(YALE)
    assert len(files) == 120
    files = files[::2]  # every other one: the two-pass detector takes a while per photo
    found, good = 0, 0
    for path in files:
        with Image.open(path) as face:
            canvas, where = paste(face, rng)
        box = largest_face(canvas)
        if box is None:
            continue
        found += 1
        crop = expand_box(box, 0.2, CANVAS, CANVAS)
        centre = ((where[0] + where[2]) / 2, (where[1] + where[3]) / 2)
        holds_centre = crop[0] <= centre[0] <= crop[2] and crop[1] <= centre[1] <= crop[3]
        good += holds_centre and overlap(crop, where) >= 0.8
    # measured with the first pass only: 55 of 120 found, 53 of those good (Yale's crops are tight, brow to chin);
    # with the second pass (finer steps, fewer neighbours, profile cascades): 87 found, 74 good. The second pass's
    # boxes are looser, but it finds 21 more good crops than the first pass alone.
    assert found >= 0.6 * len(files)
    assert good >= 0.8 * found and good >= 0.55 * len(files)


def test_random_noise_holds_no_face():
    rng = np.random.default_rng(1)
    assert all(largest_face(rng.integers(0, 256, (CANVAS, CANVAS, 3), dtype=np.uint8)) is None for _ in range(3))


def test_image_smaller_than_the_cascade_window_has_no_face_and_wrong_arrays_are_refused():
    assert largest_face(np.zeros((20, 30, 3), np.uint8)) is None
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        largest_face(np.zeros((64, 64), np.uint8))


def test_crop_grows_the_box_by_the_margin_and_stays_inside_the_image():
    image = np.arange(100 * 80 * 3, dtype=np.int64).reshape(100, 80, 3)  # 80 wide, 100 high
    assert expand_box((20, 30, 60, 70), 0.25, 80, 100) == (10, 20, 70, 80)
    assert expand_box((0, 0, 40, 40), 0.5, 80, 100) == (0, 0, 60, 60)  # clipped at the top-left corner
    assert expand_box((50, 80, 80, 100), 0.2, 80, 100) == (44, 76, 80, 100)  # and at the bottom-right
    crop = crop_face(image, (20, 30, 60, 70), margin=0.25)
    np.testing.assert_array_equal(crop, image[20:80, 10:70])
    np.testing.assert_array_equal(crop_face(image, (20, 30, 60, 70), margin=0), image[30:70, 20:60])


@pytest.mark.e2e  # the detector over 80 photos twice: about 10 s
@pytest.mark.skipif(not YALE.is_dir(), reason=f"real faces not present: {YALE} (the shared test data)")
def test_prepare_with_faces_detect_crops_photos_to_their_face_and_counts_those_without(tiny_raw, tmp_path):
    """End to end through prepare: pasted faces are cropped to the face; blank noise images are skipped as
    'no face found', counted in data.json and toward max_bad_fraction."""
    import json

    from facelab.data import prepare
    from facelab.data.images import NO_FACE
    from facelab.params import parse_params

    rng = np.random.default_rng(1)
    root = tmp_path / "photos"
    files = frontal_lit(YALE)
    kept = {}
    for label, people in (("other", files[:20]), ("target", files[60:80])):
        (root / label).mkdir(parents=True)
        for i, path in enumerate(people):
            with Image.open(path) as face:
                canvas, where = paste(face, rng)
            if largest_face(canvas) is not None:  # keep the ones the detector finds, plus 3 faceless per class
                Image.fromarray(canvas).save(root / label / f"{i:03d}.png")
                kept[f"{label}/{i:03d}.png"] = where
        for j in range(3):
            Image.fromarray(rng.integers(0, 256, (CANVAS, CANVAS, 3), dtype=np.uint8)).save(
                root / label / f"noise{j}.png")
    tiny_raw["data"]["face"].update(source="folder", path=str(root), faces="detect", img_size=64,
                                    split={"train": 0.5, "val": 0.25, "test": 0.25}, max_bad_fraction=0.2)
    data = parse_params(tiny_raw).data["face"]
    prepare.prepare_task("face", data, 0, tmp_path / "out", tmp_path / "data.json")
    report = json.loads((tmp_path / "data.json").read_text())
    assert report["skipped_by_reason"] == {NO_FACE: 6}
    assert sorted(s["file"] for s in report["skipped"]) == sorted(f"{c}/noise{j}.png" for c in ("other", "target")
                                                                  for j in range(3))
    assert report["total"]["used"] == len(kept)
    assert json.loads((tmp_path / "out" / "classes.json").read_text())["faces"] == "detect"
    # a crop is mostly face (the Yale crops are grey-level photos), not the colour noise around it
    pixels = np.load(tmp_path / "out" / "images.npy").astype(int)
    colour = np.abs(pixels - pixels.mean(axis=3, keepdims=True)).mean()
    assert colour < 20, colour  # white noise around a face would give about 50


def test_predict_applies_the_models_face_setting(tmp_path):
    from facelab.commands.inference import decode_files
    from facelab.data.images import NO_FACE
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    pixels, kept, skipped, centred = decode_files([tmp_path / "noise.png"], 32, faces="detect")
    assert kept == [] == centred and [(s.reason, s.file) for s in skipped] == [(NO_FACE, str(tmp_path / "noise.png"))]
    pixels, kept, skipped, centred = decode_files([tmp_path / "noise.png"], 32)  # faces: none keeps the whole image
    assert kept == [tmp_path / "noise.png"] and pixels.shape == (1, 32, 32, 3) and centred == []
    # faces_fallback: center, as the model's card records it: the photo is scored whole, and said to be
    whole, kept, skipped, centred = decode_files([tmp_path / "noise.png"], 32, faces="detect", fallback="center")
    assert kept == centred == [tmp_path / "noise.png"] and skipped == [] and np.array_equal(whole, pixels)
