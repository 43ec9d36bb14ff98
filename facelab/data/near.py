"""Near-duplicates for prepare: perceptual hashes of each decoded square (in its 8 flips and quarter-turns, and of
windows inside it), and groups of images that are one photo re-saved, resized, mirrored, turned or cropped, found
through banded hashes (LSH) instead of comparing all pairs; and copies cut out of a photo anywhere up to CROP_SIDE,
found from the two files' pixel sizes and the squares' correlation (join_crops). Pure: arrays in, arrays out."""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from facelab.data import pixels as store

THUMB, LOW = 32, 16  # pHash: DCT of a 32 x 32 grey thumbnail, the 16 x 16 lowest frequencies but the mean
# Bits (of 255) two hashes may differ in and still be one photo. Measured on the real sets (Yale B and FER2013,
# 64 px squares): of copies re-saved at JPEG quality 50, resized by a pixel, made CMYK or 16-bit, 99-100% are within
# 12 bits (mirrors and CMYK: 0); of 1,884 distinct photos, 4 have another within 12 bits. dHash (256 bits) put
# Yale B's dark lighting series within 10 bits of each other and JPEG copies 35 apart, so the DCT it is.
MAX_BITS = 12
GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL's convert("L")
ONES = np.array([bin(byte).count("1") for byte in range(256)], np.uint8)  # bits set in each byte
# Bit k of a hash is frequency k + 1 in row-major order (the mean, 0, has none); TRANSPOSE[k]: the bit that frequency
# k + 1 of the transposed square comes from.
TRANSPOSE = (np.arange(LOW * LOW).reshape(LOW, LOW).T.ravel()[1:] - 1).astype(np.intp)
# The flips of a square as (flip rows, flip columns): the photo, its mirror (the only two searched for before turned
# copies were), upside down, and turned half a turn. Transposing each gives the other 4 of the 8 flips and
# quarter-turns; a transpose only moves a hash's bits (the coefficients, hence their median, are the same), so those
# 4 are not stored but made from these when searched (`transposed`).
FLIPS = ((False, False), (False, True), (True, False), (True, True))
# Windows (top, left, side, as shares of the square's side) whose hashes a cropped copy's whole square is compared
# with: prepare fits every photo to a square by its centre, so a copy with up to 10% cut off each side is the window
# of side 0.8 to 1 whose centre is off the square's by half the difference of opposite cuts (up to 0.05). The pHash
# moves about 20 of its 255 bits per 1% of shift and 10 per 1% of scale, so a window finds only crops close to it:
# 5% or 10% off all sides, 10% off one side, two adjacent or two opposite sides (benchmarks/near_duplicates.py:
# 100% of those, 0% of 2% or 7% crops). Lower-frequency hashes that tolerate any crop put distinct Yale B photos of
# one person within their limit.
WINDOWS = ((0.1, 0.1, 0.8),) + tuple((top, left, 0.9) for top in (0.0, 0.05, 0.1) for left in (0.0, 0.05, 0.1))
# A copy whose square is its original's moved, partly outside it: a portrait photo cut at the top (prepare keeps the
# centre square: a 168 x 192 photo cut 10% at the top has its square moved down by 5.7% of its side) or a landscape
# one cut at a side. Its window of side MOVED_SIDE at the top (left) edge is then close to the original's MOVED_BY lower
# (to the right), so those windows are matched against each other (Yale B: 39 of 64 such copies found alone, 0
# before). Matching every window against every window found 57 but took the search to 10% of prepare; searching each
# candidate pair's crop on thumbnails found 74-80% of the benchmark's copies alone, but its candidates (pairs sharing
# a band) were 159,000 among 10,000 generated faces (benchmarks/README.md).
MOVED_SIDE, MOVED_BY = 0.9, 0.05
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
CROP_BATCH = 4096  # pairs whose squares are read at once
# `oriented`'s k of each flip or turn of the hashes (near_groups' turns: the 4 FLIPS, then each transposed)
TURN_OF_HASH = np.array([0, 7, 5, 2, 4, 1, 3, 6])
CROP_RANKED = 256  # copies whose hash bits to every photo are held at once


class Photos(NamedTuple):
    """What the search for cut copies reads besides the hashes: each hashed image's decoded square and the pixel
    size of the file it is the centre square of.

    pixels: (M, S, S, 3) uint8, an array or PixelStore's memmap; rows: (N,) the row of pixels of each hashed image;
    sizes: (N, 2) int (width, height, EXIF orientation applied), (0, 0) where the square is not a file's centre
    square (a face crop, a fixed box, a generated face): those are not searched for cut copies."""
    pixels: np.ndarray
    rows: np.ndarray
    sizes: np.ndarray


def area_weights(size: int, bins: int, lo: float = 0.0, hi: float | None = None) -> np.ndarray:
    """(bins, size) averaging weights: bin k covers pixels [lo + k * w, lo + (k + 1) * w), w = (hi - lo) / bins,
    split pixels shared in proportion; lo, hi default to the whole row. Over the whole row, symmetric under
    reversal, so the thumbnail of a mirror is the mirrored thumbnail."""
    hi = size if hi is None else hi
    edges = lo + np.arange(bins + 1) * (hi - lo) / bins
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return (overlap / overlap.sum(1, keepdims=True)).astype(np.float32)


@functools.cache
def thumb_dct() -> np.ndarray:
    """dct_matrix(THUMB, LOW), made once."""
    return dct_matrix(THUMB, LOW)


@functools.cache
def resampling(size: int, bins: int) -> np.ndarray:
    """area_weights(size, bins), made once per pair of sizes."""
    return area_weights(size, bins)


def dct_matrix(n: int, k: int) -> np.ndarray:
    """(k, n): the first k rows of the orthonormal DCT-II."""
    u, x = np.arange(k)[:, None], np.arange(n)[None, :]
    scale = np.where(u == 0, float(np.sqrt(1 / n)), float(np.sqrt(2 / n)))
    return (scale * np.cos(np.pi * (2 * x + 1) * u / (2 * n))).astype(np.float32)


def flipped(coeffs: np.ndarray, flip_rows: bool, flip_columns: bool) -> np.ndarray:
    """The DCT coefficients (..., LOW, LOW) of the flipped square: a flip negates the odd frequencies along its
    axis."""
    sign = ((-1) ** np.arange(coeffs.shape[-1])).astype(coeffs.dtype)  # exact negations: the bits are as in float64
    if flip_rows:
        coeffs = coeffs * sign[:, None]
    if flip_columns:
        coeffs = coeffs * sign
    return coeffs


def to_bits(coeffs: np.ndarray) -> np.ndarray:
    """Packed pHash bits of (..., LOW, LOW) coefficients: each but the mean (DC, which says only how bright the
    photo is) against their median (the middle one of the 255: np.median's value, without its mean and copies)."""
    flat = coeffs.reshape(*coeffs.shape[:-2], -1)[..., 1:]
    middle = flat.shape[-1] // 2
    return np.packbits(flat > np.partition(flat, middle, axis=-1)[..., middle:middle + 1], axis=-1)


def hashes(pixels: np.ndarray) -> np.ndarray:
    """(N, 4 + len(WINDOWS), 32) uint8 packed 255-bit pHashes: [:, :4] each image in the 4 FLIPS ([:, 0] itself,
    [:, 1] its mirror), [:, 4:] its WINDOWS.

    pixels: (N, S, S, 3) uint8, an array or PixelStore's memmap (read CHUNK rows at a time, not through the map)."""
    n, side = len(pixels), pixels.shape[1]
    dct = dct_matrix(THUMB, LOW)
    whole = dct @ area_weights(side, THUMB)  # (LOW, side): thumbnail and transform in one product
    # WINDOWS share a few spans of rows and of columns: each span's product is made once per image
    spans = sorted({(top, size) for top, _, size in WINDOWS} | {(left, size) for _, left, size in WINDOWS})
    span_dct = np.concatenate([dct @ area_weights(side, THUMB, lo * side, (lo + size) * side) for lo, size in spans])
    tops = [spans.index((top, size)) for top, _, size in WINDOWS]
    lefts = [spans.index((left, size)) for _, left, size in WINDOWS]
    out = np.empty((n, len(FLIPS) + len(WINDOWS), (LOW * LOW + 7) // 8), np.uint8)
    step = max(1, store.CHUNK_BYTES // store.row_bytes(pixels) // 8)  # the float work is about 8x the uint8 chunk
    # Many small products: BLAS's threads waiting for one another cost more than they bring (prepare_scale at 10,000
    # images on the busy 2-core machine: the search took 20% of prepare with OpenBLAS's threads, 4% with one).
    with threadpool_limits(1, user_api="blas"):
        for start in range(0, n, step):
            hash_chunk(pixels, start, min(n, start + step), out, whole, span_dct, tops, lefts)
    return out


def hash_chunk(pixels: np.ndarray, start: int, stop: int, out: np.ndarray, whole: np.ndarray, span_dct: np.ndarray,
               tops: list[int], lefts: list[int]) -> None:
    """hashes' work on rows start..stop-1, written to out[start:stop]."""
    side, spans = pixels.shape[1], len(span_dct) // LOW
    chunk = store.take(pixels, np.arange(start, stop))
    grey = np.zeros(chunk.shape[:3], np.float32)  # channel by channel: no float copy of all three channels
    for channel, weight in enumerate(GREY):
        grey += chunk[..., channel] * weight
    coeffs = np.einsum("rs,nst,ct->nrc", whole, grey, whole, optimize=True)
    for k, flip in enumerate(FLIPS):
        out[start:stop, k] = to_bits(flipped(coeffs, *flip))
    # each span of rows transformed, for every image in one matrix product: (spans * LOW, n * side)
    by_rows = (span_dct @ np.swapaxes(grey, 0, 1).reshape(side, -1)).reshape(spans, -1, side)
    by_columns = span_dct.reshape(spans, LOW, side)
    for k, (top, left) in enumerate(zip(tops, lefts), start=len(FLIPS)):
        windowed = (by_rows[top] @ by_columns[left].T).reshape(LOW, stop - start, LOW)  # (row freq, n, column)
        out[start:stop, k] = to_bits(np.swapaxes(windowed, 0, 1))


def bit_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed hashes, row by row."""
    return ONES[np.bitwise_xor(a, b)].sum(-1, dtype=np.int64)


def transposed(packed: np.ndarray, rows: int = 64) -> np.ndarray:
    """The hashes (N, 32) of the transposed squares: each bit moved to its transposed frequency's place (`rows` at a
    time: the bits take a byte each on the way)."""
    out = np.empty_like(packed)
    for start in range(0, len(packed), rows):
        bits = np.unpackbits(packed[start:start + rows], axis=-1)[:, :LOW * LOW - 1]
        out[start:start + rows] = np.packbits(bits[:, TRANSPOSE], axis=-1)
    return out


def near_groups(packed: np.ndarray, max_bits: int = MAX_BITS, photos: Photos | None = None) -> np.ndarray:
    """(N,) int64 group ids: images that are one photo share an id, transitively; an image with no near copy has a
    group of its own. Ids are the smallest member's index. packed: `hashes` of each image.

    Two images are one photo when their hashes are within max_bits bits: the one's, or its mirror's, against the
    other's (as before turns and crops were searched for: those groups stay, turns and crops only add to them); or
    the one flipped, turned or both (any of the 8) against the other's whole square or one of its WINDOWS; or a
    window at an edge against the other's window MOVED_BY inside (a copy whose square is the original's moved).
    Candidates come from equal bands (every pair within max_bits has one, by pigeonhole), then are checked on all
    bits; sorting each band's keys finds equal ones in O(N log N) instead of N^2 / 2 comparisons. photos: also
    search for copies cut out of a photo anywhere (join_crops); None: the hashes alone."""
    n = len(packed)
    parent = np.arange(n)
    if n < 2:
        return parent
    mirror_pairs(parent, packed, max_bits)
    if packed.shape[1] == 2:  # the photo and its mirror only: nothing else to search
        return np.array([find(parent, i) for i in range(n)], np.int64)
    # The 8 flips and turns of each whole square: the 4 stored flips, then their transposes (the first two are
    # mirror_pairs' own).
    flips = [packed[:, k] for k in range(len(FLIPS))]
    turns = flips + [transposed(flip) for flip in flips]
    join(parent, turns[2:], [packed[:, 0]], max_bits)  # a flipped or turned copy
    windows = [packed[:, k] for k in range(len(FLIPS), packed.shape[1])]
    join(parent, turns, windows, max_bits)  # a cropped one
    for axis in (0, 1):  # a moved one: a window at the top (left) edge against one 5% lower (to the right)
        at_edge, inside = (
            [windows[k] for k, window in enumerate(WINDOWS) if window[2] == MOVED_SIDE and window[axis] == offset]
            for offset in (0.0, MOVED_BY))
        join(parent, at_edge, inside, max_bits)
    if photos is not None:
        join_crops(parent, turns, packed, photos, max_bits)
    return np.array([find(parent, i) for i in range(n)], np.int64)


def mirror_pairs(parent: np.ndarray, packed: np.ndarray, max_bits: int) -> None:
    """Unite images whose hashes (either one mirrored) are within max_bits bits."""
    n = len(packed)
    for lo, hi in bands(max_bits):
        # Each image enters twice, as itself and as its mirror: a mirrored copy then shares a band with it.
        # Only this band's bytes are unpacked, so memory stays a few bytes per image.
        keys = np.concatenate([band_key(packed[:, side], lo, hi) for side in (0, 1)])
        owners = np.concatenate([np.arange(n), np.arange(n)])
        for i, j in band_pairs(keys, owners):
            close = np.minimum(bit_distance(packed[i, 0], packed[j, 0]), bit_distance(packed[i, 0], packed[j, 1]))
            for a, b in zip(i[close <= max_bits], j[close <= max_bits]):
                union(parent, int(a), int(b))


def join(parent: np.ndarray, queries: list[np.ndarray], references: list[np.ndarray], max_bits: int) -> None:
    """Unite every two images i != j of which a hash queries[q][i] is within max_bits bits of a hash
    references[r][j], for any q and r (each an (N, 32) array of hashes)."""
    n = len(parent)
    for lo, hi in bands(max_bits):
        keys = np.concatenate([band_key(reference, lo, hi) for reference in references])
        order = np.argsort(keys, kind="stable").astype(np.int32)  # reference r's image j is entry r * n + j
        keys = keys[order]
        for query in queries:
            for i, at in equal_keys(band_key(query, lo, hi), order, keys):
                j, r = at % n, at // n
                theirs = np.empty((len(j), query.shape[1]), np.uint8)
                for k in np.unique(r):
                    theirs[r == k] = references[k][j[r == k]]
                close = (i != j) & (bit_distance(query[i], theirs) <= max_bits)
                for a, b in zip(i[close], j[close]):
                    union(parent, int(a), int(b))


def join_crops(parent: np.ndarray, turns: list[np.ndarray], packed: np.ndarray, photos: Photos,
               max_bits: int) -> None:
    """Unite each image with the photos it is cut out of (see CROP_SIDE): of the images whose size allows it, the
    closest by their hashes in each of CROP_CHECKS other groups (crop_candidates). turns: the 8 flips and turns of
    each image's hash; packed: `hashes`."""
    known = photos.sizes[photos.sizes.min(1) > 0]
    if len(known) < 2 or (known == known[0]).all():  # one size (a camera's, generated faces): no copy was cut
        return
    pairs = crop_candidates(turns, packed, photos.sizes, np.array([find(parent, i) for i in range(len(parent))]))
    found: set[int] = set()  # copies united with a photo they are cut out of
    for start in range(0, len(pairs), CROP_BATCH):
        batch = pairs[start:start + CROP_BATCH]
        involved = np.unique(batch[:, :2])
        squares = dict(zip(involved.tolist(), grey_squares(store.take(photos.pixels, photos.rows[involved]))))
        for b, a, k in batch.tolist():
            turns_tried = (k,) if k >= 0 else (0, -1 - k)
            if b not in found and find(parent, b) != find(parent, a) and cut_bits(
                    squares[a], photos.sizes[a], squares[b], photos.sizes[b], turns_tried) <= max_bits:
                union(parent, a, b)
                found.add(b)  # its other candidates are farther: the photos they are one with find it from theirs


def crop_candidates(turns: list[np.ndarray], packed: np.ndarray, sizes: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """(P, 3) pairs (copy, photo, flip or turn of the copy, as `oriented`'s k): the copy's size, turned or not, is
    the photo's or less in each direction, down to CROP_SIDE of it, and not the same size (a whole copy is the
    hashes' to find); at most CROP_CHECKS photos per copy, each of another group (roots: each image's group so far)
    and the closest of its group: fewest bits between its square or windows and one of the copy's 8 flips and turns
    (that one, k, is the pair's when within CROP_TURN_BITS, else -1 - k: k and the copy as it is), within
    CROP_HASH_BITS."""
    known = np.flatnonzero(sizes.min(1) > 0)
    if len(known) < 2:
        return np.empty((0, 3), np.int64)
    dims, inverse = np.unique(sizes[known], axis=0, return_inverse=True)
    members = [known[inverse.ravel() == u] for u in range(len(dims))]
    pairs = []
    for u, (width, height) in enumerate(dims.tolist()):
        fits = np.zeros(len(dims), bool)
        for w, h in {(width, height), (height, width)}:
            fits |= cut_fits(w, h, dims[:, 0], dims[:, 1])
        if not fits.any():
            continue
        photos = np.concatenate([members[v] for v in np.flatnonzero(fits)])
        copies = members[u]
        for start in range(0, len(copies), CROP_RANKED):
            chunk = copies[start:start + CROP_RANKED]
            bits, turn = hash_bits(turns, packed, chunk, photos)
            for copy, row, turn_row in zip(chunk.tolist(), bits, turn):
                order = np.argsort(row, kind="stable")
                order = order[row[order] <= CROP_HASH_BITS]
                # the closest photo of each group (photos found one already: a photo and its whole copies)
                _, first = np.unique(roots[photos[order]], return_index=True)
                order = order[np.sort(first)]
                order = order[roots[photos[order]] != roots[copy]][:CROP_CHECKS]
                # the turn the hashes say; where they are too far to say it, that one and the copy as it is (-1 - k)
                said = TURN_OF_HASH[turn_row[order]]
                said = np.where(row[order] <= CROP_TURN_BITS, said, -1 - said)
                pairs.append(np.stack([np.full(len(order), copy), photos[order], said], 1))
    return np.concatenate(pairs).astype(np.int64) if pairs else np.empty((0, 3), np.int64)


def cut_fits(w, h, wide, high):
    """Whether a copy w x h pixels can be cut out of a photo wide x high (numbers or arrays): no larger each way, at
    least CROP_SIDE of it, and not the same size (a whole copy is the hashes' to find)."""
    return (w <= wide) & (h <= high) & (w >= CROP_SIDE * wide) & (h >= CROP_SIDE * high) & ((w != wide) | (h != high))


def hash_bits(turns: list[np.ndarray], packed: np.ndarray, copies: np.ndarray,
              photos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(copies, photos) twice: the fewest bits between one of a copy's 8 flips and turns and a photo's square or
    window, and which of the 8 (an index of `turns`)."""
    mine = np.stack([turn[copies] for turn in turns], 1).view(np.uint64)  # (C, 8, 4)
    theirs = packed[photos][:, [0] + list(range(len(FLIPS), packed.shape[1]))].view(np.uint64)  # (P, 11, 4)
    out = np.full((len(copies), len(photos)), LOW * LOW, np.int64)
    best = np.zeros((len(copies), len(photos)), np.int64)
    for turn in range(mine.shape[1]):
        for window in range(theirs.shape[1]):
            xor = np.bitwise_xor(mine[:, None, turn], theirs[None, :, window])  # (C, P, 4)
            bits = np.bitwise_count(xor).sum(-1, dtype=np.int64)
            best[bits < out] = turn
            np.minimum(out, bits, out=out)
    return out, best


def grey_squares(pixels: np.ndarray) -> np.ndarray:
    """(N, CROP_GRID, CROP_GRID) float32 grey of (N, S, S, 3) uint8 squares."""
    weights = resampling(pixels.shape[1], CROP_GRID)
    grey = np.zeros(pixels.shape[:3], np.float32)
    for channel, weight in enumerate(GREY):
        grey += pixels[..., channel] * weight
    return np.einsum("rs,nst,ct->nrc", weights, grey, weights, optimize=True)


def oriented(square: np.ndarray, k: int) -> np.ndarray:
    """Flip or turn k of 8: k quarter-turns, of the transposed square from k = 4."""
    return np.rot90(square.T if k >= 4 else square, k % 4)


def cut_bits(photo: np.ndarray, photo_size: np.ndarray, copy: np.ndarray, copy_size: np.ndarray,
             turns: tuple[int, ...] = tuple(range(8))) -> int:
    """The fewest bits between the pHashes of what both squares show, over where the copy's square can lie in the
    photo's (its size: a cut without resizing), with the copy flipped or turned by one of `turns` (`oriented`'s k);
    255 when nothing fits. photo, copy: grey_squares; sizes: (width, height) of their files."""
    grid, pad = CROP_GRID, CROP_PAD
    wide, high = (int(v) for v in photo_size)
    side = min(wide, high)
    tried, others, windows = [], [], []
    for k in sorted(set(turns)):
        turned = (k % 2 == 1) != (k >= 4)
        w, h = (int(copy_size[1]), int(copy_size[0])) if turned else (int(copy_size[0]), int(copy_size[1]))
        if not cut_fits(w, h, wide, high):
            continue
        scale = grid * min(w, h) / side  # the copy's square in the photo's pixels
        m = int(round(scale))
        weights = resampling(grid, m)
        small = weights @ oriented(copy, k) @ weights.T
        other = np.zeros((pad, pad), np.float32)
        other[:m, :m] = small - small.mean()
        # where the copy's square can lie, from where its file can lie in the photo's; shifts the circular
        # correlation does not alias: -(pad - grid) < shift <= pad - m
        x_lo = ((w - min(w, h)) / 2 - (wide - side) / 2) * grid / side
        y_lo = ((h - min(w, h)) / 2 - (high - side) / 2) * grid / side
        bounds = [(max(np.floor(lo) - 1, grid - pad + 1), min(np.ceil(lo + span * grid / side) + 1, pad - m))
                  for lo, span in ((y_lo, high - h), (x_lo, wide - w))]
        if all(lo <= hi for lo, hi in bounds):
            tried.append((k, scale))
            others.append(other)
            windows.append(bounds)
    if not tried:
        return LOW * LOW - 1
    centred = np.zeros((pad, pad), np.float32)
    centred[:grid, :grid] = photo - photo.mean()
    product = np.fft.rfft2(centred) * np.conj(np.fft.rfft2(np.stack(others)))
    corrs = np.fft.irfft2(product / (np.abs(product) + 1e-6), s=(pad, pad))
    shift = np.fft.fftfreq(pad, 1 / pad).astype(int)  # correlation index -> shift in pixels, negative past the middle
    peaks = []
    for (k, scale), corr, ((y_lo, y_hi), (x_lo, x_hi)) in zip(tried, corrs, windows):
        ys = np.flatnonzero((shift >= y_lo) & (shift <= y_hi))
        xs = np.flatnonzero((shift >= x_lo) & (shift <= x_hi))
        inside = corr[np.ix_(ys, xs)]
        for flat in np.argsort(inside, axis=None)[::-1][:CROP_PEAKS]:
            iy, ix = (int(v) for v in np.unravel_index(int(flat), inside.shape))
            iy, ix = int(ys[iy]), int(xs[ix])
            y = shift[iy] + vertex(corr[iy - 1, ix], corr[iy, ix], corr[(iy + 1) % pad, ix])
            x = shift[ix] + vertex(corr[iy, ix - 1], corr[iy, ix], corr[iy, (ix + 1) % pad])
            peaks.append((float(corr[iy, ix]), k, float(y), float(x), scale))
    best = LOW * LOW - 1
    for _, k, y, x, scale in sorted(peaks, reverse=True)[:CROP_PEAKS]:
        turned_copy = oriented(copy, k)
        at_peak = overlap_bits(photo, turned_copy, y, x, scale)
        best = min(best, at_peak)
        if at_peak <= CROP_NEAR:  # close: the place may be a fraction of a pixel off
            best = min([best] + [overlap_bits(photo, turned_copy, y + dy, x + dx, scale)
                                 for dy in CROP_STEPS for dx in CROP_STEPS if dy or dx])
        if best <= MAX_BITS:
            break
    return best


def vertex(before: float, at: float, after: float) -> float:
    """Offset (-0.5..0.5) of the top of the parabola through three samples, from the middle one."""
    curve = before - 2 * at + after
    return 0.0 if curve >= 0 else float(np.clip(0.5 * (before - after) / curve, -0.5, 0.5))


def overlap_bits(photo: np.ndarray, copy: np.ndarray, y: float, x: float, scale: float) -> int:
    """Bits between the pHashes of the part both show when the copy's square (CROP_GRID pixels for `scale` of the
    photo's) lies at (y, x) in the photo's; 255 when that part is under CROP_OVERLAP of a side."""
    grid = CROP_GRID
    top, left, bottom, right = max(0.0, y), max(0.0, x), min(grid, y + scale), min(grid, x + scale)
    if min(bottom - top, right - left) < CROP_OVERLAP * grid:
        return LOW * LOW - 1
    factor = grid / scale
    return int(bit_distance(region_bits(photo, top, left, bottom, right),
                            region_bits(copy, (top - y) * factor, (left - x) * factor, (bottom - y) * factor,
                                        (right - x) * factor)))


def region_bits(square: np.ndarray, top: float, left: float, bottom: float, right: float) -> np.ndarray:
    """Packed pHash of the rectangle [top, bottom) x [left, right) (pixels) of a grey square."""
    dct = thumb_dct()
    rows = dct @ area_weights(len(square), THUMB, top, bottom)
    columns = dct @ area_weights(len(square), THUMB, left, right)
    return to_bits(rows @ square @ columns.T)


def bands(max_bits: int) -> list[tuple[int, int]]:
    """max_bits + 1 bands of the LOW * LOW - 1 bits: two hashes within max_bits bits are equal on one of them."""
    edges = np.linspace(0, LOW * LOW - 1, max_bits + 2).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def band_key(packed: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Bits lo..hi-1 (at most 32) of each packed hash as one uint32 per row."""
    first = lo // 8
    bits = np.unpackbits(packed[:, first:(hi + 7) // 8], axis=1)[:, lo - 8 * first:hi - 8 * first]
    key = np.zeros(len(packed), np.uint32)
    for byte in np.packbits(bits, axis=1, bitorder="little").T:  # a byte at a time: no (N, bits) uint64 array
        key = (key << np.uint32(8)) | byte
    return key


def equal_keys(query: np.ndarray, order: np.ndarray, ordered: np.ndarray, batch: int = 1 << 10):
    """Batches of (query index, reference index) pairs whose keys are equal, given the references' keys sorted
    (`ordered`, = reference[order]); memory stays about one batch however large a bucket is."""
    by_key = np.argsort(query, kind="stable")  # sorted queries: searchsorted walks the references once
    lo, hi = np.searchsorted(ordered, query[by_key], "left"), np.searchsorted(ordered, query[by_key], "right")
    hits = np.flatnonzero(hi > lo)
    counts, first, hits = (hi - lo)[hits], lo[hits], by_key[hits]
    ends = np.cumsum(counts)
    start = 0
    while start < len(hits):  # queries in slices whose pairs fit one batch (a larger bucket is a slice of its own)
        done = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + batch, "right")))
        span = counts[start:stop]
        offset = np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span)
        yield np.repeat(hits[start:stop], span), order[np.repeat(first[start:stop], span) + offset]
        start = stop


def find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression: later finds are one step
        parent[i], i = root, parent[i]
    return root


def union(parent: np.ndarray, a: int, b: int) -> None:
    ra, rb = find(parent, a), find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


def band_pairs(keys: np.ndarray, owners: np.ndarray, batch: int = 1 << 10):
    """Batches of (i, j) owner pairs, i < j, whose keys are equal. Runs of equal keys are paired with each
    following member of the run at each offset, so memory stays one batch however large a bucket is."""
    order = np.argsort(keys, kind="stable")
    keys, owners = keys[order], owners[order].astype(np.int32)
    del order
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, len(keys)])
    run_end = np.repeat((starts + lengths).astype(np.int32), lengths)  # where each entry's run of equal keys ends
    position = np.arange(len(keys), dtype=np.int32)
    for offset in range(1, int(lengths.max())):
        left = np.flatnonzero(position + offset < run_end)
        i, j = owners[left], owners[left + offset]
        different = i != j
        i, j = np.minimum(i, j)[different], np.maximum(i, j)[different]
        for start in range(0, len(i), batch):
            yield i[start:start + batch], j[start:start + batch]
