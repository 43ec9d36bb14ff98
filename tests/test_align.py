"""faces: align (facelab.data.align and its use in prepare's decoding): the similarity transform on eyes the test
places itself, MTCNN on a real face turned 20 degrees inside a made frame, and the faces_fallback of a photo with no
face."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from facelab.data.align import EYE_DISTANCE, EYE_HEIGHT, Landmarks, align_face, eye_transform, largest_face_landmarks
from facelab.data.images import NO_FACE, BadImage, Entry, decode_image, read_files
from facelab.errors import ParamsError
from facelab.params import parse_params

FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "face-lfw-frames"
needs_frames = pytest.mark.skipif(not FRAMES.is_dir(), reason=f"real faces not present: {FRAMES} (the shared data)")


def eye_angle(found: Landmarks) -> float:
    """Degrees of the line from the image-left eye to the other, clockwise on screen (y runs down)."""
    (lx, ly), (rx, ry) = found.left_eye, found.right_eye
    return float(np.degrees(np.arctan2(ry - ly, rx - lx)))


def turned_in_frame(face: Image.Image, degrees: float, size: int = 320, at: tuple[int, int] = (60, 50)) -> np.ndarray:
    """The face turned counter-clockwise by `degrees` and pasted into a plain size x size frame (no black corners)."""
    frame = Image.new("RGB", (size, size), (90, 110, 100))
    mask = Image.new("L", face.size, 255).rotate(degrees, Image.Resampling.BICUBIC, expand=True)
    frame.paste(face.rotate(degrees, Image.Resampling.BICUBIC, expand=True), at, mask)
    return np.asarray(frame)


def noise(path: Path, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("left, right, side", [((40.0, 60.0), (90.0, 42.0), 150), ((10.0, 10.0), (13.0, 14.0), 64),
                                               ((200.0, 80.0), (120.0, 95.0), 300)])
def test_eye_transform_takes_the_eyes_to_their_level_places(left, right, side):
    matrix = eye_transform(left, right, side)
    moved = matrix @ np.array([[*left, 1.0], [*right, 1.0]]).T
    half = EYE_DISTANCE * side / 2
    np.testing.assert_allclose(moved.T, [[side / 2 - half, EYE_HEIGHT * side], [side / 2 + half, EYE_HEIGHT * side]],
                               atol=1e-9)
    linear = matrix[:, :2]  # a similarity: a rotation times one scale, no shear, no mirror
    np.testing.assert_allclose(linear @ linear.T, np.eye(2) * np.linalg.det(linear), atol=1e-9)
    assert np.linalg.det(linear) > 0


def test_align_face_levels_two_marked_eyes_turned_20_degrees():
    """Two dark discs at the eyes of a 20-degree eye line: after align_face they sit level at their fixed places."""
    image = Image.new("RGB", (240, 200), (230, 230, 230))
    centre, half = np.array([120.0, 100.0]), 30.0
    turn = np.radians(20)
    offset = half * np.array([np.cos(turn), np.sin(turn)])
    eyes = (tuple(centre - offset), tuple(centre + offset))
    draw = ImageDraw.Draw(image)
    for x, y in eyes:
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(0, 0, 0))
    landmarks = Landmarks((60, 40, 180, 170), *eyes, (120.0, 120.0), (105.0, 140.0), (135.0, 140.0))
    aligned = align_face(np.asarray(image), landmarks)
    side = aligned.shape[0]
    assert aligned.shape == (side, side, 3) and side == round(2 * half / EYE_DISTANCE)
    ys, xs = np.nonzero(aligned.mean(axis=2) < 100)
    found = [(xs[part].mean(), ys[part].mean()) for part in (xs < side / 2, xs >= side / 2)]
    target = [(side / 2 - EYE_DISTANCE * side / 2, EYE_HEIGHT * side), (side / 2 + EYE_DISTANCE * side / 2,
                                                                      EYE_HEIGHT * side)]
    np.testing.assert_allclose(found, target, atol=1.0)


@needs_frames
@pytest.mark.parametrize("turn", [20, -20])
def test_a_real_face_turned_20_degrees_comes_out_level_and_whole(turn):
    """MTCNN on a face-lfw-frames photo turned in a larger frame: it sees the turn, and the aligned square holds the
    whole face with the eyes level at their places (found again by MTCNN in the crop)."""
    with Image.open(sorted((FRAMES / "target").glob("*.jpg"))[0]) as photo:
        face = photo.convert("RGB").resize((160, 160))
    upright = largest_face_landmarks(turned_in_frame(face, 0))
    frame = turned_in_frame(face, turn)
    found = largest_face_landmarks(frame)
    assert upright is not None and found is not None
    assert abs(eye_angle(found) - (eye_angle(upright) - turn)) < 5  # PIL turns counter-clockwise
    aligned = align_face(frame, found)
    again = largest_face_landmarks(aligned)
    assert again is not None, "no face in the aligned square"
    side = aligned.shape[0]
    assert abs(eye_angle(again)) < 4
    middle = (np.array(again.left_eye) + np.array(again.right_eye)) / 2
    np.testing.assert_allclose(middle / side, [0.5, EYE_HEIGHT], atol=0.03)
    left, top, right, bottom = again.box
    assert right - left > 0.6 * side and left > -0.1 * side and right < 1.1 * side and top > -0.1 * side


def test_no_face_follows_the_fallback(tmp_path):
    path = noise(tmp_path / "noise.png")
    assert largest_face_landmarks(np.asarray(Image.open(path))) is None
    assert largest_face_landmarks(np.full((200, 200, 3), 128, np.uint8)) is None
    with pytest.raises(BadImage) as skipped:
        decode_image(path, 32, faces="align", fallback="skip")
    assert skipped.value.reason == NO_FACE and "faces: align" in skipped.value.detail
    centred = decode_image(path, 32, faces="align", fallback="center")
    whole = decode_image(path, 32, faces="none")
    assert centred.centred and not whole.centred
    np.testing.assert_array_equal(centred.square, whole.square)
    with pytest.raises(BadImage, match=NO_FACE):  # Haar's detect follows the same fallback
        decode_image(path, 32, faces="detect", fallback="skip")
    assert decode_image(path, 32, faces="detect", fallback="center").centred


def test_read_files_skips_or_keeps_and_names_the_photos_without_a_face(tmp_path):
    entries = [Entry(noise(tmp_path / f"n{i}.png", i), i % 2, f"n{i}.png") for i in range(3)]
    skipped = read_files(entries, ("a", "b"), 32, faces="align", fallback="skip")
    assert len(skipped.files) == 0 and [s.reason for s in skipped.skipped] == [NO_FACE] * 3
    kept = read_files(entries, ("a", "b"), 32, faces="align", fallback="center")
    assert kept.files == ["n0.png", "n1.png", "n2.png"] and kept.skipped == ()
    assert len(kept.warnings) == 1 and kept.warnings[0].startswith("3 photos have no face")
    assert "n0.png, n1.png, n2.png" in kept.warnings[0]


def test_params_take_align_and_its_fallback(tiny_raw):
    tiny_raw["data"]["face"].update(source="folder", path="/photos", faces="align", faces_fallback="center")
    data = parse_params(tiny_raw).data["face"]
    assert (data.faces, data.faces_fallback) == ("align", "center")
    tiny_raw["data"]["face"].update(faces_fallback="crop")
    with pytest.raises(ParamsError, match=r"^data.face.faces_fallback: 'crop' is not one of \['center', 'skip'\]$"):
        parse_params(tiny_raw)
    tiny_raw["data"]["face"].update(source="generated", path=None, faces_fallback="skip")
    with pytest.raises(ParamsError, match=r"^data.face.faces: 'align' finds faces in photos; the generated faces"):
        parse_params(tiny_raw)


@pytest.mark.e2e  # MTCNN over 40 photos: a few seconds
@needs_frames
def test_prepare_with_faces_align_uses_every_photo_and_reports_the_centred_ones(tiny_raw, tmp_path):
    """End to end through prepare on real photos plus faceless noise: with faces_fallback: center every file is used
    and the noise files are named in data.json's warnings; classes.json records faces: align."""
    from facelab.data import prepare

    root = tmp_path / "photos"
    for label in ("other", "target"):
        (root / label).mkdir(parents=True)
        for path in sorted((FRAMES / label).glob("*.jpg"))[:18]:
            (root / label / path.name).symlink_to(path)
        for j in range(2):
            noise(root / label / f"noise{j}.png", seed=10 * j + len(label))
    tiny_raw["data"]["face"].update(source="folder", path=str(root), faces="align", faces_fallback="center",
                                    img_size=48, split={"train": 0.5, "val": 0.25, "test": 0.25})
    prepare.prepare_task("face", parse_params(tiny_raw).data["face"], 0, tmp_path / "out", tmp_path / "data.json")
    report = json.loads((tmp_path / "data.json").read_text())
    assert report["total"]["skipped"] == 0
    centred = [w for w in report["warnings"] if "used as their centre square" in w]
    assert len(centred) == 1 and all(f"{label}/noise{j}.png" in centred[0] for label in ("other", "target")
                                     for j in range(2))
    assert json.loads((tmp_path / "out" / "classes.json").read_text())["faces"] == "align"


def test_the_refusal_names_align_and_the_fallback(tmp_path):
    """When align's misses alone put a folder over max_bad_fraction, the message says MTCNN missed them and how to
    keep them."""
    from facelab.data.images import Skipped
    from facelab.data.quality import detector_note

    with pytest.raises(BadImage) as miss:
        decode_image(noise(tmp_path / "n.png"), 32, faces="align")
    rows = [Skipped(f"a/{i}.png", "a", NO_FACE, miss.value.detail) for i in range(2)]
    note = detector_note(rows, 20, 0.05, "data.face")
    assert note.startswith("2 of these are photos in which the face detector found no face (data.face.faces: align)")
    assert "MTCNN misses small, turned or dark faces" in note and "data.face.faces_fallback: center" in note


def test_predict_skips_a_photo_without_a_face_for_an_aligned_model(tmp_path):
    """facelab predict decodes as the model's prepare did (faces: align); it has no fallback: a faceless photo is a
    listed skip."""
    from facelab.commands.inference import decode_files

    path = noise(tmp_path / "noise.png")
    pixels, kept, skipped, _ = decode_files([path], 32, faces="align")
    assert kept == [] and [(s.reason, s.file) for s in skipped] == [(NO_FACE, str(path))]
