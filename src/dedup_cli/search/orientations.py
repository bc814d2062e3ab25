"""A second proposal channel: perceptual hashes of the thumbnail in all eight orientations.

The embedding rates a copy turned by 90 degrees, mirrored, or strongly recoloured below the
threshold, so such a copy is never proposed and never proved. This channel proposes it the
way the hash tools do, cheaply: each file's stored 32x32 luminance thumbnail gets a 64-bit DCT
hash (pHash: the signs of the 8x8 lowest frequencies against their median) in each of the
eight orientations (four turns, each mirrored). Luminance only, so a hue shift or a tint
barely moves it. One more view, the centre of the frame, proposes crops to 60-75 % of it.
A pair is proposed when one file's hash in some view lies within ``MAX_DISTANCE`` bits of
the other's upright hash; it then goes through the same proof as every other candidate (the
keypoint check confirms turns, mirror images and crops).

Work stays per file: the upright hashes are indexed by four 16-bit chunks (a pair within
``MAX_DISTANCE`` bits almost always shares one chunk exactly), a chunk shared by more than
``BUCKET_CAP`` files (a folder of near-identical documents) is not used, and each file keeps
at most ``NEIGHBOURS`` proposals, the closest first.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dedup_cli.core.pairs import Pairs
from dedup_cli.search.nearest import NEIGHBOURS

SIDE = 32  # the stored thumbnail's side (media.decode.THUMBNAIL_SIDE)
MAX_DISTANCE = 8  # bits of 64 within which two hashes propose a pair
BUCKET_CAP = 256  # a 16-bit chunk value shared by more files than this proposes nothing
CHUNKS = 4
CROP_VIEW = 0.7  # share of the frame's side whose centre is hashed as one more view
VIEWS = 9  # hashes per file: eight orientations and the centre crop


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    """The 8 lowest rows of the orthonormal DCT-II matrix of size ``SIDE``."""
    n = np.arange(SIDE)
    k = np.arange(8)[:, None]
    matrix = np.cos(np.pi * (2 * n + 1) * k / (2 * SIDE)) * np.sqrt(2 / SIDE)
    matrix[0] /= np.sqrt(2)
    rows: np.ndarray = matrix.astype(np.float32)
    return rows


def _low_frequencies(images: np.ndarray) -> np.ndarray:
    """The 8x8 lowest DCT coefficients of each image of a stack (N, SIDE, SIDE)."""
    d = _dct_rows()
    coefficients: np.ndarray = d @ images.astype(np.float32) @ d.T
    return coefficients


def _signs_of(coefficients: np.ndarray) -> np.ndarray:
    """64-bit hashes: each coefficient against the median of the non-DC ones."""
    flat = coefficients.reshape(len(coefficients), 64)
    bits = flat > np.median(flat[:, 1:], axis=1, keepdims=True)
    hashed: np.ndarray = np.packbits(bits, axis=1, bitorder="little").view("<u8")[:, 0]
    return hashed


def orientation_hashes(thumbnails: np.ndarray) -> np.ndarray:
    """(N, 8) hashes of N thumbnails (N, SIDE, SIDE) uint8; column 0 is upright, then its
    mirror image, then each quarter turn (counter-clockwise) and its mirror image.

    The DCT is taken once: turning and mirroring an image only transposes its coefficients
    and flips the signs of the odd ones, so the eight views cost one transform."""
    odd = ((-1.0) ** np.arange(8)).astype(np.float32)
    coefficients = _low_frequencies(thumbnails)
    views = []
    for _ in range(4):
        views += [coefficients, coefficients * odd[None, None, :]]  # mirror: odd columns
        coefficients = coefficients.transpose(0, 2, 1) * odd[None, :, None]  # a quarter turn
    stacked: np.ndarray = np.stack([_signs_of(v) for v in views], axis=1)
    return stacked


def view_hashes(thumbnails: np.ndarray) -> np.ndarray:
    """(N, 9) hashes: the eight orientations (``orientation_hashes``), then the hash of the
    centre ``CROP_VIEW`` of the frame brought back to ``SIDE``. Asked against the others'
    upright hashes, that last one proposes a crop of a photo to 60-75 % of its frame, which
    the embedding of a texture or a document rates below the threshold."""
    import cv2

    margin = round(SIDE * (1 - CROP_VIEW) / 2)
    centres = (
        np.stack(
            [
                cv2.resize(t[margin : SIDE - margin, margin : SIDE - margin], (SIDE, SIDE))
                for t in thumbnails
            ]
        )
        if len(thumbnails)
        else np.zeros((0, SIDE, SIDE), np.uint8)
    )
    cropped = _signs_of(_low_frequencies(centres))
    stacked: np.ndarray = np.concatenate([orientation_hashes(thumbnails), cropped[:, None]], axis=1)
    return stacked


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint64, in the array's own shape."""
    as_bytes = np.ascontiguousarray(values.astype("<u8")).view(np.uint8).reshape(-1, 8)
    counted: np.ndarray = np.unpackbits(as_bytes, axis=1).sum(axis=1).reshape(values.shape)
    return counted


def orientation_pairs(
    hashes: np.ndarray,
    rows: np.ndarray,
    known: Pairs | None = None,
    sides: np.ndarray | None = None,
) -> tuple[Pairs, dict[str, int]]:
    """Pairs of ``rows`` (indices into ``hashes``) whose hashes in some orientation lie
    within ``MAX_DISTANCE`` bits, at most ``NEIGHBOURS`` per file, not already in
    ``known``; their ``similarity`` is 1 - distance / 64. Also counts of what was skipped.
    ``hashes`` (N, views): column 0 upright, the others looked up against it. ``sides``
    (one label per row of ``hashes``): only pairs of two sides (``cross``), each file's
    proposals spent on the other side.

    Vectorised: for each 16-bit chunk, every file's eight hashes are looked up in the
    sorted upright chunks (``searchsorted``), matches expanded, distances counted."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    upright = hashes[rows, 0].astype(np.uint64)
    queries = hashes[rows].astype(np.uint64).reshape(-1)  # every view of each file
    owner = np.repeat(np.arange(n, dtype=np.int64), hashes.shape[1])
    found_a, found_b, crowded = [], [], 0
    for c in range(CHUNKS):
        shift = np.uint64(16 * c)
        keys = (upright >> shift) & np.uint64(0xFFFF)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        wanted = (queries >> shift) & np.uint64(0xFFFF)
        lo = np.searchsorted(sorted_keys, wanted, side="left")
        hi = np.searchsorted(sorted_keys, wanted, side="right")
        count = hi - lo
        crowded += int(np.count_nonzero(count > BUCKET_CAP))
        count[count > BUCKET_CAP] = 0
        total = int(count.sum())
        if total == 0:
            continue
        which = np.repeat(np.arange(len(queries)), count)
        within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        other = order[np.repeat(lo, count) + within]
        found_a.append(which)
        found_b.append(other)
    if not found_a:
        return Pairs.empty(), {"crowded_chunks": crowded, "proposed": 0}
    query = np.concatenate(found_a)
    other = np.concatenate(found_b)
    mine = owner[query]
    keep = mine != other
    if sides is not None:
        keep &= sides[rows[mine]] != sides[rows[other]]
    query, other, mine = query[keep], other[keep], mine[keep]
    distance = popcount(queries[query] ^ upright[other])
    close = distance <= MAX_DISTANCE
    mine, other, distance = mine[close], other[close], distance[close]
    # One entry per (file, other): the smallest distance over orientations and chunks.
    order = np.lexsort((distance, other, mine))
    mine, other, distance = mine[order], other[order], distance[order]
    first = np.ones(len(mine), dtype=bool)
    first[1:] = (mine[1:] != mine[:-1]) | (other[1:] != other[:-1])
    mine, other, distance = mine[first], other[first], distance[first]
    # Each file's NEIGHBOURS closest.
    order = np.lexsort((other, distance, mine))
    mine, other, distance = mine[order], other[order], distance[order]
    starts = np.searchsorted(mine, mine, side="left")
    rank = np.arange(len(mine)) - starts
    near = rank < NEIGHBOURS
    a, b, distance = rows[mine[near]], rows[other[near]], distance[near]
    left, right = np.minimum(a, b), np.maximum(a, b)
    keys = (left << 32) | right
    order = np.lexsort((distance, keys))
    keys, distance = keys[order], distance[order]
    unique = np.ones(len(keys), dtype=bool)
    unique[1:] = keys[1:] != keys[:-1]
    keys, distance = keys[unique], distance[unique]
    if known is not None and len(known.left):
        known_keys = (np.minimum(known.left, known.right).astype(np.int64) << 32) | np.maximum(
            known.left, known.right
        ).astype(np.int64)
        fresh = ~np.isin(keys, known_keys)
        keys, distance = keys[fresh], distance[fresh]
    pairs = Pairs(keys >> 32, keys & 0xFFFFFFFF, (1 - distance / 64).astype(np.float32))
    return pairs, {"crowded_chunks": crowded, "proposed": len(keys)}


def thumbnail_stack(thumbnails: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """The readable thumbnails as one (N, SIDE, SIDE) array, and which of the given ones
    they are (a missing or damaged one proposes nothing)."""
    good = [k for k, t in enumerate(thumbnails) if t is not None and len(t) == SIDE * SIDE]
    stack = np.frombuffer(b"".join(thumbnails[k] or b"" for k in good), dtype=np.uint8)
    return stack.reshape(len(good), SIDE, SIDE), np.array(good, dtype=np.int64)
