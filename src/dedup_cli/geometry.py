"""Geometric confirmation of candidate pairs: crops, flips, rotations and overlays.

The thumbnail check (``verify.py``) only explains resizes, re-encodes and crops of up to 20%.
Here local features find how one picture maps onto the other, and the mapping must say
"copy", not "another shot":

1. ORB keypoints of both images (the second also mirrored) are matched and a similarity
   transform (rotation, uniform scale, shift) is fitted with RANSAC; enough inliers needed.
2. *Containment*: one image must lie inside the other. Every part of the smaller one that
   falls outside the larger must be blank fill (the black corners of a rotated copy, a
   letterbox bar). A camera pan or a stereo pair shows new content at its edge and fails.
3. *Dense agreement*: the contained image, warped into the other's frame, must agree with it
   block by block (local correlation, so tone changes and filters pass) almost everywhere,
   with no block showing different textured content on both sides. Another patch of the
   same texture or another moment of one scene fails, even where keypoints line up.
   A pair that agrees on most of the picture but not all of it is only *related*: an overlay
   or caption, or another photo in the same frame (two screenshots of one app). The two
   cannot be told apart here, so related pairs are reported and never planned.
4. The contained picture must show a large enough part of the other (``MIN_AREA``): a small
   detail cut from a photo is a new picture, not a copy.

The result says which image contains the other, so grouping never keeps the crop and removes
the full picture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.imageio import ImageDecodeError, decode_for_display

GEOMETRY = "geometry"
WORK_SIDE = 512  # keypoints are found at this long side
DENSE_SIDE = 192  # blocks are compared at this long side
MIN_INLIERS = 15
MIN_INLIER_RATIO = 0.25
MIN_AREA = 0.30  # the contained picture covers at least this share of the container
MAX_OUTSIDE_CONTENT = 0.02  # share of the contained picture allowed outside, unless blank
BLOCK_GRID = 8
BLOCK_AGREE = 0.70  # local correlation for a block to agree
MIN_AGREEING = 0.96  # share of informative blocks that must agree (same-template pairs: <= 0.95)
MIN_RELATED = 0.60  # below this the two are not even an edit of one another
MIN_INFORMATIVE = 12  # informative (non-flat) blocks needed to decide at all
FLAT_STD = 8.0  # gray levels: a block or fill region flatter than this carries no evidence
CONFLICT_CORRELATION = 0.3  # a block textured on both sides but this unrelated ...
CONFLICT_STD = 12.0  # ... (both clearly textured) is different content: no copy


@dataclass(frozen=True)
class Features:
    """Keypoints of one image (and of its mirror image) at the working size."""

    gray: np.ndarray  # uint8, long side WORK_SIDE or less
    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray | None
    mirror_points: np.ndarray
    mirror_descriptors: np.ndarray | None


@dataclass(frozen=True)
class GeometricMatch:
    """One picture mapped into the other: ``contained`` (0 or 1) is the one inside."""

    contained: int
    mirrored: bool
    inliers: int
    agreement: float  # share of textured blocks that agree
    conflicts: int  # blocks with different textured content on both sides
    area: float  # share of the container that the contained picture covers
    rotation_degrees: float
    scale: float  # container pixels per contained pixel, at the working size

    @property
    def is_copy(self) -> bool:
        """Agrees everywhere: a copy (crop, flip, rotation, filter) that may be planned.

        Otherwise the two differ in part of the picture: an overlay or caption, or another
        photo in the same frame (two screenshots of one app, two slides of one template
        agree on 82-96% of their blocks, as much as a photo with a sticker). Such a pair is
        *related* and reported, never planned for removal on its own."""
        return self.agreement >= MIN_AGREEING and self.conflicts == 0


def _cv2() -> Any:
    """OpenCV, imported on first use (a find without geometric checks never loads it)."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def opencv_error() -> type[Exception]:
    """OpenCV's exception type (imported lazily, like OpenCV itself)."""
    error: type[Exception] = _cv2().error
    return error


@lru_cache(maxsize=1)
def _orb() -> Any:
    return _cv2().ORB_create(nfeatures=1000, fastThreshold=10)


def _detect(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    keypoints, descriptors = _orb().detectAndCompute(gray, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    return points, descriptors


def features_of_gray(gray: np.ndarray) -> Features:
    """Features of a grayscale image already at (or below) the working size."""
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    points, descriptors = _detect(gray)
    mirror_points, mirror_descriptors = _detect(np.ascontiguousarray(gray[:, ::-1]))
    return Features(gray, points, descriptors, mirror_points, mirror_descriptors)


def load_features(path: str | os.PathLike[str]) -> Features:
    """Decode (EXIF-oriented, JPEG draft mode) and describe one image file."""
    image = decode_for_display(Path(path), WORK_SIDE).convert("L")
    image.thumbnail((WORK_SIDE, WORK_SIDE))
    return features_of_gray(np.asarray(image))


def _fit(
    pa: np.ndarray, da: np.ndarray | None, pb: np.ndarray, db: np.ndarray | None
) -> tuple[np.ndarray, int] | None:
    """Similarity transform a -> b from ratio-tested matches, and its inlier count."""
    cv2 = _cv2()
    if da is None or db is None or len(pa) < MIN_INLIERS or len(pb) < MIN_INLIERS:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    src = pa[[m.queryIdx for m in good]]
    dst = pb[[m.trainIdx for m in good]]
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000, confidence=0.995
    )
    if matrix is None or inliers is None:
        return None
    count = int(inliers.sum())
    if count < MIN_INLIERS or count < MIN_INLIER_RATIO * len(good):
        return None
    return matrix.astype(np.float64), count


def _scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def _outside_is_blank(
    inner: np.ndarray, to_outer: np.ndarray, outer_shape: tuple[int, int]
) -> bool:
    """Whether every pixel of ``inner`` that maps outside ``outer`` is blank fill."""
    h, w = inner.shape
    ys, xs = np.mgrid[0:h, 0:w]
    mapped_x = to_outer[0, 0] * xs + to_outer[0, 1] * ys + to_outer[0, 2]
    mapped_y = to_outer[1, 0] * xs + to_outer[1, 1] * ys + to_outer[1, 2]
    oh, ow = outer_shape
    margin = 2.0
    outside = (
        (mapped_x < -margin)
        | (mapped_x > ow - 1 + margin)
        | (mapped_y < -margin)
        | (mapped_y > oh - 1 + margin)
    )
    share = float(outside.mean())
    if share <= MAX_OUTSIDE_CONTENT:
        return True
    if share > 1 - MIN_AREA:
        return False
    values = inner[outside].astype(np.float64)
    return float(np.percentile(values, 95) - np.percentile(values, 5)) <= 2 * FLAT_STD


def _dense_agreement(
    inner: np.ndarray, to_outer: np.ndarray, outer: np.ndarray
) -> tuple[float, int] | None:
    """Share of informative blocks where ``outer``, warped into the frame of ``inner``,
    agrees with it, and how many blocks show different textured content on both sides;
    None when too few blocks carry any texture to decide.

    Compared in the contained picture's frame, both sides brought to the same scale by an
    area resize first, so a 40% crop is compared at full block resolution without aliasing."""
    cv2 = _cv2()
    f_in = min(1.0, DENSE_SIDE / max(inner.shape))
    f_out = min(1.0, f_in / _scale(to_outer))
    small_inner = cv2.resize(inner, None, fx=f_in, fy=f_in, interpolation=cv2.INTER_AREA)
    small_outer = cv2.resize(outer, None, fx=f_out, fy=f_out, interpolation=cv2.INTER_AREA)
    # small inner -> inner (1/f_in) -> outer (to_outer) -> small outer (f_out)
    to_small_outer = f_out * to_outer @ np.diag([1.0 / f_in, 1.0 / f_in, 1.0])
    ih, iw = small_inner.shape
    oh, ow = small_outer.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(small_outer.astype(np.float32), to_small_outer, (iw, ih), flags=flags)
    mask = cv2.warpAffine(np.ones((oh, ow), np.float32), to_small_outer, (iw, ih), flags=flags)
    valid = mask > 0.99
    a_img = cv2.GaussianBlur(small_inner.astype(np.float32), (0, 0), 1.0)
    b_img = cv2.GaussianBlur(warped, (0, 0), 1.0)
    informative = agreeing = conflicting = 0
    for by in range(BLOCK_GRID):
        for bx in range(BLOCK_GRID):
            rows = slice(ih * by // BLOCK_GRID, ih * (by + 1) // BLOCK_GRID)
            cols = slice(iw * bx // BLOCK_GRID, iw * (bx + 1) // BLOCK_GRID)
            m = valid[rows, cols]
            if m.size < 9 or m.sum() < 0.8 * m.size:
                continue  # mostly outside the other picture (blank fill): no evidence
            a = a_img[rows, cols][m].astype(np.float64)
            b = b_img[rows, cols][m].astype(np.float64)
            sa, sb = a.std(), b.std()
            if sa < FLAT_STD and sb < FLAT_STD:
                continue  # blank in both: no evidence either way
            informative += 1
            if sa < FLAT_STD or sb < FLAT_STD:
                continue  # texture on one side only: an overlay or a different picture
            corr = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))
            if corr >= BLOCK_AGREE:
                agreeing += 1
            elif corr < CONFLICT_CORRELATION and min(sa, sb) >= CONFLICT_STD:
                conflicting += 1
    if informative < MIN_INFORMATIVE:
        return None
    return agreeing / informative, conflicting


def match(a: Features, b: Features) -> GeometricMatch | None:
    """How ``a`` maps into ``b`` or back, when one contains the other and they agree on at
    least ``MIN_RELATED`` of their blocks; None otherwise. ``is_copy`` says whether the
    match confirms a duplicate."""
    best: GeometricMatch | None = None
    for mirrored in (False, True):
        pb = b.mirror_points if mirrored else b.points
        db = b.mirror_descriptors if mirrored else b.descriptors
        fitted = _fit(a.points, a.descriptors, pb, db)
        if fitted is None:
            continue
        a_to_b, inliers = fitted
        b_gray = np.ascontiguousarray(b.gray[:, ::-1]) if mirrored else b.gray
        b_to_a = _cv2().invertAffineTransform(a_to_b).astype(np.float64)
        for contained, inner, outer, to_outer in (
            (0, a.gray, b_gray, a_to_b),
            (1, b_gray, a.gray, b_to_a),
        ):
            area = _scale(to_outer) ** 2 * inner.size / outer.size
            if area < MIN_AREA or area > 1.1:
                continue
            if not _outside_is_blank(inner, to_outer, outer.shape):
                continue
            dense = _dense_agreement(inner, to_outer, outer)
            if dense is None or dense[0] < MIN_RELATED:
                continue
            angle = float(np.degrees(np.arctan2(to_outer[1, 0], to_outer[0, 0])))
            found = GeometricMatch(
                contained,
                mirrored,
                inliers,
                dense[0],
                dense[1],
                min(area, 1.0),
                angle,
                _scale(to_outer),
            )
            if best is None or _rank(found) > _rank(best):
                best = found
            break
    return best


def _rank(found: GeometricMatch) -> tuple[bool, float, int]:
    return (found.is_copy, found.agreement, found.inliers)


class FeatureCache:
    """Features of the files in candidate pairs, computed once each per run."""

    def __init__(self) -> None:
        self._cache: dict[str, Features | None] = {}
        self.unreadable = 0

    def get(self, path: str | os.PathLike[str]) -> Features | None:
        key = os.fspath(path)
        if key not in self._cache:
            try:
                self._cache[key] = load_features(key)
            except (ImageDecodeError, OSError):
                self._cache[key] = None
                self.unreadable += 1
        return self._cache[key]
