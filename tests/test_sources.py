import numpy as np
import pytest
from PIL import Image

from facelab.data.images import NOT_IMAGE
from facelab.data.sources import folder_images
from facelab.errors import DataError
from tests.conftest import REAL_DATA

needs_real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data not found at {REAL_DATA}")


def save_noise(path, seed, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=None if path.suffix else "PNG")


@needs_real
def test_folder_source_reads_real_yale_faces():
    images = folder_images(REAL_DATA / "face-yaleb", ("other", "target"), 32)
    assert images.pixels.shape == (384, 32, 32, 3) and images.pixels.dtype == np.uint8
    assert np.bincount(images.labels).tolist() == [320, 64]
    assert images.files[0].startswith("other/") and images.files[-1].startswith("target/yaleB01")
    assert len(set(images.digests)) == 384 and images.skipped == () and images.test is None
    # greyscale sources become RGB with three equal channels
    assert np.array_equal(images.pixels[..., 0], images.pixels[..., 2])
    assert images.warnings == (f"1 file(s) directly in '{REAL_DATA / 'face-yaleb'}' are in no class folder "
                               f"and are not used: SOURCE.txt",)


def test_files_are_read_in_sorted_order_whatever_their_suffix(tmp_path):
    for name, seed in (("b.png", 1), ("a.jpeg", 2), ("c_no_suffix", 3)):
        save_noise(tmp_path / "x" / name, seed)
        save_noise(tmp_path / "y" / name, seed + 10)
    images = folder_images(tmp_path, ("x", "y"), 32)
    assert images.files == ["x/a.jpeg", "x/b.png", "x/c_no_suffix", "y/a.jpeg", "y/b.png", "y/c_no_suffix"]
    assert images.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_missing_or_empty_class_folder_is_named_with_counts(tmp_path):
    (tmp_path / "happy").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "happy" / "a.png")
    (tmp_path / "sad").mkdir()
    save_noise(tmp_path / "Angry" / "b.png", 0)
    with pytest.raises(DataError, match=r"'.*angry' is missing, '.*sad' is empty \(files per class: "
                                        r"angry: 0, happy: 1, sad: 0; other folders there: Angry: 1\)"):
        folder_images(tmp_path, ("angry", "happy", "sad"), 32)


def test_missing_root_folder_says_what_to_set(tmp_path):
    with pytest.raises(DataError, match=r"image folder '.*nowhere' does not exist; set data.<task>.path"):
        folder_images(tmp_path / "nowhere", ("a", "b"), 32)


def test_unreadable_image_is_skipped_with_its_reason_not_raised(tmp_path):
    for name in ("a", "b"):
        save_noise(tmp_path / name / "ok.png", ord(name))
    (tmp_path / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    images = folder_images(tmp_path, ("a", "b"), 32)
    assert images.files == ["a/ok.png", "b/ok.png"]
    [skipped] = images.skipped
    assert (skipped.file, skipped.label, skipped.reason, skipped.counted) == ("b/broken.jpg", "b", NOT_IMAGE, True)
