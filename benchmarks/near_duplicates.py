"""Near-duplicate search on edited copies of real photos: recall (each copy grouped with its original), false merges
of distinct photos of one person, and the cost per image. Prints figures; nothing is written to the repository.

    python3 -m benchmarks.near_duplicates --cost 10000 --mixed 2000
    python3 -m benchmarks.near_duplicates --cost 0 --mixed 0 --hashes-only   # without the search for cut copies
    python3 -m benchmarks.near_duplicates --cost 0 --mixed 0 --cameras 2000 --near-sizes-real   # near sizes

Each original is one real photo of one person (Colin Powell's 100 LFW frames, yaleB01's 64 Yale B photos; read in
place from ../shared/data/real/). Its family is the original and one copy per EDITS entry, saved as people save them
(JPEG quality 90 unless the edit says otherwise; EXIF-rotated copies carry the same pixels and an orientation tag)
and decoded by prepare's own decoder at 64 px. All families of one person go through facelab.data.near together, as
prepare would see them in one class folder, so a chain through copies counts as a merge.
- recall: copies in their original's group (through any copies of the family, as prepare sees them; "pair alone":
  when only the original and that copy are searched); families whole: families of which the original and every
  copy (NAMED) are in one group; "DONE_WHEN edits alone": the same with only the copies whose edits the issue's
  "done when" names, searched without the others.
- false merges: pairs of distinct originals of the person that share a group (transitively, through any copies).
- search: near_groups with the files' sizes (prepare's search: hashes, then cut copies), or the hashes alone.
- cost: phash.hashes and near.near_groups on N generated faces at 64 px (prepare's own images, which are no
  files: no cut search), per image; --mixed: near_groups on distinct generated faces saved at mixed sizes, where most
  pairs' sizes allow a cut, with and without the cut search; --cameras: the same at two near sizes;
  --near-sizes-real: real photos and their cuts at a near size.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

from facelab.data import faces, prepare
from facelab.data.cuts import Photos
from facelab.data.images import decode_image
from facelab.data.near import near_groups, near_search
from facelab.data.phash import hashes
from facelab.params import parse_params, raw_params

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
PEOPLE = {"lfw Colin_Powell": ("face-lfw-frames/target", "*.jpg"), "yaleb yaleB01": ("face-yaleb/target", "*.png")}
IMG_SIZE = 64
T = Image.Transpose


def crop(left: float = 0, top: float = 0, right: float = 0, bottom: float = 0) -> Callable[[Image.Image], Image.Image]:
    """Cut the given share of the width or height off each side."""
    def edit(image: Image.Image) -> Image.Image:
        w, h = image.size
        return image.crop((round(left * w), round(top * h), w - round(right * w), h - round(bottom * h)))
    return edit


def turn(how: Image.Transpose) -> Callable[[Image.Image], Image.Image]:
    return lambda image: image.transpose(how)


def resize(share: float) -> Callable[[Image.Image], Image.Image]:
    return lambda image: image.resize((round(image.width * share), round(image.height * share)),
                                      Image.Resampling.BICUBIC)


def same(image: Image.Image) -> Image.Image:
    return image


# name: (pixel edit, how it is saved). "exif6": the original's pixels with EXIF orientation 6 (decoded turned 90°).
# The edits issue 32 names: crops of up to 10% a side (all sides, one side, two sides, amounts between 5% and 10% and
# asymmetric mixes; on Yale B's portrait photos a top cut moves prepare's centre square), the 8 flips and turns,
# EXIF-rotated, re-saved, resized, mirrored.
NAMED: dict[str, tuple[Callable[[Image.Image], Image.Image], str]] = {
    "jpeg30": (same, "q30"),
    "resize90": (resize(0.9), "q90"),
    "mirror": (turn(T.FLIP_LEFT_RIGHT), "q90"),
    "crop2": (crop(.02, .02, .02, .02), "q90"),
    "crop5": (crop(.05, .05, .05, .05), "q90"),
    "crop10": (crop(.1, .1, .1, .1), "q90"),
    "left10": (crop(left=.1), "q90"),
    "top10": (crop(top=.1), "q90"),
    "bottom7": (crop(bottom=.07), "q90"),
    "left10+top10": (crop(left=.1, top=.1), "q90"),
    "left10+right10": (crop(left=.1, right=.1), "q90"),
    "right5+bottom10": (crop(right=.05, bottom=.1), "q90"),
    "mix 3-8-6-1": (crop(.03, .08, .06, .01), "q90"),  # left/top/right/bottom, %
    "mix 9-2-0-7": (crop(.09, .02, 0, .07), "q90"),
    "mix 1-10-4-6": (crop(.01, .1, .04, .06), "q90"),
    "top8+mirror": (lambda image: crop(top=.08)(image).transpose(T.FLIP_LEFT_RIGHT), "q90"),
    "rot90": (turn(T.ROTATE_90), "q90"),
    "rot180": (turn(T.ROTATE_180), "q90"),
    "rot270": (turn(T.ROTATE_270), "q90"),
    "flip_ud": (turn(T.FLIP_TOP_BOTTOM), "q90"),
    "transpose": (turn(T.TRANSPOSE), "q90"),
    "transverse": (turn(T.TRANSVERSE), "q90"),
    "exif6": (same, "exif6"),
    "crop10+rot90+q30": (lambda image: crop(.1, .1, .1, .1)(image).transpose(T.ROTATE_90), "q30"),
    "mix 7-3-2-9+rot270": (lambda image: crop(.07, .03, .02, .09)(image).transpose(T.ROTATE_270), "q90"),
}
EDITS = NAMED
# The edits of the first "done when" line alone (5% and 10% crops, quarter-turns, EXIF-rotated, re-saved,
# resized, mirrored): its families are whole when each original and these copies, searched without the others
# (no chain through a 2% or asymmetric crop), share one group.
DONE_WHEN = ("jpeg30", "resize90", "mirror", "crop5", "crop10", "left10", "top10", "left10+top10", "left10+right10",
             "right5+bottom10", "rot90", "rot180", "rot270", "flip_ud", "transpose", "transverse", "exif6",
             "crop10+rot90+q30")


def save_copy(image: Image.Image, edit: str, path: Path) -> None:
    change, how = EDITS[edit]
    copy = change(image.convert("RGB"))
    if how == "exif6":
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: the viewer turns it 90° clockwise
        copy.save(path, quality=95, exif=exif)
    else:
        copy.save(path, quality=int(how[1:]))


def family_pixels(originals: list[Path], folder: Path) -> tuple[Photos, np.ndarray, list[str]]:
    """Each original and its edited copies, decoded as prepare decodes them: pixels and file sizes, family index,
    edit name."""
    decoded, family, kind = [], [], []
    for f, original in enumerate(originals):
        decoded.append(decode_image(original, IMG_SIZE))
        family.append(f)
        kind.append("original")
        with Image.open(original) as image:
            image.load()
            for edit in EDITS:
                path = folder / f"{f:04d}_{edit}.jpg"
                save_copy(image, edit, path)
                decoded.append(decode_image(path, IMG_SIZE))
                family.append(f)
                kind.append(edit)
    photos = Photos(np.stack([d.square for d in decoded]), np.arange(len(decoded)),
                    np.array([d.size for d in decoded], np.int64))
    return photos, np.array(family), kind


def families_whole(groups: np.ndarray, family: np.ndarray, families: int) -> int:
    """How many families have all their images in one group."""
    return sum(len(set(groups[family == f])) == 1 for f in range(families))


def person_figures(name: str, photos: Photos, family: np.ndarray, kind: list[str], cut: bool = True) -> dict:
    """Recall, families whole and merges of one person's families; cut: search for cut copies too (near_groups'
    photos), else the hashes alone."""
    packed = hashes(photos.pixels)

    def groups_of(rows: np.ndarray) -> np.ndarray:
        return near_groups(packed[rows], photos=Photos(photos.pixels, photos.rows[rows], photos.sizes[rows])
                           if cut else None)

    started = time.perf_counter()
    groups = groups_of(np.arange(len(kind)))
    seconds = time.perf_counter() - started
    originals = np.flatnonzero(np.array(kind) == "original")
    group_of_family = groups[originals]
    found = {edit: 0 for edit in EDITS}
    alone = {edit: 0 for edit in EDITS}  # grouped when only the original and this copy are searched
    for i, edit in enumerate(kind):
        if edit != "original":
            found[edit] += int(groups[i] == group_of_family[family[i]])
            pair = groups_of(np.array([originals[family[i]], i]))
            alone[edit] += int(pair[0] == pair[1])
    whole = families_whole(groups, family, len(originals))
    listed = np.flatnonzero(np.isin(kind, ("original", *DONE_WHEN)))
    whole_listed = families_whole(groups_of(listed), family[listed], len(originals))
    pairs = list(combinations(range(len(originals)), 2))
    merged = sum(group_of_family[a] == group_of_family[b] for a, b in pairs)
    copies = len(EDITS) * len(originals)
    return {"person": name, "families": len(originals), "recall": sum(found.values()) / copies,
            "alone": sum(alone.values()) / copies, "whole": whole, "whole_listed": whole_listed, "pairs": len(pairs),
            "merged": merged, "per_edit": found, "per_edit_alone": alone, "seconds": seconds, "images": len(kind)}


def cost(n_images: int) -> tuple[float, float]:
    """Seconds per 1,000 generated faces: hashes, then near_groups (the data set prepare_scale times)."""
    labels, stream = faces.stream_face_identity(n_images, 0.1667, 60, IMG_SIZE, 42)
    pixels = np.stack(list(stream))
    started = time.perf_counter()
    packed = hashes(pixels)
    hashed = time.perf_counter()
    near_groups(packed)
    done = time.perf_counter()
    return 1000 * (hashed - started) / n_images, 1000 * (done - hashed) / n_images


def mixed_sizes(n_images: int, folder: Path, cameras: bool = False) -> tuple[float, float, int, int, int, float, float]:
    """Distinct generated faces (160 px, 12 identities) each saved at its own size (width and height drawn from 128
    to 160 px, so most pairs' sizes allow a cut), or with cameras, half at 160 x 120 and half at 158 x 118 (two
    cameras of near sizes: each photo of the one is a size that could be cut out of each of the other): the search's
    seconds per 1,000 images with the cut search and with the hashes alone; how many images the cut search puts in a
    group with another, the anchored regions it hashed and the pairs it checked; and prepare's seconds per 1,000 on
    the folder (two class folders, the emotion task's defaults) with data.emotion.cut_copies search and skip."""
    rng = np.random.default_rng(0)
    images, _ = faces.generate_emotions(n_images, 12, 160, 11)
    for i, pixels in enumerate(images):
        drawn = tuple(rng.integers(128, 161, 2).tolist())
        size = ((160, 120) if 2 * i < n_images else (158, 118)) if cameras else drawn
        (folder / "photos" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).resize(size).save(folder / "photos" / "ab"[i % 2] / f"{i}.jpg", quality=90)
    decoded = [decode_image(folder / "photos" / "ab"[i % 2] / f"{i}.jpg", IMG_SIZE) for i in range(n_images)]
    pixels = np.stack([d.square for d in decoded])
    packed = hashes(pixels)
    started = time.perf_counter()
    alone = near_groups(packed)
    hashed = time.perf_counter()
    groups, cuts = near_search(packed, photos=Photos(pixels, np.arange(n_images), np.array([d.size for d in decoded])))
    done = time.perf_counter()
    assert cuts is not None
    grouped = int((np.bincount(groups)[groups] > 1).sum()) - int((np.bincount(alone)[alone] > 1).sum())
    prepared = []
    for cut_copies in ("search", "skip"):
        raw = raw_params(ROOT / "params.yaml")
        raw["data"]["emotion"].update(source="folder", path=str(folder / "photos"), classes=["a", "b"],
                                      cut_copies=cut_copies)
        began = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            prepare.prepare_task("emotion", parse_params(raw).data["emotion"], 0, folder / cut_copies)
        prepared.append(1000 * (time.perf_counter() - began) / n_images)
    return (1000 * (done - hashed) / n_images, 1000 * (hashed - started) / n_images, grouped, cuts.regions,
            cuts.checked, prepared[0], prepared[1])


def near_sizes_real(real: Path, folder: Path) -> str:
    """Real photos at two near sizes: 300 LFW frames at 350 x 350, 100 of them cut to 346 x 344 at random places
    (JPEG 90), and 300 other frames resized to 346 x 344. A line: the search's seconds, what the cut search did, and
    how many cuts share their photo's group."""
    rng = np.random.default_rng(0)
    files = sorted((real / "face-lfw-frames").glob("*/*.jpg"))[:600]
    if len(files) < 600:
        raise SystemExit(f"fewer than 600 photos under {real / 'face-lfw-frames'}: point --real at the shared data")
    decoded = [decode_image(path, IMG_SIZE) for path in files[:300]]
    for i, path in enumerate(files[:100]):
        left, top = int(rng.integers(0, 5)), int(rng.integers(0, 7))
        with Image.open(path) as image:
            image.convert("RGB").crop((left, top, left + 346, top + 344)).save(folder / f"cut{i}.jpg", quality=90)
        decoded.append(decode_image(folder / f"cut{i}.jpg", IMG_SIZE))
    for i, path in enumerate(files[300:]):
        with Image.open(path) as image:
            image.convert("RGB").resize((346, 344)).save(folder / f"other{i}.jpg", quality=90)
        decoded.append(decode_image(folder / f"other{i}.jpg", IMG_SIZE))
    pixels = np.stack([d.square for d in decoded])
    packed, photos = hashes(pixels), Photos(pixels, np.arange(len(pixels)), np.array([d.size for d in decoded]))
    started = time.perf_counter()
    groups, search = near_search(packed, photos=photos)
    seconds = time.perf_counter() - started
    assert search is not None
    together = sum(int(groups[300 + i] == groups[i]) for i in range(100))
    return (f"{seconds:.2f} s, {search.regions:,} anchored regions hashed, {search.checked} pairs checked, "
            f"{search.found} found by the cut search; {together} of the 100 cuts in their photo's group")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--cost", type=int, default=10000, help="generated faces to time the search on (0: skip)")
    parser.add_argument("--hashes-only", action="store_true", help="the hashes alone, no search for cut copies")
    parser.add_argument("--cameras", type=int, default=0,
                        help="distinct faces saved at two near sizes (two cameras) to time the cut search on (0: skip)")
    parser.add_argument("--near-sizes-real", action="store_true",
                        help="LFW photos and their cuts at a near size")
    parser.add_argument("--mixed", type=int, default=2000,
                        help="distinct faces saved at mixed sizes to time the cut search on (0: skip)")
    args = parser.parse_args(argv)
    rows = []
    for name, (sub, pattern) in PEOPLE.items():
        originals = sorted((args.real / sub).glob(pattern))
        if not originals:
            raise SystemExit(f"no {pattern} under {args.real / sub}: point --real at the shared real data folder")
        with tempfile.TemporaryDirectory() as folder:
            rows.append(person_figures(name, *family_pixels(originals, Path(folder)), cut=not args.hashes_only))
    print(f"{len(NAMED)} copies per original with the edits the issue names; decoded at {IMG_SIZE} px:")
    print("| person | originals | recall | recall, pair alone | families whole | families whole, DONE_WHEN edits alone "
          "| distinct pairs | merged (rate) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['person']} | {r['families']} | {r['recall']:.1%} | {r['alone']:.1%} | {r['whole']} / "
              f"{r['families']} | {r['whole_listed']} / {r['families']} | {r['pairs']:,} | "
              f"{r['merged']} ({r['merged'] / r['pairs']:.2%}) |")
    for r in rows:
        print(f"{r['person']}: the search over all {r['images']:,} images took {r['seconds']:.1f} s")
    print("\nper edit: copies grouped with their original, with the whole family / the pair alone:")
    print("| edit | " + " | ".join(r["person"] for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for edit in EDITS:
        print(f"| {edit} | " + " | ".join(f"{r['per_edit'][edit]} / {r['per_edit_alone'][edit]} / {r['families']}"
                                          for r in rows) + " |")
    if args.cost:
        hash_ms, group_ms = cost(args.cost)
        print(f"\ncost on {args.cost:,} generated faces at {IMG_SIZE} px: hashes {hash_ms:.3f} s, near_groups "
              f"{group_ms:.3f} s per 1,000 images (x50 for 50k: {50 * (hash_ms + group_ms):.1f} s); generated faces "
              "are no files, so prepare does not search them for cut copies")
    for n_images, cameras, saved in ((args.mixed, False, " saved at mixed sizes (128-160 px a side)"),
                                     (args.cameras, True, ", half at 160 x 120 and half at 158 x 118 (two cameras)")):
        if not n_images:
            continue
        with tempfile.TemporaryDirectory() as folder:
            cut_s, alone_s, grouped, regions, checked, search_s, skip_s = mixed_sizes(n_images, Path(folder), cameras)
        print(f"\n{n_images:,} distinct generated faces{saved}: near_groups {cut_s:.3f} s per 1,000 images with the "
              f"cut search ({regions:,} anchored regions hashed, {checked:,} pairs checked), {alone_s:.3f} s with the "
              f"hashes alone; {grouped} more images in a group through the cut search; prepare on these files "
              f"{search_s:.2f} s per 1,000 with the cut search, {skip_s:.2f} s without")
    if args.near_sizes_real:
        with tempfile.TemporaryDirectory() as folder:
            line = near_sizes_real(args.real, Path(folder))
        print(f"\n300 LFW photos at 350 x 350, 100 of them cut to 346 x 344 and 300 others resized to it: {line}")


if __name__ == "__main__":
    main()
