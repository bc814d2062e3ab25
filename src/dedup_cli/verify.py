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

from dedup_cli.imageio import THUMBNAIL_SIDE

MIN_CORRELATION = 0.90
# Alone (without the geometric check's dense comparison of the files), thumbnails confirm a
# pair only at this: two screenshots of one app showing different photos correlate up to
# 0.98 at 32x32; re-encodes, resizes, tone changes and blur of real photos at >= 0.994.
MIN_CORRELATION_ALONE = 0.99
MIN_COVERAGE = 0.80  # of each side: a crop of up to 20% per dimension is still a copy
_SCALES = (1.0, 0.95, 0.9, 0.85, 0.8)
_OFFSETS = 5  # positions tried along each axis for every scale
PIXEL = "pixels"


@lru_cache(maxsize=1)
def _sampling_grid() -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates (candidates x side x side) for every crop window tried."""
    side = THUMBNAIL_SIDE
    unit = (np.arange(side) + 0.5) / side
    ys, xs = [], []
    for sy in _SCALES:
        for sx in _SCALES:
            for oy in np.linspace(0.0, 1.0 - sy, _OFFSETS if sy < 1 else 1):
                for ox in np.linspace(0.0, 1.0 - sx, _OFFSETS if sx < 1 else 1):
                    y = (oy + sy * unit) * side - 0.5
                    x = (ox + sx * unit) * side - 0.5
                    ys.append(np.broadcast_to(y[:, None], (side, side)))
                    xs.append(np.broadcast_to(x[None, :], (side, side)))
    return np.stack(ys), np.stack(xs)


def _bilinear(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    side = image.shape[0]
    ys = np.clip(ys, 0, side - 1)
    xs = np.clip(xs, 0, side - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, side - 1)
    x1 = np.minimum(x0 + 1, side - 1)
    wy = ys - y0
    wx = xs - x0
    top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
    bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
    result: np.ndarray = top * (1 - wy) + bottom * wy
    return result


def _standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = values.reshape(values.shape[0], -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    return centred, np.sqrt((centred * centred).sum(axis=1))


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The eight flips and quarter turns of a square thumbnail (identity first)."""
    turns = [np.rot90(image, k) for k in range(4)]
    return turns + [np.fliplr(t) for t in turns]


def aligned_correlation(a: bytes, b: bytes, flips: bool = False) -> float:
    """Best correlation of one thumbnail against crop windows of the other, both ways;
    with ``flips``, also against the other's mirror images and quarter turns."""
    side = THUMBNAIL_SIDE
    img_a = np.frombuffer(a, dtype=np.uint8).reshape(side, side).astype(np.float64)
    img_b = np.frombuffer(b, dtype=np.uint8).reshape(side, side).astype(np.float64)
    if flips:
        return max(_aligned(img_a, np.ascontiguousarray(v)) for v in dihedral(img_b))
    return _aligned(img_a, img_b)


def _aligned(img_a: np.ndarray, img_b: np.ndarray) -> float:
    ys, xs = _sampling_grid()
    best = -1.0
    for outer, inner in ((img_a, img_b), (img_b, img_a)):
        windows = _bilinear(outer, ys, xs)
        centred, norms = _standardise(windows)
        target, target_norm = _standardise(inner[None])
        if float(target_norm[0]) < 1e-6:
            # A flat image: a copy only if the other is flat too, at the same level.
            flat = norms < 1e-6
            level = np.abs(windows.reshape(len(windows), -1).mean(axis=1) - inner.mean())
            if np.any(flat & (level < 4)):
                return 1.0
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = (centred @ target[0]) / (norms * target_norm[0])
        corr = np.nan_to_num(corr, nan=-1.0)
        best = max(best, float(corr.max()))
    return best


def confirm(
    a: bytes | None, b: bytes | None, min_correlation: float = MIN_CORRELATION, flips: bool = False
) -> bool:
    """True when the thumbnails show the same picture up to resize, re-encode and small crop
    (and, with ``flips``, a mirror image or a quarter turn)."""
    if a is None or b is None:
        return False
    return aligned_correlation(a, b, flips) >= min_correlation
