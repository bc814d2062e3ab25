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


def upright_hashes(thumbnails: np.ndarray) -> np.ndarray:
    """(N,) upright hashes of N thumbnails (N, SIDE, SIDE): column 0 of
    ``orientation_hashes``, for thumbnails that are only looked up."""
    return _signs_of(_low_frequencies(thumbnails))


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


ChunkIndex = list[tuple[np.ndarray, np.ndarray]]  # per chunk: order, sorted chunk values


def _chunk_index(upright: np.ndarray) -> ChunkIndex:
    """The upright hashes' 16-bit chunks, each sorted once for any number of lookups."""
    index = []
    for c in range(CHUNKS):
        keys = (upright >> np.uint64(16 * c)) & np.uint64(0xFFFF)
        order = np.argsort(keys, kind="stable")
        index.append((order, keys[order]))
    return index


def _shared_chunks(
    upright: np.ndarray | ChunkIndex, queries: np.ndarray, one_bit: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Every (query, upright) index pair that shares one 16-bit chunk exactly (``one_bit``:
    or but for one bit, so that any two hashes within 7 bits meet), a chunk value held by
    more than ``BUCKET_CAP`` upright hashes left out; and how many lookups were left out
    so. ``upright``: the hashes, or their ``_chunk_index``. Vectorised: each chunk of every
    query is looked up in the sorted upright chunks (``searchsorted``) and the matches
    expanded."""
    index = _chunk_index(upright) if isinstance(upright, np.ndarray) else upright
    found_a, found_b, crowded = [], [], 0
    probes = [np.uint64(0)] + ([np.uint64(1 << b) for b in range(16)] if one_bit else [])
    for c, (order, sorted_keys) in enumerate(index):
        shift = np.uint64(16 * c)
        wanted = np.concatenate([((queries >> shift) & np.uint64(0xFFFF)) ^ p for p in probes])
        lo = np.searchsorted(sorted_keys, wanted, side="left")
        hi = np.searchsorted(sorted_keys, wanted, side="right")
        count = hi - lo
        crowded += int(np.count_nonzero(count > BUCKET_CAP))
        count[count > BUCKET_CAP] = 0
        total = int(count.sum())
        if total == 0:
            continue
        which = np.repeat(np.arange(len(wanted)) % max(len(queries), 1), count)
        within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        found_a.append(which)
        found_b.append(order[np.repeat(lo, count) + within])
    if not found_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), crowded
    return np.concatenate(found_a), np.concatenate(found_b), crowded


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
    proposals spent on the other side."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    upright = hashes[rows, 0].astype(np.uint64)
    queries = hashes[rows].astype(np.uint64).reshape(-1)  # every view of each file
    owner = np.repeat(np.arange(n, dtype=np.int64), hashes.shape[1])
    query, other, crowded = _shared_chunks(upright, queries)
    if not len(query):
        return Pairs.empty(), {"crowded_chunks": crowded, "proposed": 0}
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


INSIDE_PER_REGION = 3  # files proposed for each picture found inside another, closest first
INSIDE_BATCH = 256  # regions looked up at once: at most 17 x 4 x 256 matches each


def inside_pairs(
    hashes: np.ndarray,
    rows: np.ndarray,
    region_hashes: np.ndarray,
    region_rows: np.ndarray,
    sides: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Files of ``rows`` whose upright hash lies within ``MAX_DISTANCE`` bits of a picture
    found inside another file (``media.regions``): ``region_hashes`` (M,) of the pictures
    inside ``region_rows`` (M,, rows of ``hashes``). Returns ``(picture, container,
    region)``: row of the file shown, row of the file showing it, index of the region; at
    most ``INSIDE_PER_REGION`` per region, so the work stays per file. ``sides``: only
    pairs across them. Chunks are looked up but for one bit as well (17 lookups a chunk):
    a small picture's hash drifts further than a copy's, and regions are few. The upright
    chunks are sorted once; regions are looked up ``INSIDE_BATCH`` at a time, so memory
    stays bounded however many files show pictures."""
    rows = np.asarray(rows, dtype=np.int64)
    empty = np.zeros(0, np.int64)
    if not len(rows) or not len(region_hashes):
        return empty, empty, empty
    index = _chunk_index(hashes[rows, 0].astype(np.uint64))
    queries = np.asarray(region_hashes, dtype=np.uint64)
    owners = np.asarray(region_rows, dtype=np.int64)
    found = [
        _nearest_inside(hashes, rows, index, queries, owners, start, sides)
        for start in range(0, len(queries), INSIDE_BATCH)
    ]
    return tuple(np.concatenate(parts) for parts in zip(*found))  # type: ignore[return-value]


def _nearest_inside(
    hashes: np.ndarray,
    rows: np.ndarray,
    index: ChunkIndex,
    queries: np.ndarray,
    owners: np.ndarray,
    start: int,
    sides: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``inside_pairs`` for the regions ``start`` to ``start + INSIDE_BATCH``."""
    batch = queries[start : start + INSIDE_BATCH]
    region, other, _crowded = _shared_chunks(index, batch, one_bit=True)
    region = region + start
    picture, container = rows[other], owners[region]
    keep = picture != container
    if sides is not None:
        keep &= sides[picture] != sides[container]
    region, picture, container = region[keep], picture[keep], container[keep]
    distance = popcount(queries[region] ^ hashes[picture, 0].astype(np.uint64))
    close = distance <= MAX_DISTANCE
    region, picture, container, distance = (
        region[close],
        picture[close],
        container[close],
        distance[close],
    )
    order = np.lexsort((picture, distance, region))
    region, picture, container = region[order], picture[order], container[order]
    first = np.ones(len(region), dtype=bool)  # each (region, picture) once, found per chunk
    first[1:] = (region[1:] != region[:-1]) | (picture[1:] != picture[:-1])
    region, picture, container = region[first], picture[first], container[first]
    starts = np.searchsorted(region, region, side="left")
    near = np.arange(len(region)) - starts < INSIDE_PER_REGION
    return picture[near], container[near], region[near]


def thumbnail_stack(thumbnails: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """The readable thumbnails as one (N, SIDE, SIDE) array, and which of the given ones
    they are (a missing or damaged one proposes nothing)."""
    good = [k for k, t in enumerate(thumbnails) if t is not None and len(t) == SIDE * SIDE]
    stack = np.frombuffer(b"".join(thumbnails[k] or b"" for k in good), dtype=np.uint8)
    return stack.reshape(len(good), SIDE, SIDE), np.array(good, dtype=np.int64)
