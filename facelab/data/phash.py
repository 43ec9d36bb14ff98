"""Perceptual hashes (pHash) of decoded squares, of their flips and of windows or any rectangle inside them, and
the banded lookup (LSH) that finds hashes within a few bits of each other without comparing all pairs: what the
near-duplicate search (facelab.data.near) and the search for cut copies (facelab.data.cuts) are built of. Pure:
arrays in, arrays out."""
from __future__ import annotations

import functools

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
    dct = thumb_dct()
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


def running_rows(squares: np.ndarray) -> np.ndarray:
    """(n, S + 1, S) float32: the sums of each square's first 0..S rows."""
    sums = np.zeros((len(squares), squares.shape[1] + 1, squares.shape[2]), np.float32)
    np.cumsum(squares, axis=1, out=sums[:, 1:])
    return sums


def region_bits(sums: np.ndarray, which: np.ndarray, top: np.ndarray, left: np.ndarray, bottom: np.ndarray,
                right: np.ndarray) -> np.ndarray:
    """Packed pHashes of the rectangles [top, bottom) x [left, right) (pixels) of grey squares, one rectangle of
    square which[i] each: the rectangle's THUMB x THUMB area averages (as area_weights', from running sums) and
    their DCT. sums: `running_rows` of the squares."""
    return to_bits(region_coeffs(sums, which, top, left, bottom, right))


def region_coeffs(sums: np.ndarray, which: np.ndarray, top: np.ndarray, left: np.ndarray, bottom: np.ndarray,
                  right: np.ndarray) -> np.ndarray:
    """(n, LOW, LOW) the DCT coefficients region_bits' hashes are made of."""
    thumbs = np.swapaxes(bin_means(sums, which, top, bottom), 1, 2)  # (n, columns, THUMB): rows averaged
    thumbs = np.swapaxes(bin_means(running_rows(thumbs), np.arange(len(thumbs)), left, right), 1, 2)
    dct = thumb_dct()
    return dct @ thumbs @ dct.T


def bin_means(sums: np.ndarray, which: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(n, THUMB, columns) float32: the means of THUMB equal spans of rows from lo to hi (pixels, pixels shared in
    proportion) of square which[i], from the squares' running sums (`running_rows`)."""
    edges = lo[:, None] + np.arange(THUMB + 1) * ((hi - lo) / THUMB)[:, None]  # (n, THUMB + 1)
    whole = np.clip(np.floor(edges).astype(np.int64), 0, sums.shape[1] - 2)
    part = (edges - whole).astype(np.float32)[..., None]
    running = sums[which[:, None], whole]
    above = sums[which[:, None], whole + 1]
    above -= running
    above *= part
    running += above  # the sum of rows up to each edge
    means = np.diff(running, axis=1)
    means *= (THUMB / (hi - lo)).astype(np.float32)[:, None, None]
    return means


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
