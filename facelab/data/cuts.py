"""Copies cut out of a photo anywhere up to CROP_SIDE, for the near-duplicate search (facelab.data.near): candidates
from regions anchored in the content at the same size in file pixels (anchor_candidates), checked by the squares'
phase correlation within the places the two files' pixel sizes allow and the pHashes of the part both squares show
(join_crops). Pure: arrays in, arrays out."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.fft
import scipy.ndimage

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
    flipped,
    region_bits,
    region_coeffs,
    resampling,
    running_rows,
    to_bits,
    transposed,
    union,
)

# Cut copies, wherever the cut: a copy cut out of a photo and saved without resizing keeps the photo's pixel pitch,
# so the files' pixel sizes say the copy's scale in the photo exactly and how far it can lie from the photo's corner.
# Candidates come from regions anchored in the content (ANCHOR_STEP below), in time linear in the images whatever
# their sizes; a candidate's place is then found by the squares' phase correlation (within the bounds the sizes give),
# and the pHashes of the part both squares show say whether it is one photo (cut_bits).
CROP_SIDE = 0.78  # a cut copy keeps at least this share of the photo's width and of its height (10% off each end)
CROP_GRID = 64  # side (pixels) of the grey squares correlated, whatever data.<task>.img_size is
CROP_PAD = 96  # side they are zero-padded to: the circular correlation is exact for shifts from -31 to 32
CROP_PEAKS = 2  # correlation peaks tried per pair: the highest is not always the place (4 found no more)
CROP_STEPS = (-0.25, 0.0, 0.25)  # sub-pixel steps (of CROP_GRID) around a peak at which the pHashes are compared
CROP_NEAR = 2 * MAX_BITS  # bits at a peak under which the steps around it are tried too
CROP_OVERLAP = 0.7  # share of each side the two squares must both show for their pHashes to be compared
CROP_BATCH = 1024  # images whose regions are hashed, or pairs checked (their squares and correlations), at once
# `oriented`'s k of each flip or turn of the hashes (the 4 FLIPS, then each transposed: near_search's turns)
TURN_OF_HASH = np.array([0, 7, 5, 2, 4, 1, 3, 6])
# Anchored regions: a cut keeps the photo's pixels at their pitch, so a region of a given side in file pixels, centred
# on a point the content marks (an extremum of a difference of Gaussians whose width is a given share of that side),
# is the same region in the copy and in the photo wherever the cut, when both show it. Each image hashes such regions
# at every side ANCHOR_STEP ** j (file pixels) between ANCHOR_SIDES of its file's short side (a copy and its photo
# share one: 0.66 x CROP_SIDE / 0.36 > ANCHOR_STEP) around its ANCHOR_COUNT strongest extrema; a copy's region, in one
# of its 8 flips and turns, within MAX_BITS of a photo's region of the same side (found through equal bands) makes the
# pair a candidate. Of the benchmark's copies whose size allows a cut, 93% (LFW) and 90% (Yale B) have a region within
# MAX_BITS of their photo's (median 4 bits), other photos of the person none (nearest 42 and 20 bits); the sides and
# the count were chosen on the benchmark's families and its mixed sizes (benchmarks/README.md).
ANCHOR_STEP = 2 ** 0.5
ANCHOR_SIDES = (0.36, 0.66)
ANCHOR_BLUR = 0.035  # the narrower Gaussian's sigma, as a share of the region's side; the wider one's is 1.6 times it
ANCHOR_COUNT = 8
ANCHOR_SHARED = 256  # regions a band's key may have before it is left out (see anchor_candidates)
ANCHOR_APART = 5  # an extremum's magnitude is the highest in the square of this side (CROP_GRID pixels) around it


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
    known), their distinct sizes, the anchored regions it hashed, the candidate pairs it checked, and the copies it
    put in one group with a photo."""
    images: int
    sizes: int
    regions: int
    checked: int
    found: int


def anchor_candidates(photos: Photos, roots: np.ndarray) -> tuple[np.ndarray, int]:
    """(P, 3) pairs (copy, photo, `oriented`'s k of the copy): a region of the copy, so flipped or turned, within
    MAX_BITS of a region of the photo of the same side (anchored_regions), found through equal bands; the copy's
    size so turned fits the photo's (cut_fits); not of one group already (roots). Each pair once, at its closest
    turn; a copy's pairs consecutive, closest first. And how many regions were hashed."""
    known = paired(photos.sizes)
    parts = [anchored_regions(photos, known[start:start + CROP_BATCH])
             for start in range(0, max(len(known), 1), CROP_BATCH)]  # one call at least: empty arrays for none
    owner = np.concatenate([part[0] for part in parts])
    side = np.concatenate([part[1] for part in parts]).astype(np.uint64) << np.uint64(32)
    flips = np.concatenate([part[2] for part in parts])
    turns = [flips[:, f] for f in range(len(FLIPS))]
    turns += [transposed(turn) for turn in turns]  # near_search's order: TURN_OF_HASH says each one's k
    found = [np.empty((0, 4), np.int64)]
    for lo, hi in bands(MAX_BITS):
        keys = side | band_key(turns[0], lo, hi)  # a region matches regions of its own side only
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        # a key more regions share than ANCHOR_SHARED says nothing (flat regions, one colour): left out, or such
        # images would pair with all the others
        _, count = np.unique(ordered, return_counts=True)
        kept = np.repeat(count <= ANCHOR_SHARED, count)
        order, ordered = order[kept], ordered[kept]
        for t, query in enumerate(turns):
            k = TURN_OF_HASH[t]
            for i, at in equal_keys(side | band_key(query, lo, hi), order, ordered, 1 << 14):
                bits = bit_distance(query[i], turns[0][at])
                copy, photo = owner[i], owner[at]
                w, h = (photos.sizes[copy, ::-1] if swaps_sides(k) else photos.sizes[copy]).T
                keep = ((bits <= MAX_BITS) & cut_fits(w, h, photos.sizes[photo, 0], photos.sizes[photo, 1])
                        & (roots[copy] != roots[photo]))
                found.append(np.stack([copy[keep], photo[keep], np.full(int(keep.sum()), k), bits[keep]], 1))
    pairs = np.concatenate(found).astype(np.int64)
    pairs = pairs[np.lexsort((pairs[:, 3], pairs[:, 0]))]  # by copy, closest first
    return pairs[np.sort(np.unique(pairs[:, :2], axis=0, return_index=True)[1]), :3], len(owner)


def paired(sizes: np.ndarray, most: int = 4096) -> np.ndarray:
    """The images whose file's size allows a cut out of another's or another's out of theirs (those of one size,
    a camera's photos beside a few others, are not hashed): all whose size is known where over `most` sizes are
    (whose pairs it would take too long to check)."""
    known = np.flatnonzero(sizes.min(1) > 0)
    dims, inverse = np.unique(sizes[known], axis=0, return_inverse=True)
    if len(dims) > most:
        return known
    w, h = dims[:, :1], dims[:, 1:]
    fits = cut_fits(w, h, w.T, h.T) | cut_fits(h, w, w.T, h.T)  # (copy size, photo size)
    return known[(fits.any(1) | fits.any(0))[inverse.ravel()]]


def anchored_regions(photos: Photos, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images' anchored regions (see ANCHOR_STEP): each one's image, its side's j (ANCHOR_STEP ** j file
    pixels) and its pHashes in the 4 FLIPS, (R, 4, 32)."""
    squares = photo_squares(photos, images)
    short = photos.sizes[images].min(1).astype(np.float64)
    spectra = scipy.fft.rfft2(squares)
    y2 = np.fft.fftfreq(CROP_GRID)[:, None] ** 2 + np.fft.rfftfreq(CROP_GRID)[None, :] ** 2  # cycles per pixel, squared
    sums = running_rows(squares)
    owners, sides, coeffs = [], [], []
    first = np.ceil(np.log(ANCHOR_SIDES[0] * short) / np.log(ANCHOR_STEP)).astype(np.int64)
    last = np.floor(np.log(ANCHOR_SIDES[1] * short) / np.log(ANCHOR_STEP)).astype(np.int64)
    for step in range(int((last - first).max()) + 1 if len(images) else 0):
        j = first + step
        at = np.flatnonzero(j <= last)
        side = ANCHOR_STEP ** j[at] * CROP_GRID / short[at]  # the region's side in each square's pixels
        sigma = (ANCHOR_BLUR * side)[:, None, None]
        # a difference of Gaussians, by the squares' spectra (circular: the anchors kept are far from the edges)
        kernel = np.exp(-2 * np.pi ** 2 * y2 * sigma ** 2) - np.exp(-2 * np.pi ** 2 * y2 * (1.6 * sigma) ** 2)
        dog = scipy.fft.irfft2(spectra[at] * kernel.astype(np.float32), s=(CROP_GRID, CROP_GRID))
        y, x, which = extrema(dog, side)
        half = side[which] / 2
        top, left = np.clip(y - half, 0, CROP_GRID - 2 * half), np.clip(x - half, 0, CROP_GRID - 2 * half)
        owners.append(images[at[which]])
        sides.append(j[at[which]])
        coeffs.append(region_coeffs(sums, at[which], top, left, top + 2 * half, left + 2 * half))
    if not sum(len(owner) for owner in owners):  # no images, or only flat ones
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, len(FLIPS), (LOW * LOW + 7) // 8), np.uint8)
    coeffs_all = np.concatenate(coeffs)
    return (np.concatenate(owners), np.concatenate(sides),
            np.stack([to_bits(flipped(coeffs_all, *flip)) for flip in FLIPS], 1))


def extrema(dog: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ANCHOR_COUNT strongest extrema of each square's difference of Gaussians (dog: (n, S, S)), the highest of
    its magnitude in their ANCHOR_APART square, around which a region of `side` pixels lies inside the square, to a
    fraction of a pixel: (y, x, which square)."""
    n, size = len(dog), dog.shape[1]
    centre = np.arange(size) + 0.5  # pixel i covers [i, i + 1): flipped, it is pixel S - 1 - i
    half = (side / 2)[:, None]
    inside = (centre >= np.maximum(half, 1.5)) & (centre <= np.minimum(size - half, size - 1.5))  # (n, S): each axis
    # only the middle, where regions fit, is filtered: the same result there as over the whole square
    lo = max(int(np.floor(half.min() - 0.5)) - ANCHOR_APART // 2, 0)
    magnitude = np.abs(dog[:, lo:size - lo, lo:size - lo])
    peak = scipy.ndimage.maximum_filter(magnitude, (1, ANCHOR_APART, ANCHOR_APART), mode="nearest") == magnitude
    peaks = np.full(dog.shape, -1.0, np.float32)
    peaks[:, lo:size - lo, lo:size - lo] = np.where(peak, magnitude, -1.0)
    strength = np.where(inside[:, :, None] & inside[:, None, :], peaks, -1.0).reshape(n, -1)
    count = min(ANCHOR_COUNT, strength.shape[1])
    best = np.argpartition(-strength, count - 1, axis=1)[:, :count]
    which, pick = np.nonzero(np.take_along_axis(strength, best, 1) > 0)  # none where the square is flat
    y, x = np.divmod(best[which, pick], size)
    sign = np.sign(dog[which, y, x])
    fy = centre[y] + vertex(sign * dog[which, y - 1, x], sign * dog[which, y, x], sign * dog[which, y + 1, x])
    fx = centre[x] + vertex(sign * dog[which, y, x - 1], sign * dog[which, y, x], sign * dog[which, y, x + 1])
    return fy, fx, which


def join_crops(parent: np.ndarray, photos: Photos, max_bits: int) -> CutSearch:
    """Unite each image with the photos it is cut out of (see CROP_SIDE): the candidates of anchor_candidates,
    checked (cut_bits) in rounds, each copy's closest first, then its next, each round's pairs at once, so that a copy
    found is not checked again."""
    known = photos.sizes[photos.sizes.min(1) > 0]
    searched = CutSearch(len(known), len(np.unique(known, axis=0)), 0, 0, 0)
    if searched.sizes < 2:  # one size (a camera's) or none (face crops, generated faces): no copy was cut
        return searched
    roots = np.array([find(parent, i) for i in range(len(parent))])
    pairs, regions = anchor_candidates(photos, roots)
    checked = 0
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])  # a copy's candidates are consecutive
    rank = np.arange(len(pairs)) - np.repeat(starts, np.diff(np.r_[starts, len(pairs)]))
    found = np.zeros(len(parent), bool)  # copies united with a photo they are cut out of
    for step in range(int(rank.max()) + 1 if len(pairs) else 0):
        todo = pairs[rank == step]
        todo = todo[~found[todo[:, 0]]]
        todo = todo[[find(parent, b) != find(parent, a) for b, a in todo[:, :2].tolist()]]
        checked += len(todo)
        for start in range(0, len(todo), CROP_BATCH):
            batch = todo[start:start + CROP_BATCH]
            involved, local = np.unique(batch[:, :2], return_inverse=True)
            local = local.reshape(-1, 2)
            bits = cut_bits(photo_squares(photos, involved), photos.sizes[involved], local[:, 0], local[:, 1],
                            batch[:, 2])
            for b, a in batch[bits <= max_bits, :2].tolist():
                if not found[b]:  # its other candidates are farther: the photos they are one with find it from theirs
                    union(parent, a, b)
                    found[b] = True
    return searched._replace(regions=regions, checked=checked, found=int(found.sum()))


def square_place(w, h, wide, high):
    """Where the square of a copy w x h pixels, cut out of a photo wide x high without resizing, lies in the photo's
    square (both the files' centre squares), in CROP_GRID pixels of the photo's square: its side, its top and left
    with the copy's file at the photo's top left corner, and how far down and right it can move from there (numbers
    or arrays)."""
    side, short = np.minimum(wide, high), np.minimum(w, h)
    return (CROP_GRID * short / side, ((h - short) / 2 - (high - side) / 2) * CROP_GRID / side,
            ((w - short) / 2 - (wide - side) / 2) * CROP_GRID / side, (high - h) * CROP_GRID / side,
            (wide - w) * CROP_GRID / side)


def cut_fits(w, h, wide, high):
    """Whether a copy w x h pixels can be cut out of a photo wide x high (numbers or arrays): no larger each way, at
    least CROP_SIDE of it, and not the same size (a whole copy is the hashes' to find)."""
    return (w <= wide) & (h <= high) & (w >= CROP_SIDE * wide) & (h >= CROP_SIDE * high) & ((w != wide) | (h != high))


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


def cut_bits(squares: np.ndarray, sizes: np.ndarray, copy: np.ndarray, photo: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(pairs,) the fewest bits, per pair (copy, photo, k: the copy flipped or turned by `oriented`'s k), between the
    pHashes of what both squares show, over where the copy's square can lie in the photo's (its file's size: a cut
    without resizing); 255 when nothing fits. squares: grey_squares of the images, indexed by copy and photo; sizes:
    (width, height) of their files.

    Each pair's phase correlation (the squares zero-padded to CROP_PAD) is read within the places the sizes allow;
    its CROP_PEAKS highest places are compared (and CROP_STEPS of a pixel around those within CROP_NEAR bits): all
    pairs at once, a few numpy calls per batch."""
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
    best = np.full(len(copy), LOW * LOW - 1, np.int64)
    if not fits.any():
        return best
    pair, copy, photo, k, scale, m = np.flatnonzero(fits), copy[fits], photo[fits], k[fits], scale[fits], m[fits]
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
    # each pair's places, read out of its correlation: rows y_lo.. and columns x_lo.. (index = shift mod pad)
    span_y, span_x = np.arange(int((y_hi - y_lo).max()) + 1), np.arange(int((x_hi - x_lo).max()) + 1)
    rows = (y_lo[:, None].astype(np.int64) + span_y) % pad
    columns = (x_lo[:, None].astype(np.int64) + span_x) % pad
    places = corr[np.arange(len(corr))[:, None, None], rows[:, :, None], columns[:, None, :]]
    places[~((span_y <= (y_hi - y_lo)[:, None])[:, :, None] & (span_x <= (x_hi - x_lo)[:, None])[:, None, :])] = -np.inf
    flat = places.reshape(len(places), -1)
    peaks = min(CROP_PEAKS, flat.shape[1])
    top = np.argpartition(flat, -peaks, axis=1)[:, -peaks:]  # each pair's highest places
    height = np.take_along_axis(flat, top, 1).ravel()
    t = np.repeat(np.arange(len(corr)), peaks)
    at_y, at_x = np.divmod(top.ravel(), len(span_x))
    iy, ix = rows[t, at_y], columns[t, at_x]
    y = shift[iy] + vertex(corr[t, iy - 1, ix], corr[t, iy, ix], corr[t, (iy + 1) % pad, ix])
    x = shift[ix] + vertex(corr[t, iy, ix - 1], corr[t, iy, ix], corr[t, iy, (ix + 1) % pad])
    keep = np.isfinite(height)  # fewer places than CROP_PEAKS: the rest are none
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
