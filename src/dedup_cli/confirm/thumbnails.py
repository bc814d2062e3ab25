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


class ThumbnailScreen:
    """``confirm`` for many pairs at once, with the same answers and most of the work done
    once per file instead of once per pair.

    Two sound shortcuts decide most pairs without trying the crop windows: if the two
    thumbnails already correlate at ``min_correlation`` frame on frame (the identity window),
    the pair passes; if their angle (as centred unit vectors) exceeds the farthest any crop
    window can move either thumbnail (its *reach*, measured once per file) plus the angle of
    ``min_correlation``, no window of either can reach it (triangle inequality on the
    sphere), and the pair fails. Only pairs in between get the full ``confirm``."""

    def __init__(self, min_correlation: float = MIN_CORRELATION_ALONE) -> None:
        self.min_correlation = min_correlation
        self.slack = float(np.arccos(min_correlation))
        self._facts: dict[bytes, tuple[np.ndarray, float] | None] = {}
        self.decided_cheaply = 0

    def _of(self, thumbnail: bytes) -> tuple[np.ndarray, float] | None:
        """(centred unit vector, reach in radians) of a thumbnail; None when flat."""
        if thumbnail not in self._facts:
            side = THUMBNAIL_SIDE
            image = np.frombuffer(thumbnail, dtype=np.uint8).reshape(side, side).astype(np.float64)
            centred = (image - image.mean()).ravel()
            norm = float(np.sqrt(centred @ centred))
            if float(image.std()) < 1e-6 or norm < 1e-9:
                self._facts[thumbnail] = None
            else:
                windows = _window_correlations(image, image)
                valid = windows[windows > -1.0]
                lowest = float(valid.min()) if valid.size else -1.0
                reach = float(np.arccos(np.clip(lowest, -1.0, 1.0)))
                self._facts[thumbnail] = (centred / norm, reach)
        return self._facts[thumbnail]

    def agree(self, a: bytes | None, b: bytes | None) -> bool:
        """Exactly ``confirm(a, b, min_correlation)``."""
        side = THUMBNAIL_SIDE * THUMBNAIL_SIDE
        if a is None or b is None or len(a) != side or len(b) != side:
            return False
        fa, fb = self._of(a), self._of(b)
        if fa is not None and fb is not None:
            frame_on_frame = float(np.clip(fa[0] @ fb[0], -1.0, 1.0))
            if frame_on_frame >= self.min_correlation:
                self.decided_cheaply += 1
                return True
            if np.arccos(frame_on_frame) > max(fa[1], fb[1]) + self.slack + 1e-6:
                self.decided_cheaply += 1
                return False
        return aligned_correlation(a, b) >= self.min_correlation

    def forget(self) -> None:
        """Drop the per-file facts (about 8 KB a file)."""
        self._facts.clear()
