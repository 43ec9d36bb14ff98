"""Copies cut out of a photo anywhere up to CROP_SIDE, for the near-duplicate search (facelab.data.near): found from
the two files' pixel sizes, ranked by their hashes or searched on a grid of places, and checked by the squares' phase
correlation and the pHashes of the part both squares show (join_crops). Pure: arrays in, arrays out."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.fft

from facelab.data import pixels as store
from facelab.data.phash import (
    FLIPS,
    GREY,
    LOW,
    MAX_BITS,
    band_key,
    bands,
    bit_distance,
    equal_keys,
    find,
    region_bits,
    resampling,
    running_rows,
    union,
)

# Cut copies, wherever the cut: a copy cut out of a photo and saved without resizing keeps the photo's pixel pitch,
# so the files' pixel sizes say the copy's scale in the photo exactly and how far it can lie from the photo's corner;
# what is left to find is where, which the squares' phase correlation finds (within those bounds), and the pHashes of
# the part both squares show then say whether it is one photo. Only pairs whose sizes allow it are looked at, so
# photos of one size (a camera's, generated faces) cost nothing here; alike photos at many sizes cost the most
# (benchmarks/README.md, "Near-duplicates through edits").
CROP_SIDE = 0.78  # a cut copy keeps at least this share of the photo's width and of its height (10% off each end)
# groups one copy is checked against at most (the closest photo of each, a group being photos found one already):
# those whose hashes are closest to the copy's; with 8, 4 of Yale B's 64 top-cut copies missed their photo's group
CROP_CHECKS = 16
# ... and up to this many photos of each such group, none a whole copy of another taken: the hashes alone put
# photos of one person in one group (Yale B: 7 pairs of 64 photos), whose closest photo to a copy need not be the
# one it is cut out of (2 of Yale B's 64 right 5% + bottom 10% copies checked against one photo of a group only)
CROP_MEMBERS = 3
# bits under which two photos of a group are one photo (a whole copy, turned or not): Yale B's whole copies (re-saved
# at quality 30, mirrored, turned, EXIF-turned) are within 8 bits of their photo, distinct photos 14 or more apart
CROP_SAME_BITS = 8
# ... and only those within this many bits (of its 8 flips and turns to their square or a window): 99.9% (LFW) and
# 99.8% (Yale B) of the benchmark's cut copies are to their own photo, 0.9% and 20% to another photo of the person
# (72: 6 of Yale B's 64 top-cut copies, whose squares moved, were 74-78 bits from theirs)
CROP_HASH_BITS = 80
# Bits under which the flip or turn that gives them is the copy's: only that one is correlated; above, the copy as it
# is too (a wrong one was in 1 of Yale B's 64 top-cut copies, whose squares moved: 66 bits)
CROP_TURN_BITS = 48
CROP_GRID = 64  # side (pixels) of the grey squares correlated, whatever data.<task>.img_size is
CROP_PAD = 96  # side they are zero-padded to: the circular correlation is exact for shifts from -31 to 32
CROP_PEAKS = 2  # correlation peaks tried per pair: the highest is not always the place (4 found no more)
CROP_STEPS = (-0.25, 0.0, 0.25)  # sub-pixel steps (of CROP_GRID) around a peak at which the pHashes are compared
CROP_NEAR = 2 * MAX_BITS  # bits at a peak under which the steps around it are tried too
CROP_OVERLAP = 0.7  # share of each side the two squares must both show for their pHashes to be compared
CROP_BATCH = 1024  # pairs checked at once (their squares, and up to 2 tries' correlations at CROP_PAD each)
# `oriented`'s k of each flip or turn of the hashes (near_groups' turns: the 4 FLIPS, then each transposed)
TURN_OF_HASH = np.array([0, 7, 5, 2, 4, 1, 3, 6])
CROP_RANKED = 256  # copies whose hash bits to every photo are held at once
# Sizes of many files each, within a few percent of each other (two cameras of near resolutions): ranking each copy
# against each photo is quadratic there, so the photo's region that a copy would be is hashed at the exact scale on a
# grid of CROP_GRID_STEP pixels (of CROP_GRID) over every place the sizes allow, and copies found through equal bands
# within MAX_BITS of one of those (then checked as ranked ones are): on 100 LFW photos cut to 346 x 344 out of
# 350 x 350 among 300 other photos it finds what ranking finds (`python3 -m benchmarks.near_duplicates
# --near-sizes-real`, benchmarks/README.md). Used for a pair of sizes when the grid has at most CROP_GRID_PLACES places
# and the copies' size has at least CROP_GRID_PER_PLACE files per place (where a region hash, ~50 us, costs less than
# ranking every copy against the photo, ~3 us each).
CROP_GRID_STEP = 0.25
CROP_GRID_PLACES = 64
CROP_GRID_PER_PLACE = 20


class Photos(NamedTuple):
    """What the search for cut copies reads besides the hashes: each hashed image's decoded square and the pixel
    size of the file it is the centre square of.

    pixels: (M, S, S, 3) uint8, an array or PixelStore's memmap; rows: (N,) the row of pixels of each hashed image;
    sizes: (N, 2) int (width, height, EXIF orientation applied), (0, 0) where the square is not a file's centre
    square (a face crop, a fixed box, a generated face): those are not searched for cut copies."""
    pixels: np.ndarray
    rows: np.ndarray
    sizes: np.ndarray


class CutSearch(NamedTuple):
    """What the search for cut copies did (join_crops): the images it could search (those whose file's size is
    known), their distinct sizes, the pairs whose sizes allow a cut that it ranked by their hashes (rank_pairs: all
    but those of sizes searched on a grid), the pairs it checked, and the copies it put in one group with a photo."""
    images: int
    sizes: int
    ranked: int
    checked: int
    found: int


def join_crops(parent: np.ndarray, turns: list[np.ndarray], packed: np.ndarray, photos: Photos,
               max_bits: int) -> CutSearch:
    """Unite each image with the photos it is cut out of (see CROP_SIDE): of the images whose size allows it, the
    closest by their hashes in CROP_CHECKS other groups (crop_candidates), and where sizes of many files each allow
    few places, those close at one of them (grid_candidates), checked in rounds (each copy's closest
    first, then its next, each round's pairs at once) so that a copy found is not checked again. turns: the 8 flips
    and turns of each image's hash; packed: `hashes`."""
    known = photos.sizes[photos.sizes.min(1) > 0]
    searched = CutSearch(len(known), len(np.unique(known, axis=0)), rank_pairs(photos.sizes), 0, 0)
    if searched.sizes < 2:  # one size (a camera's) or none (face crops, generated faces): no copy was cut
        return searched
    roots = np.array([find(parent, i) for i in range(len(parent))])
    pairs = np.concatenate([crop_candidates(turns, packed, photos.sizes, roots), grid_candidates(photos, roots)])
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]  # a copy's pairs consecutive, the ranked ones first
    if not len(pairs):
        return searched
    checked = 0
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])  # a copy's candidates are consecutive
    rank = np.arange(len(pairs)) - np.repeat(starts, np.diff(np.r_[starts, len(pairs)]))
    found = np.zeros(len(parent), bool)  # copies united with a photo they are cut out of
    for step in range(int(rank.max()) + 1):
        todo = pairs[rank == step]
        todo = todo[~found[todo[:, 0]]]
        todo = todo[[find(parent, b) != find(parent, a) for b, a in todo[:, :2].tolist()]]
        checked += len(todo)
        for start in range(0, len(todo), CROP_BATCH):
            batch = todo[start:start + CROP_BATCH]
            involved, local = np.unique(batch[:, :2], return_inverse=True)
            local = local.reshape(-1, 2)
            squares = photo_squares(photos, involved)
            # a pair's tries: the turn its hashes say, and the second where they are too far to say it
            tried = np.concatenate([np.arange(len(batch)), np.flatnonzero(batch[:, 3] >= 0)])
            k = np.concatenate([batch[:, 2], batch[batch[:, 3] >= 0, 3]])
            bits = cut_bits(squares, photos.sizes[involved], tried, local[tried, 0], local[tried, 1], k, len(batch))
            for b, a in batch[bits <= max_bits, :2].tolist():
                if not found[b]:  # its other candidates are farther: the photos they are one with find it from theirs
                    union(parent, a, b)
                    found[b] = True
    return searched._replace(checked=checked, found=int(found.sum()))



def crop_candidates(turns: list[np.ndarray], packed: np.ndarray, sizes: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """(P, 4) pairs (copy, photo, flip or turn k of the copy, as `oriented`'s, and a second one or -1): the copy's
    size, so turned, is the photo's or less in each direction, down to CROP_SIDE of it, and not the same size (a
    whole copy is the hashes' to find); photos of CROP_CHECKS other groups (roots: each image's group so far), the
    closest of each and up to CROP_MEMBERS (group_members), by the fewest bits between a photo's square or windows
    and one of the copy's flips and turns whose size fits, within CROP_HASH_BITS. k is that turn; the second, where
    those bits are over CROP_TURN_BITS (too far for the hashes to say the turn), the copy as it is if its size fits,
    else the next closest turn. A copy's pairs are consecutive, closest first."""
    dims, members = size_classes(sizes)
    swaps = swaps_sides(TURN_OF_HASH)  # turns (of `turns`) that swap width and height
    pairs = []
    for u, (width, height) in enumerate(dims.tolist()):
        upright, across = fitting(dims, width, height)
        fits = ranked_sizes(dims, members, u)
        if not len(fits):
            continue
        photos = np.concatenate([members[v] for v in fits])
        counts = [len(members[v]) for v in fits]
        # (photos, 8): whether the copy so turned fits each photo
        turn_fits = np.where(swaps, np.repeat(across[fits], counts)[:, None], np.repeat(upright[fits], counts)[:, None])
        copies = members[u]
        for start in range(0, len(copies), CROP_RANKED):
            chunk = copies[start:start + CROP_RANKED]
            by_turn = np.where(turn_fits, hash_bits(turns, packed, chunk, photos).astype(np.int16), LOW * LOW)
            ranked = np.argsort(by_turn, axis=2, kind="stable")[:, :, :2]
            closest = np.take_along_axis(by_turn, ranked, 2)
            for copy, row, turn_row in zip(chunk.tolist(), closest, ranked):
                order = np.argsort(row[:, 0], kind="stable")
                order = order[row[order, 0] <= CROP_HASH_BITS]
                order = order[roots[photos[order]] != roots[copy]]
                order = order[group_members(turns, packed, photos[order], roots[photos[order]])]
                said = TURN_OF_HASH[turn_row[order, 0]]
                # too far for the hashes to say the turn: the copy as it is too where it fits, else the next turn
                unsure = row[order, 0] > CROP_TURN_BITS
                second = np.where(turn_fits[order, 0], 0, np.where(row[order, 1] < LOW * LOW,
                                                                   TURN_OF_HASH[turn_row[order, 1]], -1))
                second = np.where(unsure & (second != said), second, -1)
                pairs.append(np.stack([np.full(len(order), copy), photos[order], said, second], 1))
    return np.concatenate(pairs).astype(np.int64) if pairs else np.empty((0, 4), np.int64)


def size_classes(sizes: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct (width, height) of the images whose file's size is known (sizes: (N, 2), (0, 0) where not),
    and each one's images."""
    known = np.flatnonzero(sizes.min(1) > 0)
    dims, inverse = np.unique(sizes[known].reshape(-1, 2), axis=0, return_inverse=True)
    return dims, [known[inverse.ravel() == u] for u in range(len(dims))]


def fitting(dims: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Which sizes (dims: (D, 2)) a copy width x height can be cut out of, as it is and turned a quarter."""
    return (cut_fits(width, height, dims[:, 0], dims[:, 1]), cut_fits(height, width, dims[:, 0], dims[:, 1]))


def rank_pairs(sizes: np.ndarray) -> int:
    """How many (copy, photo) pairs the search for cut copies ranks by their hashes (crop_candidates): every pair
    whose sizes allow a cut, but those of sizes searched on a grid (grid_places), counted from the sizes alone, so
    prepare can say before the search what it costs (quadratic in a folder of many sizes each within CROP_SIDE of
    many others)."""
    dims, members = size_classes(sizes)
    counts = np.array([len(m) for m in members], np.int64)
    return sum(int(counts[u]) * int(counts[ranked_sizes(dims, members, u)].sum()) for u in range(len(dims)))


def ranked_sizes(dims: np.ndarray, members: list[np.ndarray], u: int) -> np.ndarray:
    """The sizes (indices into dims) copies of size u are ranked against: those it can be cut out of, but those
    searched on a grid (gridded)."""
    upright, across = fitting(dims, *dims[u].tolist())
    return np.array([v for v in np.flatnonzero(upright | across).tolist() if not gridded(dims, members, u, v)],
                    np.int64)


def gridded(dims: np.ndarray, members: list[np.ndarray], u: int, v: int) -> bool:
    """Whether copies of size u are searched in photos of size v on a grid of places (grid_places) rather than
    ranked: few places, and many copies for each."""
    if len(members[u]) < CROP_GRID_PER_PLACE:  # too few for even one place (most sizes, where sizes are many)
        return False
    places = sum(len(at) for _, at in turned_places(dims[u], dims[v]))
    return 0 < places <= CROP_GRID_PLACES and len(members[u]) >= CROP_GRID_PER_PLACE * places


def turned_places(copy: np.ndarray, photo: np.ndarray) -> list[tuple[list[int], np.ndarray]]:
    """The flips and turns (`oriented`'s k) that keep a copy of size `copy` upright, and its grid_places in a photo
    of size `photo`; then those that turn it a quarter, and its places so turned (none where it does not fit)."""
    return [([k for k in range(8) if swaps_sides(k) == across], grid_places(copy[::-1] if across else copy, photo))
            for across in (False, True)]


def grid_candidates(photos: Photos, roots: np.ndarray) -> np.ndarray:
    """(P, 4) pairs (copy, photo, k, -1) as crop_candidates', for the pairs of sizes searched on a grid (gridded):
    the copy's square, in each flip or turn whose size fits (turned_places), within MAX_BITS of the pHash of the
    photo's region it would be at one of those places, found through equal bands; not of one group already
    (roots)."""
    dims, members = size_classes(photos.sizes)
    found = []
    many = [u for u in range(len(dims)) if len(members[u]) >= CROP_GRID_PER_PLACE]
    for u, v in ((u, v) for u in many for v in range(len(dims)) if gridded(dims, members, u, v)):
        m = square_place(*dims[u].tolist(), *dims[v].tolist())[0]  # the copy's square's side, turned or not
        copies, targets = members[u], members[v]
        for turns, places in turned_places(dims[u], dims[v]):
            if not len(places):
                continue
            mine = np.concatenate([square_hashes(photos, copies[start:start + CROP_BATCH], turns)
                                   for start in range(0, len(copies), CROP_BATCH)])  # (copies * 4, 32): copy-major
            theirs = np.concatenate([place_hashes(photos, targets[start:start + CROP_BATCH], places, m)
                                     for start in range(0, len(targets), CROP_BATCH)])  # (targets * places, 32)
            for lo, hi in bands(MAX_BITS):
                keys = band_key(theirs, lo, hi)
                order = np.argsort(keys, kind="stable").astype(np.int64)
                for i, at in equal_keys(band_key(mine, lo, hi), order, keys[order]):
                    close = bit_distance(mine[i], theirs[at]) <= MAX_BITS
                    copy, photo = copies[i[close] // len(turns)], targets[at[close] // len(places)]
                    k = np.array(turns)[i[close] % len(turns)]
                    apart = roots[copy] != roots[photo]
                    found.append(np.stack([copy[apart], photo[apart], k[apart], np.full(int(apart.sum()), -1)], 1))
    if not found:
        return np.empty((0, 4), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    return pairs[np.sort(np.unique(pairs[:, :2], axis=0, return_index=True)[1])]  # each pair once, its first turn


def square_hashes(photos: Photos, images: np.ndarray, turns: list[int]) -> np.ndarray:
    """(images * turns, 32) the pHashes (region_bits, as grid places are hashed) of the images' whole grey squares
    in each of the flips or turns (`oriented`'s k), image-major."""
    squares = photo_squares(photos, images)
    turned = np.stack([oriented(squares, k) for k in turns], 1).reshape(-1, CROP_GRID, CROP_GRID)
    zero = np.zeros(len(turned))
    return region_bits(running_rows(np.ascontiguousarray(turned)), np.arange(len(turned)), zero, zero,
                       zero + CROP_GRID, zero + CROP_GRID)


def place_hashes(photos: Photos, images: np.ndarray, places: np.ndarray, side: float) -> np.ndarray:
    """(images * places, 32) the pHashes of each image's square's region of `side` pixels at each place (top,
    left), image-major."""
    sums = running_rows(photo_squares(photos, images))
    which = np.repeat(np.arange(len(images)), len(places))
    top, left = np.tile(places[:, 0], len(images)), np.tile(places[:, 1], len(images))
    return region_bits(sums, which, top, left, top + side, left + side)


def grid_places(copy: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """(n, 2) the places (top, left, in CROP_GRID pixels of the photo's square) on a CROP_GRID_STEP grid where the
    square of a copy of size `copy` (width, height), cut out upright without resizing, can lie in the square of a
    photo of size `photo` and lies wholly inside it (as cut_bits: the squares are the files' centre squares); none
    when the copy does not fit upright."""
    (w, h), (wide, high) = copy.tolist(), photo.tolist()
    if not cut_fits(w, h, wide, high):
        return np.empty((0, 2))
    m, y0, x0, y_slack, x_slack = square_place(w, h, wide, high)
    spans = []
    for start, slack in ((y0, y_slack), (x0, x_slack)):
        steps = np.r_[start + np.arange(0, slack, CROP_GRID_STEP), start + slack]
        spans.append(steps[(steps >= -0.5) & (steps + m <= CROP_GRID + 0.5)])
    ys, xs = np.meshgrid(*spans, indexing="ij")
    return np.stack([ys.ravel(), xs.ravel()], 1)


def square_place(w, h, wide, high):
    """Where the square of a copy w x h pixels, cut out of a photo wide x high without resizing, lies in the photo's
    square (both the files' centre squares), in CROP_GRID pixels of the photo's square: its side, its top and left
    with the copy's file at the photo's top left corner, and how far down and right it can move from there (numbers
    or arrays)."""
    side, short = np.minimum(wide, high), np.minimum(w, h)
    return (CROP_GRID * short / side, ((h - short) / 2 - (high - side) / 2) * CROP_GRID / side,
            ((w - short) / 2 - (wide - side) / 2) * CROP_GRID / side, (high - h) * CROP_GRID / side,
            (wide - w) * CROP_GRID / side)


def group_members(turns: list[np.ndarray], packed: np.ndarray, photos: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """Which of the photos (a copy's candidates, closest first; roots: their groups) it is checked against: those
    of the first CROP_CHECKS groups, up to CROP_MEMBERS of each, each not a whole copy of one taken before
    (within CROP_SAME_BITS of it, turned or not): the closest photo of each group, and of the other photos a group
    holds where the hashes put photos of one person in one group (its members' whole copies are one photo)."""
    groups, first = np.unique(roots, return_index=True)
    kept_groups = groups[np.argsort(first, kind="stable")[:CROP_CHECKS]]
    taken: dict[int, list[int]] = {}
    keep = []
    for at in np.flatnonzero(np.isin(roots, kept_groups)).tolist():
        members = taken.setdefault(int(roots[at]), [])
        if len(members) == CROP_MEMBERS:
            continue
        photo = int(photos[at])
        if members:
            mine = np.stack([turn[photo] for turn in turns]).view(np.uint64)  # (8, 4)
            theirs = packed[members, 0].view(np.uint64)  # (members, 4)
            if np.bitwise_count(mine[:, None] ^ theirs[None]).sum(-1).min() <= CROP_SAME_BITS:
                continue
        members.append(photo)
        keep.append(at)
    return np.array(keep, np.int64)


def cut_fits(w, h, wide, high):
    """Whether a copy w x h pixels can be cut out of a photo wide x high (numbers or arrays): no larger each way, at
    least CROP_SIDE of it, and not the same size (a whole copy is the hashes' to find)."""
    return (w <= wide) & (h <= high) & (w >= CROP_SIDE * wide) & (h >= CROP_SIDE * high) & ((w != wide) | (h != high))


def hash_bits(turns: list[np.ndarray], packed: np.ndarray, copies: np.ndarray, photos: np.ndarray) -> np.ndarray:
    """(copies, photos, 8) uint8: the fewest bits between each of a copy's 8 flips and turns (`turns`' order) and a
    photo's square or window."""
    mine = np.stack([turn[copies] for turn in turns], 1).view(np.uint64)  # (C, 8, 4)
    theirs = packed[photos][:, [0] + list(range(len(FLIPS), packed.shape[1]))].view(np.uint64)  # (P, 11, 4)
    out = np.full((len(copies), len(photos), mine.shape[1]), 255, np.uint8)
    for turn in range(mine.shape[1]):
        for window in range(theirs.shape[1]):
            ones = np.bitwise_count(np.bitwise_xor(mine[:, None, turn], theirs[None, :, window]))  # (C, P, 4) uint8
            # 255 bits at most: their sum fits a uint8
            np.minimum(out[:, :, turn], ones[..., 0] + ones[..., 1] + ones[..., 2] + ones[..., 3], out=out[:, :, turn])
    return out


def photo_squares(photos: Photos, images: np.ndarray) -> np.ndarray:
    """The grey squares (grey_squares) of the given hashed images, read from photos' pixels."""
    return grey_squares(store.take(photos.pixels, photos.rows[images]))


def grey_squares(pixels: np.ndarray) -> np.ndarray:
    """(N, CROP_GRID, CROP_GRID) float32 grey of (N, S, S, 3) uint8 squares."""
    weights = resampling(pixels.shape[1], CROP_GRID)
    grey = np.zeros(pixels.shape[:3], np.float32)
    for channel, weight in enumerate(GREY):
        grey += pixels[..., channel] * weight
    return np.einsum("rs,nst,ct->nrc", weights, grey, weights, optimize=True)


def swaps_sides(k):
    """Whether `oriented`'s flip or turn k (a number or an array) swaps width and height: a quarter-turn of the
    square or of its transpose."""
    return (k % 2 == 1) != (k >= 4)


def oriented(squares: np.ndarray, k: int) -> np.ndarray:
    """Flip or turn k of 8 of (..., S, S) squares: k quarter-turns, of the transposed squares from k = 4."""
    return np.rot90(np.swapaxes(squares, -1, -2) if k >= 4 else squares, k % 4, axes=(-2, -1))


def cut_bits(squares: np.ndarray, sizes: np.ndarray, pair: np.ndarray, copy: np.ndarray, photo: np.ndarray,
             k: np.ndarray, pairs: int) -> np.ndarray:
    """(pairs,) the fewest bits, per pair, between the pHashes of what both squares show, over where the copy's
    square can lie in the photo's (its file's size: a cut without resizing) and over the pair's tries; 255 when
    nothing fits. A try (pair, copy, photo, k): the copy flipped or turned by `oriented`'s k. squares: grey_squares
    of the images tried, indexed by copy and photo; sizes: (width, height) of their files.

    Each try's phase correlation (the squares zero-padded to CROP_PAD) is read within the places the sizes allow;
    its CROP_PEAKS highest places, of all a pair's tries, are compared (and CROP_STEPS of a pixel around those
    within CROP_NEAR bits): all tries at once, a few numpy calls per batch."""
    grid, pad = CROP_GRID, CROP_PAD
    turned = swaps_sides(k)
    w = np.where(turned, sizes[copy, 1], sizes[copy, 0])
    h = np.where(turned, sizes[copy, 0], sizes[copy, 1])
    wide, high = sizes[photo, 0], sizes[photo, 1]
    scale, y0, x0, y_slack, x_slack = square_place(w, h, wide, high)
    m = np.rint(scale).astype(np.int64)
    # where the copy's square can lie; shifts the circular correlation does not alias: -(pad - grid) < shift <= pad - m
    y_lo, x_lo = np.maximum(np.floor(y0) - 1, grid - pad + 1), np.maximum(np.floor(x0) - 1, grid - pad + 1)
    y_hi = np.minimum(np.ceil(y0 + y_slack) + 1, pad - m)
    x_hi = np.minimum(np.ceil(x0 + x_slack) + 1, pad - m)
    fits = cut_fits(w, h, wide, high) & (y_lo <= y_hi) & (x_lo <= x_hi)
    best = np.full(pairs, LOW * LOW - 1, np.int64)
    if not fits.any():
        return best
    pair, copy, photo, k, scale, m = pair[fits], copy[fits], photo[fits], k[fits], scale[fits], m[fits]
    y_lo, y_hi, x_lo, x_hi = y_lo[fits], y_hi[fits], x_lo[fits], x_hi[fits]
    # each photo once, each copy once per turn (turned_copies), and per turn and size (its spectrum)
    photos, photo_row = np.unique(photo, return_inverse=True)
    photo_row = photo_row.ravel()
    padded = np.zeros((len(photos), pad, pad), np.float32)
    padded[:, :grid, :grid] = squares[photos] - squares[photos].mean((1, 2), keepdims=True)
    photo_spectra = unit(scipy.fft.rfft2(padded))  # scipy's: numpy's float32 rfft2 took about 5 times as long here
    copy_turns, turn_row = np.unique(np.stack([copy, k], 1), axis=0, return_inverse=True)
    turn_row = turn_row.ravel()
    turned_copies = np.empty((len(copy_turns), grid, grid), np.float32)
    for key_k in np.unique(copy_turns[:, 1]).tolist():
        rows = np.flatnonzero(copy_turns[:, 1] == key_k)
        turned_copies[rows] = oriented(squares[copy_turns[rows, 0]], key_k)
    keys, copy_row = np.unique(np.stack([turn_row, m], 1), axis=0, return_inverse=True)
    copy_row = copy_row.ravel()
    padded = np.zeros((len(keys), pad, pad), np.float32)
    for key_m in np.unique(keys[:, 1]).tolist():
        rows = np.flatnonzero(keys[:, 1] == key_m)
        weights = resampling(grid, key_m)
        small = np.einsum("ms,nst,ct->nmc", weights, turned_copies[keys[rows, 0]], weights, optimize=True)
        padded[rows, :key_m, :key_m] = small - small.mean((1, 2), keepdims=True)
    copy_spectra = unit(scipy.fft.rfft2(padded))
    # phase correlation: the product of the spectra made unit is the cross-power spectrum made unit
    corr = scipy.fft.irfft2(photo_spectra[photo_row] * np.conj(copy_spectra[copy_row]), s=(pad, pad))
    shift = np.fft.fftfreq(pad, 1 / pad).astype(np.int64)  # correlation index -> shift, negative past the middle
    # each try's places, read out of its correlation: rows y_lo.. and columns x_lo.. (index = shift mod pad)
    span_y, span_x = np.arange(int((y_hi - y_lo).max()) + 1), np.arange(int((x_hi - x_lo).max()) + 1)
    rows = (y_lo[:, None].astype(np.int64) + span_y) % pad
    columns = (x_lo[:, None].astype(np.int64) + span_x) % pad
    places = corr[np.arange(len(corr))[:, None, None], rows[:, :, None], columns[:, None, :]]
    places[~((span_y <= (y_hi - y_lo)[:, None])[:, :, None] & (span_x <= (x_hi - x_lo)[:, None])[:, None, :])] = -np.inf
    flat = places.reshape(len(places), -1)
    peaks = min(CROP_PEAKS, flat.shape[1])
    top = np.argpartition(flat, -peaks, axis=1)[:, -peaks:]  # each try's highest places
    height = np.take_along_axis(flat, top, 1).ravel()
    t = np.repeat(np.arange(len(corr)), peaks)
    at_y, at_x = np.divmod(top.ravel(), len(span_x))
    iy, ix = rows[t, at_y], columns[t, at_x]
    y = shift[iy] + vertex(corr[t, iy - 1, ix], corr[t, iy, ix], corr[t, (iy + 1) % pad, ix])
    x = shift[ix] + vertex(corr[t, iy, ix - 1], corr[t, iy, ix], corr[t, iy, (ix + 1) % pad])
    # a pair's CROP_PEAKS highest places over all its tries
    order = np.lexsort((-height, pair[t]))
    order = order[np.isfinite(height[order])]
    owner = pair[t[order]]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    keep = order[(np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))) < CROP_PEAKS]
    t, y, x = t[keep], y[keep], x[keep]
    # the squares' running sums: each photo once, each copy once per turn
    photo_sums, photo_of = running_rows(squares[photos]), photo_row[t]
    copy_sums, copy_of = running_rows(turned_copies), turn_row[t]
    at_peak = overlap_bits(photo_sums, photo_of, copy_sums, copy_of, y, x, scale[t])
    np.minimum.at(best, pair[t], at_peak)
    # close but not within MAX_BITS: the place may be a fraction of a pixel off
    near = np.flatnonzero((at_peak <= CROP_NEAR) & (at_peak > MAX_BITS))
    steps = [(dy, dx) for dy in CROP_STEPS for dx in CROP_STEPS if dy or dx]
    if len(near):
        around = np.repeat(near, len(steps))
        dy, dx = np.tile(np.array(steps).T, len(near))
        bits = overlap_bits(photo_sums, photo_of[around], copy_sums, copy_of[around], y[around] + dy, x[around] + dx,
                            scale[t[around]])
        np.minimum.at(best, pair[t[around]], bits)
    return best


def unit(spectra: np.ndarray) -> np.ndarray:
    """Each coefficient divided by its magnitude (0 where it is 0)."""
    return spectra / np.maximum(np.abs(spectra), np.float32(1e-6))


def vertex(before: np.ndarray, at: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Offset (-0.5..0.5) of the top of the parabola through three samples, from the middle one."""
    curve = before - 2 * at + after
    offset = np.divide(0.5 * (before - after), curve, out=np.zeros_like(curve), where=curve < 0)
    return np.clip(offset, -0.5, 0.5)


def overlap_bits(photo_sums: np.ndarray, photo: np.ndarray, copy_sums: np.ndarray, copy: np.ndarray, y: np.ndarray,
                 x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Bits between the pHashes of the part both show when copy square copy[i]'s (CROP_GRID pixels for `scale` of the
    photo's) lies at (y, x) in photo square photo[i]'s; 255 where that part is under CROP_OVERLAP of a side.
    photo_sums, copy_sums: `running_rows` of the photos' and of the (turned) copies' squares."""
    grid = CROP_GRID
    top, left = np.maximum(0.0, y), np.maximum(0.0, x)
    bottom, right = np.minimum(grid, y + scale), np.minimum(grid, x + scale)
    bits = np.full(len(y), LOW * LOW - 1, np.int64)
    shown = np.flatnonzero(np.minimum(bottom - top, right - left) >= CROP_OVERLAP * grid)
    if not len(shown):
        return bits
    top, left, bottom, right, y, x = top[shown], left[shown], bottom[shown], right[shown], y[shown], x[shown]
    factor = grid / scale[shown]
    bits[shown] = bit_distance(
        region_bits(photo_sums, photo[shown], top, left, bottom, right),
        region_bits(copy_sums, copy[shown], (top - y) * factor, (left - x) * factor, (bottom - y) * factor,
                    (right - x) * factor))
    return bits
