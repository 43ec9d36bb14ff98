"""Near-duplicates through the edits people make: copies cut out of a photo anywhere up to 10% a side (one, two or
all sides, any mix, portrait photos cut at the top), flipped, turned and EXIF-rotated land in their photo's group;
two different photos do not, even when one's size allows it to be cut out of the other (benchmarks/README.md,
"Near-duplicates through edits")."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facelab.data import cuts, faces, near
from facelab.data.cuts import Photos, anchor_candidates, anchored_regions, cut_bits, grey_squares, paired
from facelab.data.dataset import summary
from facelab.data.images import Decoded, decode_image
from facelab.data.near import near_groups
from facelab.data.phash import MAX_BITS, bit_distance, hashes
from facelab.params import parse_params
from tests.conftest import REAL_DATA, splits_of
from tests.test_near import run

T = Image.Transpose
CROPS = {"5% a side": (.05, .05, .05, .05), "10% a side": (.1, .1, .1, .1), "left 10%": (.1, 0, 0, 0),
         "top 10%": (0, .1, 0, 0), "left and top 10%": (.1, .1, 0, 0), "left and right 10%": (.1, 0, .1, 0)}
TURNS = {"quarter turn": T.ROTATE_90, "half turn": T.ROTATE_180, "three quarters": T.ROTATE_270,
         "upside down": T.FLIP_TOP_BOTTOM, "transposed": T.TRANSPOSE, "transversed": T.TRANSVERSE}


def cropped(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), w - round(right * w), h - round(bottom * h)))


def grouped(decoded: list[Decoded]) -> np.ndarray:
    """near_groups of decoded files, as prepare searches them: hashes, squares and the files' sizes."""
    pixels = np.stack([d.square for d in decoded])
    photos = Photos(pixels, np.arange(len(decoded)), np.array([d.size for d in decoded]))
    return near_groups(hashes(pixels), photos=photos)


def copies(image: Image.Image, folder) -> dict[str, Decoded]:
    """The photo and its edited copies, each saved as a JPEG and decoded as prepare decodes it (64 px)."""
    edited = {"original": image} | {name: cropped(image, *cut) for name, cut in CROPS.items()}
    edited |= {name: image.transpose(how) for name, how in TURNS.items()}
    edited["10% a side, turned"] = cropped(image, .1, .1, .1, .1).transpose(T.ROTATE_90)
    out: dict[str, Decoded] = {}
    for name, copy in edited.items():
        path = folder / f"{len(out)}.jpg"
        copy.save(path, quality=90)
        out[name] = decode_image(path, 64)
    exif = Image.Exif()
    exif[0x0112] = 6  # the same pixels, shown turned by the viewer (and by prepare's decoder)
    image.save(folder / "exif.jpg", quality=90, exif=exif)
    out["EXIF orientation 6"] = decode_image(folder / "exif.jpg", 64)
    return out


def apart(groups: np.ndarray, names: list[str]) -> list[str]:
    """The copies not in the original's (row 0's) group."""
    return [name for name, group in zip(names, groups) if group != groups[0]]


def generated_photo(seed: int) -> Image.Image:
    """A made photo: a generated face at 160 px."""
    return Image.fromarray(faces.generate_emotions(2, 2, 160, seed=seed)[0][0])


def test_cut_and_turned_copies_of_a_made_photo_are_one_group_and_a_cut_of_another_photo_is_not(tmp_path):
    family = copies(generated_photo(1), tmp_path)
    # another photo whose size allows it to have been cut out of the first: it is checked against it, and refused
    saved_square(cropped(generated_photo(2), .05, .05, .05, .05), tmp_path / "other.jpg")
    names = list(family) + ["a cut of another photo"]
    groups = grouped(list(family.values()) + [decode_image(tmp_path / "other.jpg", 64)])
    assert apart(groups, names) == ["a cut of another photo"]


@pytest.mark.skipif(not (REAL_DATA / "face-lfw-frames").is_dir(), reason=f"real data not at {REAL_DATA}")
def test_cropped_and_turned_copies_of_real_photos_stay_with_them_and_two_photos_of_one_man_stay_apart(tmp_path):
    first, second = sorted((REAL_DATA / "face-lfw-frames" / "target").glob("*.jpg"))[:2]
    with Image.open(first) as image:
        family = copies(image.convert("RGB"), tmp_path)
    names = list(family) + ["another photo of him"]
    groups = grouped(list(family.values()) + [decode_image(second, 64)])
    assert apart(groups, names) == ["another photo of him"]


def saved_square(image: Image.Image, path) -> Decoded:
    image.save(path, quality=90)
    return decode_image(path, 64)



@pytest.mark.skipif(not (REAL_DATA / "face-yaleb").is_dir(), reason=f"real data not at {REAL_DATA}")
def test_portrait_photos_cut_at_the_top_are_found_and_not_merged_with_one_another(tmp_path):
    # Yale B's photos are 168 x 192: prepare keeps the centre square, so a copy cut 10% at the top is the original's
    # square moved down by about 6% of its side, partly outside it: what both show is compared. One man, one pose,
    # 64 lights: the photos themselves are alike.
    photos = sorted((REAL_DATA / "face-yaleb" / "target").glob("*.png"))
    decoded = []
    for k, path in enumerate(photos):
        with Image.open(path) as image:
            decoded += [decode_image(path, 64), saved_square(cropped(image.convert("RGB"), 0, .1, 0, 0),
                                                             tmp_path / f"{k}.jpg")]
    groups = grouped(decoded).reshape(-1, 2)
    found = int((groups[:, 0] == groups[:, 1]).sum())
    assert found == len(photos), f"{found} of {len(photos)} top-cut copies grouped with their photo"
    assert len(set(groups[:, 0].tolist())) >= len(photos) - 1  # at most one pair of the 64 photos merged


def test_copies_cut_between_the_windows_are_grouped_with_their_photo(tmp_path):
    # 2% a side, 7% at the bottom and left/top/right/bottom 3/8/6/1% lie between the windows phash.py hashes (the
    # hashes alone missed them); each keeps its photo's pixel pitch, so the search for cut copies finds them
    image = generated_photo(1)
    decoded = [saved_square(image, tmp_path / "original.jpg")]
    for k, cut in enumerate([(.02, .02, .02, .02), (0, 0, 0, .07), (.03, .08, .06, .01)]):
        decoded.append(saved_square(cropped(image, *cut), tmp_path / f"{k}.jpg"))
    groups = grouped(decoded)
    assert (groups == groups[0]).all(), f"groups {groups.tolist()}: copies apart from their photo (row 0)"
    pixels = np.stack([d.square for d in decoded])
    assert len(set(near_groups(hashes(pixels)).tolist())) > 1  # the hashes alone do not find them all


def test_only_files_whose_sizes_allow_a_cut_are_candidates(tmp_path):
    image = generated_photo(3)
    decoded = [saved_square(image, tmp_path / "a.jpg"), saved_square(cropped(image, .05, 0, 0, 0), tmp_path / "b.jpg"),
               saved_square(image.resize((100, 100)), tmp_path / "c.jpg")]
    assert [d.size for d in decoded] == [(160, 160), (152, 160), (100, 100)]
    pixels = np.stack([d.square for d in decoded])
    roots = np.arange(3)
    # b fits in a (95% of its width); c is too small to be cut from either; a is too large to be cut from b
    pairs, regions = anchor_candidates(Photos(pixels, roots, np.array([d.size for d in decoded])), roots)
    assert pairs.tolist() == [[1, 0, 0]] and regions > 0  # b as it is (k 0: not turned)
    # one size (a camera's, generated faces) or no size (face crops): no pair
    assert len(anchor_candidates(Photos(pixels, roots, np.array([(160, 160)] * 3)), roots)[0]) == 0
    pairs, regions = anchor_candidates(Photos(pixels, roots, np.zeros((3, 2), int)), roots)
    assert len(pairs) == regions == 0


def test_only_images_of_a_size_that_pairs_with_another_are_hashed_for_cut_copies():
    # a camera's photos (100 x 100), one file that could be cut out of them turned (95 x 90), one too small to be
    # cut out of anything (50 x 50), one of unknown size (a face crop)
    sizes = np.array([(100, 100)] * 3 + [(95, 90), (50, 50), (0, 0)])
    assert paired(sizes).tolist() == [0, 1, 2, 3]
    assert paired(sizes[[0, 1, 4, 5]]).tolist() == []  # no size pairs with another: nothing hashed
    assert paired(sizes, most=2).tolist() == [0, 1, 2, 3, 4]  # too many sizes to pair: every known one


def test_flat_squares_have_no_anchored_regions_and_a_band_key_too_many_regions_share_is_left_out(tmp_path, monkeypatch):
    flat = np.full((3, 64, 64, 3), 128, np.uint8)  # one colour at three sizes that allow cuts: nothing to anchor on
    assert len(anchored_regions(Photos(flat, np.arange(3), np.array([(100, 100), (90, 95), (95, 90)])),
                                np.arange(3))[0]) == 0
    image = generated_photo(3)
    decoded = [saved_square(image, tmp_path / "a.jpg"), saved_square(cropped(image, .05, 0, 0, 0), tmp_path / "b.jpg")]
    photos = Photos(np.stack([d.square for d in decoded]), np.arange(2), np.array([d.size for d in decoded]))
    assert anchor_candidates(photos, np.arange(2))[0].tolist() == [[1, 0, 0]]
    monkeypatch.setattr(cuts, "ANCHOR_SHARED", 1)  # every key the copy shares with its photo is shared by 2 regions
    assert len(anchor_candidates(photos, np.arange(2))[0]) == 0


def test_the_anchored_regions_of_a_mirrored_photo_are_its_regions_mirrored(tmp_path):
    # each region is centred on a point the content marks, so a flip moves the points with the pixels (a region
    # centred on a pixel's index instead of its centre would be half a pixel off in the flipped axis)
    image = generated_photo(5).resize((150, 140))
    decoded = [saved_square(image, tmp_path / "a.png"), saved_square(image.transpose(T.FLIP_LEFT_RIGHT),
                                                                     tmp_path / "mirror.png")]
    photos = Photos(np.stack([d.square for d in decoded]), np.arange(2), np.array([d.size for d in decoded]))
    owner, side, flips = anchored_regions(photos, np.arange(2))
    mine, mirrored = flips[owner == 0, 1], flips[owner == 1, 0]  # the photo's regions mirrored; the mirror's own
    assert len(mine) == len(mirrored) >= 8 and sorted(side[owner == 0]) == sorted(side[owner == 1])
    assert bit_distance(mine[:, None], mirrored[None]).min(1).max() <= 2


def test_a_cut_copy_in_each_flip_and_turn_is_a_candidate_at_the_turn_that_undoes_it(tmp_path):
    image = generated_photo(4)
    cut = cropped(image, .03, .08, .06, .01)
    for how in [None, *T]:
        copy = cut.transpose(how) if how is not None else cut
        decoded = [saved_square(image, tmp_path / "photo.jpg"), saved_square(copy, tmp_path / "copy.jpg")]
        pixels, sizes = np.stack([d.square for d in decoded]), np.array([d.size for d in decoded])
        pairs, _ = anchor_candidates(Photos(pixels, np.arange(2), sizes), np.arange(2))
        assert pairs[:, :2].tolist() == [[1, 0]], (how, pairs)
        # the turn it says is the one under which the copy's square lies in the photo's
        bits = cut_bits(grey_squares(pixels), sizes, np.ones(1, int), np.zeros(1, int), pairs[:, 2])
        assert bits[0] <= MAX_BITS, (how, pairs, bits)


def test_a_file_turned_by_exif_has_its_turned_size_and_a_face_crop_none(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (120, 90), "grey").save(tmp_path / "turned.jpg", exif=exif)
    assert decode_image(tmp_path / "turned.jpg", 32).size == (90, 120)
    assert decode_image(tmp_path / "turned.jpg", 32, box=(0, 0, 60, 60)).size == (0, 0)


def test_copies_cut_out_of_photos_of_a_near_size_are_found(tmp_path):
    """Two cameras of near sizes: photos at 160 x 120, copies at 158 x 118, 3 cut out of 3 photos (one mirrored) and 3
    of other photos: the 3 cuts, and only they, join their photos."""
    images = [generated_photo(seed) for seed in range(9)]
    decoded = [saved_square(image.resize((160, 120)), tmp_path / f"photo{k}.jpg") for k, image in enumerate(images[:6])]
    for k, (left, top) in enumerate([(0, 0), (1, 2), (2, 1)]):
        cut = images[k].resize((160, 120)).crop((left, top, left + 158, top + 118))
        decoded.append(saved_square(cut.transpose(T.FLIP_LEFT_RIGHT) if k == 2 else cut, tmp_path / f"cut{k}.jpg"))
    decoded += [saved_square(image.resize((158, 118)), tmp_path / f"other{k}.jpg")
                for k, image in enumerate(images[6:])]
    pixels, sizes = np.stack([d.square for d in decoded]), np.array([d.size for d in decoded])
    found, search = near.near_search(hashes(pixels), photos=Photos(pixels, np.arange(len(pixels)), sizes))
    assert search is not None and search.found == 3 and search.sizes == 2
    assert [found[6 + k] == found[k] for k in range(3)] == [True] * 3
    assert len(set(found.tolist())) == len(decoded) - 3


def test_prepare_keeps_copies_cut_anywhere_in_their_photos_split(tiny_raw, tmp_path):
    root = tmp_path / "photos"
    images, _ = faces.generate_emotions(16, 12, 120, seed=7)
    groups = []
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(8):
            image = Image.fromarray(images[8 * k + i])
            image.save(root / name / f"{i}.png")
            if name == "a" and i < 3:
                cut = [(.02, .02, .02, .02), (0, 0, 0, .07), (.03, .08, .06, .01)][i]
                cropped(image, *cut).save(root / name / f"{i}_cut.jpg", quality=90)
                groups.append(sorted([f"a/{i}.png", f"a/{i}_cut.jpg"]))
    _, report, _ = run(tiny_raw, tmp_path, root, near_duplicates="group", cut_copies="search")
    assert sorted(sorted(e["files"]) for e in report["near_duplicates"]["examples"]) == groups
    # what the search did is in data.json and prepare's lines: 16 photos of one size and 3 cut copies of 3 others
    cuts = report["near_duplicates"]["cut_copies"]
    assert (cuts["mode"], cuts["images"], cuts["sizes"], cuts["found"]) == ("search", 19, 4, 3)
    assert cuts["regions"] >= 19 and cuts["checked"] >= 3, cuts
    assert (f"copies cut out of a photo: 19 files at 4 sizes, {cuts['regions']:,} anchored regions hashed, "
            f"{cuts['checked']:,} candidate pairs checked, 3 copies found") in summary(report), summary(report)
    assert (tmp_path / "out" / "sizes.npy").is_file()  # for evaluate's search
    for seed in (0, 1, 2):
        split_of = splits_of(tmp_path / "out", seed, parse_params(tiny_raw).data["emotion"].split)
        for group in groups:
            assert len({split_of[name] for name in group}) == 1, {name: split_of[name] for name in group}
    # skipped: the hashes alone, which miss these cuts; no sizes kept for evaluate either
    _, skipped, _ = run(tiny_raw, tmp_path, root, near_duplicates="group", cut_copies="skip")
    assert skipped["near_duplicates"]["cut_copies"] == {"mode": "skip"}
    assert len(skipped["near_duplicates"]["examples"]) < len(groups), skipped["near_duplicates"]["examples"]
    assert "copies cut out of a photo: not searched (data.<task>.cut_copies: skip)" in summary(skipped)
    assert not (tmp_path / "out" / "sizes.npy").exists()
