"""Near-duplicates through the edits people make: copies cropped by 5% or 10% (on one, two or all sides), flipped,
turned and EXIF-rotated land in their photo's group, and most portrait photos cut at the top do; two different photos
do not. Crops by other amounts are mostly missed (benchmarks/README.md, "Near-duplicates through edits")."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facelab.data import faces
from facelab.data.images import decode_image
from facelab.data.near import hashes, near_groups
from tests.conftest import REAL_DATA

T = Image.Transpose
CROPS = {"5% a side": (.05, .05, .05, .05), "10% a side": (.1, .1, .1, .1), "left 10%": (.1, 0, 0, 0),
         "top 10%": (0, .1, 0, 0), "left and top 10%": (.1, .1, 0, 0), "left and right 10%": (.1, 0, .1, 0)}
TURNS = {"quarter turn": T.ROTATE_90, "half turn": T.ROTATE_180, "three quarters": T.ROTATE_270,
         "upside down": T.FLIP_TOP_BOTTOM, "transposed": T.TRANSPOSE, "transversed": T.TRANSVERSE}


def cropped(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), w - round(right * w), h - round(bottom * h)))


def copies(image: Image.Image, folder) -> dict[str, np.ndarray]:
    """The photo and its edited copies, each saved as a JPEG and decoded as prepare decodes it (64 px)."""
    edited = {"original": image} | {name: cropped(image, *cut) for name, cut in CROPS.items()}
    edited |= {name: image.transpose(how) for name, how in TURNS.items()}
    edited["10% a side, turned"] = cropped(image, .1, .1, .1, .1).transpose(T.ROTATE_90)
    out: dict[str, np.ndarray] = {}
    for name, copy in edited.items():
        path = folder / f"{len(out)}.jpg"
        copy.save(path, quality=90)
        out[name] = decode_image(path, 64).square
    exif = Image.Exif()
    exif[0x0112] = 6  # the same pixels, shown turned by the viewer (and by prepare's decoder)
    image.save(folder / "exif.jpg", quality=90, exif=exif)
    out["EXIF orientation 6"] = decode_image(folder / "exif.jpg", 64).square
    return out


def apart(groups: np.ndarray, names: list[str]) -> list[str]:
    """The copies not in the original's (row 0's) group."""
    return [name for name, group in zip(names, groups) if group != groups[0]]


def generated_photo(seed: int) -> Image.Image:
    """A made photo: a generated face at 160 px."""
    return Image.fromarray(faces.generate_emotions(2, 2, 160, seed=seed)[0][0])


def test_cropped_and_turned_copies_of_a_made_photo_are_one_group_and_another_photo_is_not(tmp_path):
    family = copies(generated_photo(1), tmp_path)
    other = generated_photo(2)
    other.save(tmp_path / "other.png")
    names = list(family) + ["another photo"]
    pixels = np.stack(list(family.values()) + [decode_image(tmp_path / "other.png", 64).square])
    groups = near_groups(hashes(pixels))
    assert apart(groups, names) == ["another photo"]


@pytest.mark.skipif(not (REAL_DATA / "face-lfw-frames").is_dir(), reason=f"real data not at {REAL_DATA}")
def test_cropped_and_turned_copies_of_real_photos_stay_with_them_and_two_photos_of_one_man_stay_apart(tmp_path):
    first, second = sorted((REAL_DATA / "face-lfw-frames" / "target").glob("*.jpg"))[:2]
    with Image.open(first) as image:
        family = copies(image.convert("RGB"), tmp_path)
    names = list(family) + ["another photo of him"]
    pixels = np.stack(list(family.values()) + [decode_image(second, 64).square])
    groups = near_groups(hashes(pixels))
    assert apart(groups, names) == ["another photo of him"]



def saved_square(image: Image.Image, path) -> np.ndarray:
    image.save(path, quality=90)
    return decode_image(path, 64).square



@pytest.mark.skipif(not (REAL_DATA / "face-yaleb").is_dir(), reason=f"real data not at {REAL_DATA}")
def test_portrait_photos_cut_at_the_top_are_found_through_their_windows_and_not_merged_with_one_another(tmp_path):
    # Yale B's photos are 168 x 192: prepare keeps the centre square, so a copy cut 10% at the top is the original's
    # square moved down by about 6% of its side, partly outside it, which no window of the original holds. Before
    # windows were matched against windows none was found alone; now about 60% are (benchmarks/near_duplicates.py).
    photos = sorted((REAL_DATA / "face-yaleb" / "target").glob("*.png"))
    squares = []
    for k, path in enumerate(photos):
        with Image.open(path) as image:
            squares += [decode_image(path, 64).square,
                        saved_square(cropped(image.convert("RGB"), 0, .1, 0, 0), tmp_path / f"{k}.jpg")]
    groups = near_groups(hashes(np.stack(squares))).reshape(-1, 2)
    found = int((groups[:, 0] == groups[:, 1]).sum())
    assert found >= len(photos) // 2, f"{found} of {len(photos)} top-cut copies grouped with their photo"
    assert len(set(groups[:, 0].tolist())) == len(photos)  # no two of the photos merged


@pytest.mark.xfail(strict=True, reason="crops between the searched windows are not found yet (issue 32; "
                                       "benchmarks/README.md, 'Near-duplicates through edits'): remove this mark "
                                       "when the search finds them")
def test_copies_cropped_between_the_windows_are_grouped_with_their_photo(tmp_path):
    # 2% a side, 7% at the bottom and left/top/right/bottom 3/8/6/1% lie between the windows near.py hashes; each is
    # within 8 bits of its photo at its own window, which the search does not look at. Strict: when a change finds
    # them this test passes, pytest reports it, and the mark goes.
    image = generated_photo(1)
    squares = [saved_square(image, tmp_path / "original.jpg")]
    for k, cut in enumerate([(.02, .02, .02, .02), (0, 0, 0, .07), (.03, .08, .06, .01)]):
        squares.append(saved_square(cropped(image, *cut), tmp_path / f"{k}.jpg"))
    groups = near_groups(hashes(np.stack(squares)))
    assert (groups == groups[0]).all(), f"groups {groups.tolist()}: copies apart from their photo (row 0)"
