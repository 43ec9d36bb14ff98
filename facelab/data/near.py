"""Near-duplicates for prepare: perceptual hashes of each decoded square (in its 8 flips and quarter-turns, and of
windows inside it), and groups of images that are one photo re-saved, resized, mirrored, turned or cropped, found
through banded hashes (LSH) instead of comparing all pairs. Pure: arrays in, arrays out."""
from __future__ import annotations

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


def near_groups(packed: np.ndarray, max_bits: int = MAX_BITS) -> np.ndarray:
    """(N,) int64 group ids: images that are one photo share an id, transitively; an image with no near copy has a
    group of its own. Ids are the smallest member's index. packed: `hashes` of each image.

    Two images are one photo when their hashes are within max_bits bits: the one's, or its mirror's, against the
    other's (as before turns and crops were searched for: those groups stay, turns and crops only add to them); or
    the one flipped, turned or both (any of the 8) against the other's whole square or one of its WINDOWS; or a
    window at an edge against the other's window MOVED_BY inside (a copy whose square is the original's moved).
    Candidates come from equal bands (every pair within max_bits has one, by pigeonhole), then are checked on all
    bits; sorting each band's keys finds equal ones in O(N log N) instead of N^2 / 2 comparisons."""
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
