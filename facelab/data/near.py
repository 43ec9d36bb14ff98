"""Near-duplicates for prepare: groups of images that are one photo re-saved, resized, mirrored, turned or cropped,
found through the banded pHashes (facelab.data.phash) of each decoded square in its 8 flips and quarter-turns and of
windows inside it, instead of comparing all pairs; and copies cut out of a photo anywhere (facelab.data.cuts). Pure:
arrays in, arrays out."""
from __future__ import annotations

import numpy as np

from facelab.data.cuts import CutSearch, Photos, join_crops
from facelab.data.phash import (
    FLIPS,
    MAX_BITS,
    WINDOWS,
    band_key,
    band_pairs,
    bands,
    bit_distance,
    equal_keys,
    find,
    transposed,
    union,
)

# A copy whose square is its original's moved, partly outside it: a portrait photo cut at the top (prepare keeps the
# centre square: a 168 x 192 photo cut 10% at the top has its square moved down by 5.7% of its side) or a landscape
# one cut at a side. Its window of side MOVED_SIDE at the top (left) edge is then close to the original's MOVED_BY lower
# (to the right), so those windows are matched against each other (Yale B: 39 of 64 such copies found alone, 0
# before). Matching every window against every window found 57 but took the search to 10% of prepare; searching each
# candidate pair's crop on thumbnails found 74-80% of the benchmark's copies alone, but its candidates (pairs sharing
# a band) were 159,000 among 10,000 generated faces (benchmarks/README.md).
MOVED_SIDE, MOVED_BY = 0.9, 0.05


def near_groups(packed: np.ndarray, max_bits: int = MAX_BITS, photos: Photos | None = None) -> np.ndarray:
    """near_search's group ids."""
    return near_search(packed, max_bits, photos)[0]


def near_search(packed: np.ndarray, max_bits: int = MAX_BITS,
                photos: Photos | None = None) -> tuple[np.ndarray, CutSearch | None]:
    """(N,) int64 group ids, and what the search for cut copies did (None without photos or a second image): images
    that are one photo share an id, transitively; an image with no near copy has a group of its own. Ids are the
    smallest member's index. packed: `hashes` of each image.

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
        return parent, None
    mirror_pairs(parent, packed, max_bits)
    if packed.shape[1] == 2:  # the photo and its mirror only: nothing else to search
        return np.array([find(parent, i) for i in range(n)], np.int64), None
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
    cuts = join_crops(parent, photos, max_bits) if photos is not None else None
    return np.array([find(parent, i) for i in range(n)], np.int64), cuts


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
