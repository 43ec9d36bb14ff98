"""Near-duplicates: re-saved, resized, mirrored, CMYK and 16-bit copies of a photo are found by their perceptual hash
and never cut across train/val/test; `drop` keeps one copy, a group with two classes is dropped; banded search finds
what comparing every pair finds."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image, ImageOps

from facelab.data import faces, prepare
from facelab.data.near import near_groups
from facelab.data.phash import MAX_BITS, bit_distance, hashes
from facelab.params import parse_params
from tests.conftest import splits_of

SPLIT = {"train": 0.5, "val": 0.25, "test": 0.25}
COPIES = ("jpeg50", "resized", "mirrored", "cmyk", "grey16")


def copy_of(image: Image.Image, kind: str, path) -> str:
    """Save a copy of image as people make them; returns the file name written."""
    if kind == "jpeg50":
        image.save(path.with_suffix(".jpg"), quality=50)
        return path.with_suffix(".jpg").name
    if kind == "resized":
        image = image.resize((image.width - 1, image.height - 1), Image.Resampling.BICUBIC)
    elif kind == "mirrored":
        image = ImageOps.mirror(image)
    elif kind == "cmyk":
        image.convert("CMYK").save(path.with_suffix(".jpg"), quality=95)
        return path.with_suffix(".jpg").name
    elif kind == "grey16":
        image = Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)
    image.save(path.with_suffix(".png"))
    return path.with_suffix(".png").name


def photo_folder(root, per_class: int = 10, copied: int = 5):
    """Distinct generated faces at 96 px under a/ and b/; each of the first `copied` of a/ has one copy of each kind
    beside it. Returns the names of each group."""
    images, _ = faces.generate_emotions(2 * per_class, 12, 96, seed=4)
    groups = []
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.fromarray(images[k * per_class + i])
            image.save(root / name / f"{i:02d}.png")
            if name == "a" and i < copied:
                groups.append([f"a/{i:02d}.png"] + [f"a/{copy_of(image, kind, root / 'a' / f'{i:02d}_{kind}')}"
                                                    for kind in COPIES])
    return groups


def run(tiny_raw, tmp_path, root, **overrides):
    tiny_raw["data"]["emotion"].update(source="folder", path=str(root), classes=["a", "b"], split=SPLIT, **overrides)
    counts = prepare.prepare_task("emotion", parse_params(tiny_raw).data["emotion"], 0, tmp_path / "out",
                                  tmp_path / "data.json").counts
    split = parse_params(tiny_raw).data["emotion"].split
    return counts, json.loads((tmp_path / "data.json").read_text()), splits_of(tmp_path / "out", 0, split)


def test_every_kind_of_copy_is_within_the_bit_limit_and_distinct_faces_are_not(tmp_path):
    groups = photo_folder(tmp_path)
    from facelab.data.images import decode_image
    packed = hashes(np.stack([decode_image(tmp_path / name, 64).square for group in groups for name in group]))
    per_group = len(COPIES) + 1
    for g in range(len(groups)):
        original = packed[g * per_group]
        for c, kind in enumerate(COPIES, start=1):
            copy = packed[g * per_group + c]
            distance = min(bit_distance(original[0], copy[0]), bit_distance(original[0], copy[1]))
            assert distance <= MAX_BITS, (groups[g][c], kind, distance)
    originals = packed[::per_group, 0]
    apart = [bit_distance(originals[i], originals[j]) for i in range(len(groups)) for j in range(i)]
    assert min(apart) > 3 * MAX_BITS


def test_groups_of_copies_stay_inside_one_split(tiny_raw, tmp_path):
    groups = photo_folder(tmp_path / "photos")
    counts, report, split_of = run(tiny_raw, tmp_path, tmp_path / "photos", near_duplicates="group")
    near = report["near_duplicates"]
    assert (near["mode"], near["groups"], near["images"], near["removed"], near["conflict_groups"]) == (
        "group", 5, 30, 0, 0)
    assert sorted(sorted(e["files"]) for e in near["examples"]) == sorted(sorted(g) for g in groups)
    for seed in (0, 1, 2):  # every run's split keeps each group whole
        split_of = splits_of(tmp_path / "out", seed, parse_params(tiny_raw).data["emotion"].split)
        for group in groups:
            assert len({split_of[name] for name in group}) == 1, {name: split_of[name] for name in group}
    assert report["total"]["used"] == 45 and len(split_of) == 45


def test_drop_keeps_one_copy_of_each_group_and_two_classes_drop_the_group(tiny_raw, tmp_path):
    root = tmp_path / "photos"
    groups = photo_folder(root)
    Image.open(root / "a" / "05.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "b" / "flipped_a05.png")
    counts, report, split_of = run(tiny_raw, tmp_path, root, near_duplicates="drop")
    near = report["near_duplicates"]
    assert (near["groups"], near["removed"], near["conflict_groups"], near["conflicts_dropped"]) == (5, 25, 1, 2)
    assert near["conflicts"] == [{"files": ["a/05.png", "b/flipped_a05.png"], "classes": ["a", "b"]}]
    assert report["classes"]["a"]["near_duplicates_removed"] == 25 and report["classes"]["a"]["conflicts_dropped"] == 1
    kept = [name for group in groups for name in group if name in split_of]
    assert kept == [group[0] for group in groups]  # the first in path order is kept
    assert "a/05.png" not in split_of and "b/flipped_a05.png" not in split_of
    assert report["total"]["used"] == 9 + 10 and len(split_of) == 19


def test_keep_ignores_near_copies(tiny_raw, tmp_path):
    photo_folder(tmp_path / "photos")
    _, report, split_of = run(tiny_raw, tmp_path, tmp_path / "photos", near_duplicates="keep")
    assert report["near_duplicates"] == {"mode": "keep"} and len(split_of) == 45


def test_banded_search_finds_the_groups_comparing_every_pair_finds():
    rng = np.random.default_rng(0)
    n = 600
    bits = rng.integers(0, 2, (n, 255), dtype=np.uint8)
    for i in range(0, 200, 2):  # planted pairs, 0 to 2 * MAX_BITS bits apart
        flip = rng.choice(255, int(rng.integers(0, 2 * MAX_BITS)), replace=False)
        bits[i + 1] = bits[i]
        bits[i + 1, flip] ^= 1
    bits[300] = bits[301, ::-1]  # a mirror: the mirrored hash of 301 is 300's hash
    mirrored = bits.copy()
    mirrored[301] = bits[300]
    packed = np.stack([np.packbits(bits, axis=1), np.packbits(mirrored, axis=1)], 1)
    groups = near_groups(packed)
    full = np.unpackbits(packed[:, 0], axis=1)[:, :255].astype(int)
    full_m = np.unpackbits(packed[:, 1], axis=1)[:, :255].astype(int)
    distance = np.minimum((full[:, None] != full[None]).sum(-1), (full[:, None] != full_m[None]).sum(-1))
    close = distance <= MAX_BITS
    np.fill_diagonal(close, False)
    pairs = {(i, j) for i, j in zip(*np.nonzero(close)) if i < j}
    assert {(i, j) for i, j in pairs if groups[i] != groups[j]} == set()
    assert len(pairs) > 40 and groups[300] == groups[301]
    together = {(i, j) for i in range(n) for j in range(i + 1, n) if groups[i] == groups[j]}
    assert together == pairs  # no pair grouped that is not within the limit (no chains among these)
