"""Pixel-level confirmation of candidate pairs, so look-alikes are never planned for removal.

Embeddings rate two different photos of one scene or one texture as very similar, often more
similar than a re-encoded copy. A candidate pair is therefore confirmed only when the same
bytes are found, or when the small grayscale thumbnails stored at hashing time agree after
the best alignment that a modest crop or resize could explain: one image must map onto a
region covering at least ``MIN_COVERAGE`` of the other in each direction with a Pearson
correlation of at least ``MIN_CORRELATION``. A pan, a second shot or another patch of the same
texture fails that test even when the embeddings agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from dedup_cli.media.decode import THUMBNAIL_SIDE

MIN_CORRELATION = 0.90
# Alone (without the geometric check's dense comparison of the files), thumbnails confirm a
# pair only at this: two screenshots of one app showing different photos correlate up to
# 0.98 at 32x32; re-encodes, resizes, tone changes and blur of real photos at >= 0.994.
MIN_CORRELATION_ALONE = 0.99
MIN_COVERAGE = 0.80  # of each side: a crop of up to 20% per dimension is still a copy
_SCALES = (1.0, 0.95, 0.9, 0.85, 0.8)
_OFFSETS = 5  # positions tried along each axis for every scale


@lru_cache(maxsize=1)
def _resampling() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear resampling along one axis for every (scale, offset) window tried, as
    ``(n, side, side)`` matrices ``R`` (output x source), their column sums and ``R.T @ R``.

    A crop window of image X is ``R_i @ X @ R_j.T`` (the resampling is separable), so the
    correlation of every window with a target follows from a few small matrix products,
    without materialising the windows."""
    side = THUMBNAIL_SIDE
    unit = (np.arange(side) + 0.5) / side
    blocks = []
    for scale in _SCALES:
        for offset in np.linspace(0.0, 1.0 - scale, _OFFSETS if scale < 1 else 1):
            coords = np.clip((offset + scale * unit) * side - 0.5, 0, side - 1)
            low = np.floor(coords).astype(np.int64)
            high = np.minimum(low + 1, side - 1)
            weight = coords - low
            block = np.zeros((side, side))
            np.add.at(block, (np.arange(side), low), 1 - weight)
            np.add.at(block, (np.arange(side), high), weight)
            blocks.append(block)
    resample = np.stack(blocks)
    return resample, resample.sum(axis=1), resample.transpose(0, 2, 1) @ resample


def _window_correlations(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Pearson correlation of every crop window of ``outer`` (resampled to full size) with
    ``inner``; -1 where a window is flat."""
    resample, column_sums, gram = _resampling()
    n = resample.shape[0]
    pixels = float(inner.size)
    target = inner - inner.mean()
    rows = resample @ outer  # rows[i] = R_i @ X: the row resampling of every window
    # <R_i X R_j^T, T> = <R_i X, T R_j>
    dots = rows.reshape(n, -1) @ (target @ resample).reshape(n, -1).T
    sums = rows.sum(axis=1) @ column_sums.T
    # ||R_i X R_j^T||^2 = <(R_i X)^T (R_i X), R_j^T R_j>
    squares = (rows.transpose(0, 2, 1) @ rows).reshape(n, -1) @ gram.reshape(n, -1).T
    spread = np.sqrt(np.maximum(squares - sums * sums / pixels, 0.0))
    target_norm = float(np.sqrt((target * target).sum()))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = dots / (spread * target_norm)
    corr[spread < 1e-3] = -1.0
    result: np.ndarray = np.nan_to_num(corr, nan=-1.0).ravel()
    return result


def view_thumbnail(thumbnail: bytes | None, view: int) -> bytes | None:
    """A stored thumbnail in one of ``geometry.VIEWS`` (a square thumbnail turns as the
    picture does); a missing or damaged one stays missing."""
    side = THUMBNAIL_SIDE
    if thumbnail is None or len(thumbnail) != side * side:
        return None
    turns, mirror = divmod(view, 2)
    image = np.rot90(np.frombuffer(thumbnail, dtype=np.uint8).reshape(side, side), turns)
    return np.ascontiguousarray(image[:, ::-1] if mirror else image).tobytes()


def aligned_correlation(a: bytes, b: bytes) -> float:
    """Best correlation of one thumbnail against crop windows of the other, both ways."""
    side = THUMBNAIL_SIDE
    img_a = np.frombuffer(a, dtype=np.uint8).reshape(side, side).astype(np.float64)
    img_b = np.frombuffer(b, dtype=np.uint8).reshape(side, side).astype(np.float64)
    return _aligned(img_a, img_b)


def _aligned(img_a: np.ndarray, img_b: np.ndarray) -> float:
    best = -1.0
    for outer, inner in ((img_a, img_b), (img_b, img_a)):
        if float(inner.std()) < 1e-6:
            # A flat image: a copy only if the other is flat too, at the same level.
            if float(outer.std()) < 4 and abs(float(outer.mean() - inner.mean())) < 4:
                return 1.0
            continue
        best = max(best, float(_window_correlations(outer, inner).max()))
    return best


def confirm(a: bytes | None, b: bytes | None, min_correlation: float = MIN_CORRELATION) -> bool:
    """True when the thumbnails show the same picture up to resize, re-encode and small
    crop."""
    side = THUMBNAIL_SIDE * THUMBNAIL_SIDE
    if a is None or b is None or len(a) != side or len(b) != side:
        return False  # missing, or damaged in the database: no evidence
    return aligned_correlation(a, b) >= min_correlation


@lru_cache(maxsize=1)
def _coarse() -> tuple[np.ndarray, np.ndarray]:
    """``Q`` (an 8 x 32 block average with orthonormal rows) applied after every window's
    resampling, ``Q @ R``; and ``(Q 1)(Q 1)^T``, what a window's mean becomes under it."""
    coarse = _coarse_matrix()
    resample, _sums, _gram = _resampling()
    ones = coarse @ np.ones(THUMBNAIL_SIDE)
    return coarse @ resample, np.outer(ones, ones)


def _coarse_windows(outer: np.ndarray) -> np.ndarray:
    """Every crop window of ``outer`` that ``_window_correlations`` tries, centred and scaled
    to unit norm, then block-averaged to 8 x 8 by ``Q``: (windows, 64), flat windows left
    out (they never pass)."""
    resample, column_sums, gram = _resampling()
    coarse_resample, mean_image = _coarse()
    n, block, side = coarse_resample.shape
    pixels = float(outer.size)
    rows = resample @ outer
    sums = rows.sum(axis=1) @ column_sums.T
    squares = (rows.transpose(0, 2, 1) @ rows).reshape(n, -1) @ gram.reshape(n, -1).T
    spread = np.sqrt(np.maximum(squares - sums * sums / pixels, 0.0))
    flat_resample = coarse_resample.reshape(n * block, side)
    shrunk = ((coarse_resample @ outer).reshape(n * block, side) @ flat_resample.T).reshape(
        n, block, n, block
    )  # [i, a, j, c]: window (i, j), coarse pixel (a, c)
    level = float(mean_image[0, 0])  # every coarse pixel of a constant image of 1
    valid = spread >= 1e-3
    scale = np.where(valid, 1.0 / np.where(valid, spread, 1.0), 0.0)
    shrunk -= (level * sums / pixels)[:, None, :, None]
    shrunk *= scale[:, None, :, None]
    ordered = shrunk.transpose(0, 2, 1, 3).reshape(n * n, block * block)
    result: np.ndarray = ordered[valid.ravel()]
    return result


def _coarse_unit(image: np.ndarray) -> np.ndarray:
    """The thumbnail centred, scaled to unit norm and block-averaged like the windows."""
    centred = image - image.mean()
    unit = centred / max(float(np.sqrt((centred * centred).sum())), 1e-12)
    q = _coarse_matrix()
    result: np.ndarray = (q @ unit @ q.T).ravel()
    return result


@lru_cache(maxsize=1)
def _coarse_matrix() -> np.ndarray:
    side = THUMBNAIL_SIDE
    coarse = np.zeros((side // 4, side))
    for row in range(side // 4):
        coarse[row, 4 * row : 4 * row + 4] = 0.5
    return coarse


def agreeing(
    a: Sequence[bytes | None],
    b: Sequence[bytes | None],
    min_correlation: float = MIN_CORRELATION_ALONE,
) -> np.ndarray:
    """``confirm(a[k], b[k], min_correlation)`` for every k, with the same answers, and
    most of the work done once per thumbnail instead of once per pair.

    Two sound shortcuts decide most pairs without the full window search. Frame on frame
    at ``min_correlation`` already, a pair passes (the identity is one of the windows).
    A window passes only within distance ``sqrt(2 (1 - min_correlation))`` of the other
    thumbnail (both centred unit vectors), and a block average (an orthogonal projection)
    never lengthens a distance: so when no window of either thumbnail comes that close
    after block-averaging to 8 x 8, which costs 64 products per window, the pair fails.
    Only pairs that neither shortcut decides get ``aligned_correlation``."""
    n = len(a)
    result = np.zeros(n, dtype=bool)
    number: dict[bytes, int] = {}
    pixels: list[np.ndarray] = []

    def intern(thumbnail: bytes | None) -> int:
        if thumbnail is None or len(thumbnail) != THUMBNAIL_SIDE * THUMBNAIL_SIDE:
            return -1
        if thumbnail not in number:
            number[thumbnail] = len(pixels)
            pixels.append(np.frombuffer(thumbnail, dtype=np.uint8))
        return number[thumbnail]

    ia = np.array([intern(t) for t in a], dtype=np.int64)
    ib = np.array([intern(t) for t in b], dtype=np.int64)
    if not pixels:
        return result
    side = THUMBNAIL_SIDE
    images = np.stack(pixels)  # uint8, (thumbnails, 1024)
    flat = images.std(axis=1) < 1e-6
    coarse = np.stack([_coarse_unit(i.reshape(side, side).astype(np.float64)) for i in images])
    both = (ia >= 0) & (ib >= 0)
    undecided = np.flatnonzero(both & ~(flat[np.maximum(ia, 0)] | flat[np.maximum(ib, 0)]))
    full_check = np.flatnonzero(both & (flat[np.maximum(ia, 0)] | flat[np.maximum(ib, 0)]))
    # Frame on frame.
    for start in range(0, len(undecided), 4096):  # 4,096 pairs: 64 MB of float64 a side
        chunk = undecided[start : start + 4096]
        x = images[ia[chunk]].astype(np.float64)
        y = images[ib[chunk]].astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        y -= y.mean(axis=1, keepdims=True)
        correlation = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        result[chunk[correlation >= min_correlation]] = True
    undecided = undecided[~result[undecided]]
    # The windows of each thumbnail against the other side's, once per thumbnail and side.
    reach = 2.0 * (1.0 - min_correlation) + 1e-9
    possible = np.zeros(n, dtype=bool)
    for mine, theirs in ((ia, ib), (ib, ia)):
        order = undecided[np.argsort(mine[undecided], kind="stable")]
        bounds = np.flatnonzero(np.diff(mine[order])) + 1
        for group in np.split(order, bounds):
            if len(group) == 0:
                continue
            windows = _coarse_windows(images[mine[group[0]]].reshape(side, side).astype(float))
            if len(windows) == 0:
                continue
            others = coarse[theirs[group]]  # (pairs, 64)
            distance = (
                (windows * windows).sum(axis=1)[:, None]
                + (others * others).sum(axis=1)[None, :]
                - 2.0 * windows @ others.T
            )
            possible[group[distance.min(axis=0) <= reach]] = True
    for k in [*np.flatnonzero(possible).tolist(), *full_check.tolist()]:
        if not result[k]:
            result[k] = aligned_correlation(a[k], b[k]) >= min_correlation
    return result
