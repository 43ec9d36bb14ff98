"""Near-duplicates for prepare: a perceptual hash of each decoded square (and of its mirror), and groups of images
whose hashes are within a few bits, found through banded hashes (LSH) instead of comparing all pairs. Pure: arrays
in, arrays out."""
from __future__ import annotations

import numpy as np

from facelab.data import pixels as store

THUMB, LOW = 32, 16  # pHash: DCT of a 32 x 32 grey thumbnail, the 16 x 16 lowest frequencies but the mean
# Bits (of 255) two hashes may differ in and still be one photo. Measured on the real sets (Yale B and FER2013,
# 64 px squares): of copies re-saved at JPEG quality 50, resized by a pixel, made CMYK or 16-bit, 99-100% are within
# 12 bits (mirrors and CMYK: 0); of 1,884 distinct photos, 4 have another within 12 bits. dHash (256 bits) put
# Yale B's dark lighting series within 10 bits of each other and JPEG copies 35 apart, so the DCT it is.
MAX_BITS = 12
BANDS = MAX_BITS + 1  # pigeonhole: two hashes within MAX_BITS bits are equal on at least one of MAX_BITS + 1 bands
GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL's convert("L")


def area_weights(size: int, bins: int) -> np.ndarray:
    """(bins, size) averaging weights: bin k covers pixels [k * size / bins, (k + 1) * size / bins), split pixels
    shared in proportion. Symmetric under reversal, so the thumbnail of a mirror is the mirrored thumbnail."""
    edges = np.arange(bins + 1) * size / bins
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return (overlap / overlap.sum(1, keepdims=True)).astype(np.float32)


def dct_matrix(n: int, k: int) -> np.ndarray:
    """(k, n): the first k rows of the orthonormal DCT-II."""
    u, x = np.arange(k)[:, None], np.arange(n)[None, :]
    scale = np.where(u == 0, float(np.sqrt(1 / n)), float(np.sqrt(2 / n)))
    return (scale * np.cos(np.pi * (2 * x + 1) * u / (2 * n))).astype(np.float32)


def hashes(pixels: np.ndarray) -> np.ndarray:
    """(N, 2, 32) uint8: each image's packed 255-bit pHash ([:, 0]) and its mirror's ([:, 1]).

    pixels: (N, S, S, 3) uint8, an array or PixelStore's memmap (read CHUNK rows at a time, not through the map)."""
    n, side = len(pixels), pixels.shape[1]
    thumb = area_weights(side, THUMB)
    dct = dct_matrix(THUMB, LOW) @ thumb  # (LOW, side): thumbnail and transform in one product
    # A left-right mirror flips the sign of the odd horizontal frequencies and changes nothing else.
    sign = (-1.0) ** np.arange(LOW)
    out = np.empty((n, 2, (LOW * LOW + 7) // 8), np.uint8)
    step = max(1, store.CHUNK_BYTES // store.row_bytes(pixels) // 8)  # the float work is about 8x the uint8 chunk
    for start in range(0, n, step):
        chunk = store.take(pixels, np.arange(start, min(n, start + step)))
        grey = np.zeros(chunk.shape[:3], np.float32)  # channel by channel: no float copy of all three channels
        for channel, weight in enumerate(GREY):
            grey += chunk[..., channel] * weight
        coeffs = np.einsum("rs,nst,ct->nrc", dct, grey, dct, optimize=True)
        for k, view in enumerate((coeffs, coeffs * sign)):
            flat = view.reshape(len(chunk), -1)[:, 1:]  # the mean (DC) says only how bright the photo is
            bits = flat > np.median(flat, axis=1, keepdims=True)
            out[start:start + len(chunk), k] = np.packbits(bits, axis=1)
    return out


def bit_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed hashes, row by row."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(-1)


def near_groups(packed: np.ndarray, max_bits: int = MAX_BITS) -> np.ndarray:
    """(N,) int64 group ids: images whose hashes (either one mirrored) are within max_bits bits share an id,
    transitively; an image with no near copy has a group of its own. Ids are the smallest member's index.

    Candidates come from BANDS equal bands (every pair within max_bits has one, by pigeonhole), then are checked
    on all bits; sorting each band's keys finds equal ones in O(N log N) instead of N^2 / 2 comparisons."""
    n = len(packed)
    parent = np.arange(n)
    if n < 2:
        return parent
    edges = np.linspace(0, LOW * LOW - 1, BANDS + 1).astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        # Each image enters twice, as itself and as its mirror: a mirrored copy then shares a band with it.
        # Only this band's bytes are unpacked, so memory stays a few bytes per image.
        keys = np.concatenate([band_key(packed[:, side], lo, hi) for side in (0, 1)])
        owners = np.concatenate([np.arange(n), np.arange(n)])
        for i, j in band_pairs(keys, owners):
            close = np.minimum(bit_distance(packed[i, 0], packed[j, 0]), bit_distance(packed[i, 0], packed[j, 1]))
            for a, b in zip(i[close <= max_bits], j[close <= max_bits]):
                union(parent, int(a), int(b))
    return np.array([find(parent, i) for i in range(n)], np.int64)


def band_key(packed: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Bits lo..hi-1 of each packed hash as one integer per row."""
    first = lo // 8
    bits = np.unpackbits(packed[:, first:(hi + 7) // 8], axis=1)[:, lo - 8 * first:hi - 8 * first]
    return bits @ (1 << np.arange(hi - lo, dtype=np.uint64))


def band_pairs(keys: np.ndarray, owners: np.ndarray, batch: int = 1 << 20):
    """Batches of (i, j) owner pairs, i < j, whose keys are equal. Runs of equal keys are paired with each
    following member of the run at each offset, so memory stays one batch however large a bucket is."""
    order = np.argsort(keys, kind="stable")
    keys, owners = keys[order], owners[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, len(keys)])
    run_start = np.repeat(starts, lengths)
    position = np.arange(len(keys))
    for offset in range(1, int(lengths.max())):
        left = position[position + offset < run_start + np.repeat(lengths, lengths)]
        i, j = owners[left], owners[left + offset]
        different = i != j
        i, j = np.minimum(i, j)[different], np.maximum(i, j)[different]
        for start in range(0, len(i), batch):
            yield i[start:start + batch], j[start:start + batch]


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
