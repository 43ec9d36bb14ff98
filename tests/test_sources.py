import numpy as np
import pytest
from PIL import Image

from stages.sources import DataError, decode_image, folder_images
from tests.conftest import REAL_DATA

needs_real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data not found at {REAL_DATA}")


@needs_real
def test_folder_source_reads_real_yale_faces():
    images = folder_images(REAL_DATA / "face-yaleb", ("other", "target"), 32)
    assert images.pixels.shape == (384, 32, 32, 3) and images.pixels.dtype == np.uint8
    assert np.bincount(images.labels).tolist() == [320, 64]
    assert images.files[0].startswith("other/") and images.files[-1].startswith("target/yaleB01")
    # greyscale sources become RGB with three equal channels
    assert np.array_equal(images.pixels[..., 0], images.pixels[..., 2])


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: the left half ends on top
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    pixels = decode_image(tmp_path / "rotated.jpg", 32)
    assert pixels[4, 16, 0] > 200 and pixels[4, 16, 2] < 60    # top: red
    assert pixels[28, 16, 2] > 200 and pixels[28, 16, 0] < 60  # bottom: blue


def test_transparent_png_becomes_white_and_16_bit_is_scaled(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    rgba.save(tmp_path / "clear.png")
    assert decode_image(tmp_path / "clear.png", 32).min() == 255
    deep = Image.fromarray(np.tile(np.array([0, 65535], np.uint16), (8, 4)).astype(np.uint16))
    deep.save(tmp_path / "deep.png")
    pixels = decode_image(tmp_path / "deep.png", 32)
    assert pixels.min() == 0 and pixels.max() == 255


def test_missing_or_empty_class_folder_is_named_with_counts(tmp_path):
    (tmp_path / "happy").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "happy" / "a.png")
    (tmp_path / "sad").mkdir()
    with pytest.raises(DataError, match=r"'.*angry' is missing, '.*sad' is empty .*happy: 1"):
        folder_images(tmp_path, ("angry", "happy", "sad"), 32)


def test_unreadable_image_names_the_file(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "ok.png")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"cannot decode image '.*broken.jpg'"):
        folder_images(tmp_path, ("a", "b"), 32)
