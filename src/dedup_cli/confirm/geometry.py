"""Pixel-level proof that two files show the same picture, read from the files themselves.

Embeddings and 32x32 thumbnails only *suggest* a copy: two screenshots of one app showing
different photos, or two aligned portraits of different people, agree on both. The proof here
is a dense comparison of the two images at ``DENSE_SIDE`` pixels, after aligning them:

- *Alignment*: for a pair whose thumbnails already agree, the two frames are simply scaled
  onto each other, unless phase correlation finds one frame shifted against the other (two
  frames of a burst over a smooth subject). Otherwise ORB keypoints of both images (the
  second also mirrored) are matched and a similarity transform (rotation, uniform scale,
  shift) is fitted with RANSAC; this explains crops, mirror images and rotations.
- *Containment*: one image must lie inside the other. Every part of the smaller one that
  falls outside the larger must be blank fill (the black corners of a rotated copy, a
  letterbox bar). A camera pan or a stereo pair shows new content at its edge and fails. The
  contained picture must also cover ``MIN_AREA`` of the other: a small detail cut from a
  photo is a new picture.
- *Residual*: after one global tone change (a linear fit, which absorbs brightness,
  contrast, grayscale and colour filters), the two luminances are compared block by block on
  a 16x16 grid. A pixel clipped (pure black or white) in one picture counts as an interval:
  beyond the clip level is no difference, black against white is; pixels clipped alike in
  both are left out. A copy differs nowhere: every block's RMS residual stays
  under ``MAX_RESIDUAL`` of the block's own contrast (or of a quarter of the image's, for
  flat blocks). Measured on 16 real photos: resizes, re-encodes, crops, flips, rotations and
  filters reach 0.59 (one letterboxed moon 0.95); screenshots of different photos in one
  frame 0.78 and more; aligned portraits of different people 4.8 and more; overlays 1.2
  and more.
- *Colour*: the blocks above compare luminance only, and a recoloured region or a painted
  dot can keep it. So a pair that passes them must also agree in colour (``colour_residual``):
  at ``COLOUR_SIDE`` px, one global affine colour map (3x3 matrix and offset in RGB, clipped
  to 0..255) must predict one picture from the other, each cell of an 8x8 grid from the map
  fitted on the rest of the picture (without the cell and its neighbours, so an edit cannot
  explain itself), to within ``MAX_COLOUR_RESIDUAL`` Cb/Cr levels over every 5x5 window. The
  map absorbs grayscale conversion, sepia and tints, saturation and hue changes, brightness
  and contrast with their clipping; both directions are tried (sepia can be predicted from
  the original, not back). A grayscale picture has no colour to compare: a grayscale copy is
  judged on luminance alone. Measured on 20 real photos: copies (easy and hard tiers,
  saturation x1.5) reach 4.6 levels; a quarter with Cb/Cr swapped 11 and more, a 24-32 px
  red dot on a 512 px photo 40 and more.
- A pair that differs only in part of the picture (at least ``MIN_RELATED`` of the blocks
  agree) is *related*: an overlay or caption, a recoloured region, or another photo in the
  same frame. The two cannot be told apart, so related pairs are reported and never planned.

The result says which image contains the other, so grouping never keeps the crop and removes
the full picture.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dedup_cli.media.decode import ImageDecodeError, decode_for_display

WORK_SIDE = 512  # images are read and keypoints found at this long side
DENSE_SIDE = 256  # blocks are compared at this long side
KEYPOINTS = 1000  # ORB points per image: matching costs their square, but 500 lost copies
MIN_INLIERS = 15
MIN_INLIER_RATIO = 0.25
MIN_AREA = 0.30  # the contained picture covers at least this share of the container
MAX_OUTSIDE_CONTENT = 0.02  # share of the contained picture allowed outside, unless blank
BLANK_RANGE = 6.0  # gray levels (5th to 95th percentile) of what counts as blank fill
BLOCK_GRID = 16
FRAME_EDGE = 3  # pixels (at DENSE_SIDE) along the contained picture's edge left out
FINE_CLIPPED = 0.4  # share of pure black or white from which a picture is a page (fine_residual)
FINE_SIDE = 1024  # a page's small print is read again at this long side
FINE_BLOCK = 16  # pixels across a block there
FRAME_SNAP = 1.0  # working pixels within which a keypoint fit counts as frame on frame
MAX_RESIDUAL = 0.65  # per-block RMS residual, as a share of the block's contrast
TONE_OUTLIERS = 0.2  # share of pixels left out of the second tone fit (``_tone_map``)
CONTRAST_FLOOR = 0.25  # a block's residual is judged against its own contrast, or this share
# of the whole image's where the block is flatter (so JPEG noise in flat sky is no difference)
CLIP_LOW, CLIP_HIGH = 4, 251  # gray levels at or beyond which a pixel counts as clipped
MIN_UNCLIPPED = 0.25  # below this share of unclipped pixels a picture is line art (two tones)
MIN_RELATED = 0.60  # share of agreeing blocks below which two are not even related
MAX_ALIGNED_SHIFT = 0.015  # frames shifted more than this share of a side are not one frame
COLOUR_SIDE = 128  # colour is compared at this long side (chroma is stored at half WORK_SIDE)
COLOUR_MIN_SHORT = 48  # ... and at least this short side
COLOUR_GRID = 8  # cells of the leave-neighbourhood-out colour fit, per side
COLOUR_WINDOW = 5  # pixels (at COLOUR_SIDE) over which the colour residual is averaged
MAX_COLOUR_RESIDUAL = 8.0  # largest windowed chroma residual of a copy, in Cb/Cr levels
COLOUR_PRIOR = 1e-5  # ridge weight (per training pixel) pulling unconstrained colours to "kept"
GRAY_CHROMA = 4  # chroma levels within which a picture counts as grayscale
COLOURED = 2 * GRAY_CHROMA  # windowed chroma at which a pixel counts as coloured ...
COLOURED_SHARE = 0.5  # ... and the share of grid cells with one: its own colour, not an edit


# The eight views of a picture: (quarter turns counter-clockwise, then mirrored left-right);
# the order of ``search.orientations``.
VIEWS = tuple((turns, mirror) for turns in range(4) for mirror in (False, True))


def _view(pixels: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    turned = np.rot90(pixels, turns, axes=(0, 1))
    return np.ascontiguousarray(turned[:, ::-1] if mirror else turned)


@dataclass
class Picture:
    """One image at the working size; its keypoints are found on first use."""

    gray: np.ndarray  # uint8, long side WORK_SIDE or less
    # uint8 (h, w, 2): Cb and Cr at half the size of ``gray``; None for a grayscale picture
    chroma: np.ndarray | None = None
    _keypoints: dict[bool, tuple[np.ndarray, np.ndarray | None]] = field(
        default_factory=dict, repr=False
    )
    # The file it was read from and the view it is seen in (``VIEWS``): a page's small print
    # is read again from the file, larger, in the same view (``fine_residual``).
    source: Path | None = None
    view: int = 0

    def keypoints(self, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """ORB points and descriptors of the image (or of its mirror image)."""
        if mirrored not in self._keypoints:
            image = np.ascontiguousarray(self.gray[:, ::-1]) if mirrored else self.gray
            self._keypoints[mirrored] = _detect(image)
        return self._keypoints[mirrored]

    def viewed(self, view: int) -> Picture:
        """The picture in one of ``VIEWS`` (without keypoints)."""
        turns, mirror = VIEWS[view]
        return Picture(
            _view(self.gray, turns, mirror),
            None if self.chroma is None else _view(self.chroma, turns, mirror),
            source=self.source,
            view=_composed(self.view, view),
        )

    def mirrored(self) -> Picture:
        """The mirror image (without keypoints)."""
        chroma = None if self.chroma is None else np.ascontiguousarray(self.chroma[:, ::-1])
        return Picture(
            np.ascontiguousarray(self.gray[:, ::-1]),
            chroma,
            source=self.source,
            view=_composed(self.view, MIRROR_VIEW),
        )


MIRROR_VIEW = VIEWS.index((0, True))


def _composed(first: int, then: int) -> int:
    """The one view that shows what ``first`` and then ``then`` show."""
    probe = np.arange(6).reshape(2, 3)
    seen = _view(_view(probe, *VIEWS[first]), *VIEWS[then])
    return next(k for k, v in enumerate(VIEWS) if np.array_equal(_view(probe, *v), seen))


@dataclass(frozen=True)
class GeometricMatch:
    """One picture mapped into the other: ``contained`` (0 or 1) is the one inside."""

    contained: int
    mirrored: bool
    inliers: int  # 0 when aligned without keypoints
    agreement: float  # share of blocks whose residual is under MAX_RESIDUAL
    worst_residual: float
    area: float  # share of the container that the contained picture covers
    rotation_degrees: float
    scale: float  # container pixels per contained pixel, at the working size
    # largest chroma residual no global colour change explains (``colour_residual``); 0 when
    # not measured (a grayscale picture, or the luminance already differs)
    colour_residual: float = 0.0
    # where the contained picture lies in the container: left, top, right, bottom as shares
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)

    @property
    def is_copy(self) -> bool:
        """The same picture everywhere, in luminance and in colour, so one of the two may be
        planned for removal; otherwise the pair is only related (an overlay, a recoloured
        region, or another photo in one frame)."""
        return self.worst_residual <= MAX_RESIDUAL and self.colour_residual <= MAX_COLOUR_RESIDUAL


def _cv2() -> Any:
    """OpenCV, imported on first use."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def opencv_error() -> type[Exception]:
    """OpenCV's exception type (imported lazily, like OpenCV itself)."""
    error: type[Exception] = _cv2().error
    return error


_local = threading.local()


def _orb() -> Any:
    """One ORB detector per thread (OpenCV objects are not shared across threads)."""
    orb = getattr(_local, "orb", None)
    if orb is None:
        orb = _local.orb = _cv2().ORB_create(nfeatures=KEYPOINTS, fastThreshold=10)
    return orb


def _detect(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    keypoints, descriptors = _orb().detectAndCompute(gray, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    return points, descriptors


def picture_of_gray(gray: np.ndarray) -> Picture:
    """A grayscale picture from an array already at (or below) the working size."""
    return Picture(np.ascontiguousarray(gray, dtype=np.uint8))


def picture_of_image(image: Image.Image) -> Picture:
    """A picture from a decoded image (any mode), shrunk to the working size: its luminance
    (for keypoints and the block comparison) and, unless it is grayscale, its chroma at half
    that size (as JPEG stores it)."""
    image = image.convert("RGB")
    image.thumbnail((WORK_SIDE, WORK_SIDE))
    gray = np.asarray(image.convert("L"))
    ycbcr = np.asarray(image.convert("YCbCr"))
    h, w = gray.shape
    cv2 = _cv2()
    chroma = cv2.resize(
        np.ascontiguousarray(ycbcr[..., 1:]),
        ((w + 1) // 2, (h + 1) // 2),
        interpolation=cv2.INTER_AREA,
    )
    if int(np.abs(chroma.astype(np.int16) - 128).max()) <= GRAY_CHROMA:
        return picture_of_gray(gray)
    return Picture(np.ascontiguousarray(gray), np.ascontiguousarray(chroma))


def load_picture(path: str | os.PathLike[str]) -> Picture:
    """Decode one image file (EXIF-oriented, JPEG draft mode) at the working size."""
    picture = picture_of_image(decode_for_display(Path(path), WORK_SIDE))
    picture.source = Path(path)
    return picture


_FINE_CACHED = 32  # pages held at FINE_SIDE (about 0.7 MB each), least recently used out
_fine_pages: OrderedDict[tuple[str, int, int, int, int, int], np.ndarray | None] = OrderedDict()
_fine_lock = threading.Lock()


def _fine_gray(picture: Picture) -> np.ndarray | None:
    """The picture's luminance read again from its file at ``FINE_SIDE``, in its view; None
    when it has no file or the file cannot be read now."""
    if picture.source is None:
        return None
    try:
        facts = os.stat(picture.source)
    except OSError:
        return None
    # The file's identity, size and times are in the key: a file replaced since is read
    # again, even when its size and modification time were set back (``cp -p``).
    key = (
        str(picture.source),
        facts.st_ino,
        facts.st_size,
        facts.st_mtime_ns,
        facts.st_ctime_ns,
        picture.view,
    )
    with _fine_lock:
        if key in _fine_pages:
            _fine_pages.move_to_end(key)
            return _fine_pages[key]
    gray: np.ndarray | None
    try:
        image = decode_for_display(picture.source, FINE_SIDE).convert("L")
        image.thumbnail((FINE_SIDE, FINE_SIDE))
        gray = _view(np.asarray(image), *VIEWS[picture.view])
    except (ImageDecodeError, OSError):
        gray = None
    with _fine_lock:
        _fine_pages[key] = gray
        if len(_fine_pages) > _FINE_CACHED:
            _fine_pages.popitem(last=False)
    return gray


def _fit(a: Picture, b: Picture, mirrored: bool) -> tuple[np.ndarray, int] | None:
    """Similarity transform a -> b (b mirrored) from ratio-tested matches, and its inliers."""
    cv2 = _cv2()
    pa, da = a.keypoints()
    pb, db = b.keypoints(mirrored)
    if da is None or db is None or len(pa) < MIN_INLIERS or len(pb) < MIN_INLIERS:
        return None
    distances, nearest = _two_nearest(da, db)
    good = np.flatnonzero((nearest[:, 1] >= 0) & (distances[:, 0] < 0.8 * distances[:, 1]))
    if len(good) < MIN_INLIERS:
        return None
    src = pa[good]
    dst = pb[nearest[good, 0]]
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000, confidence=0.995
    )
    if matrix is None or inliers is None:
        return None
    count = int(inliers.sum())
    if count < MIN_INLIERS or count < MIN_INLIER_RATIO * len(good):
        return None
    return matrix.astype(np.float64), count


def _two_nearest(queries: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances and indices of each query descriptor's two nearest in ``base``
    (-1 where ``base`` has fewer). faiss's popcount kernel does the 1,000 x 1,000 brute
    force in about 1 ms, OpenCV's ``BFMatcher`` in 5-12 ms; the matches are the same.
    One OpenMP thread: the checks already run one per core."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        distances, nearest = faiss.knn_hamming(queries, base, 2)
    finally:
        faiss.omp_set_num_threads(threads)
    return distances, nearest


def _scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def _outside_is_blank(
    inner: np.ndarray, to_outer: np.ndarray, outer_shape: tuple[int, int]
) -> bool:
    """Whether every pixel of ``inner`` that maps outside ``outer`` is blank fill.

    The pixels that map inside form one run per row (the map is affine), so the share
    outside is counted from each row's first and last inside column, and the gray levels
    outside are read only when that share needs them: a tenth of the work of mapping every
    pixel, on a step that runs for every keypoint fit."""
    h, w = inner.shape
    first, last = _inside_columns(to_outer, (h, w), outer_shape)
    inside = np.clip(last - first + 1, 0, w)
    share = 1.0 - float(inside.sum()) / (h * w)
    if share <= MAX_OUTSIDE_CONTENT:
        return True
    if share > 1 - MIN_AREA:
        return False
    columns = np.arange(w)[None, :]
    outside = (columns < first[:, None]) | (columns > last[:, None])
    low, high = _percentiles(inner[outside], (5.0, 95.0))
    return high - low <= BLANK_RANGE


def _inside_columns(
    to_outer: np.ndarray, shape: tuple[int, int], outer_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a picture of ``shape``, the first and last column whose pixel maps inside
    ``outer_shape`` (within a 2-pixel margin); first > last where none does."""
    h, w = shape
    oh, ow = outer_shape
    margin = 2.0
    ys = np.arange(h, dtype=np.float64)
    first = np.zeros(h)
    last = np.full(h, w - 1.0)
    for row, upper in ((0, ow - 1 + margin), (1, oh - 1 + margin)):
        slope = float(to_outer[row, 0])
        rest = to_outer[row, 1] * ys + to_outer[row, 2]
        if abs(slope) < 1e-9:  # a quarter turn: the row maps to one column of ``outer``
            last = np.where((rest >= -margin) & (rest <= upper), last, -1.0)
            continue
        # slope * x + rest within [-margin, upper]
        a, b = (-margin - rest) / slope, (upper - rest) / slope
        first = np.maximum(first, np.minimum(a, b))
        last = np.minimum(last, np.maximum(a, b))
    return np.ceil(first - 1e-9).astype(np.int64), np.floor(last + 1e-9).astype(np.int64)


def _percentiles(values: np.ndarray, quantiles: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile`` (linear interpolation) of 8-bit values, from their histogram
    rather than a sort."""
    counts = np.cumsum(np.bincount(values.ravel(), minlength=256))
    n = int(counts[-1])

    def order_statistic(i: int) -> float:
        return float(np.searchsorted(counts, i, side="right"))

    result = []
    for q in quantiles:
        position = q / 100.0 * (n - 1)
        below = int(np.floor(position))
        low = order_statistic(below)
        high = order_statistic(min(below + 1, n - 1))
        result.append(low + (position - below) * (high - low))
    return result[0], result[1]


def block_residuals(
    inner: np.ndarray,
    to_outer: np.ndarray,
    outer: np.ndarray,
    side: int = DENSE_SIDE,
    grid: int = BLOCK_GRID,
    robust: bool = False,
    fitted: bool = True,
    whole_edge: bool = False,
) -> np.ndarray | None:
    """RMS residual of each block of ``inner`` against ``outer`` warped into its frame,
    after one global linear tone fit, as a share of the block's contrast; None when the
    overlap is too small or ``inner`` has no contrast to compare.

    Compared in the contained picture's frame, both sides brought to the same scale by an
    area resize first, so a 40% crop is compared at full block resolution without aliasing.
    ``side`` and ``grid``: the long side compared at and the blocks along each side;
    ``robust``: the tone fit leaves out the pixels it misses most (``_tone_map``);
    ``fitted``: ``to_outer`` comes from a keypoint fit, not frame on frame; ``whole_edge``:
    the edge band is left out on every side (the second, finer look at a page, whose edges
    the first look compared)."""
    cv2 = _cv2()
    f_in = min(1.0, side / max(inner.shape))
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
    inside = mask > 0.99
    if inside.sum() < 0.25 * inside.size or min(ih, iw) < grid * 3:
        return None
    # Where the contained picture ends inside the other (a letterbox, padding, a crop), its
    # outermost pixels are no evidence: JPEG ringing and resampling bleed the bars into them,
    # which a picture with a light edge (a text page, a drawing) shows as a difference. Where
    # the two frames end together, the edge is compared like the rest: a thin frame drawn
    # around a photo is an edit.
    edge = max(1, round(FRAME_EDGE * max(ih, iw) / DENSE_SIDE))
    if fitted and not inside.all():
        # Where a fit ends the other picture inside this frame, the warp reads black beyond
        # it, and the blur carries that inwards (frame on frame, the last row and column
        # fall short by a fraction of a pixel only: nothing to leave out).
        kernel = np.ones((2 * edge + 1, 2 * edge + 1), np.uint8)
        inside = cv2.erode(inside.astype(np.uint8), kernel).astype(bool)

    def continues(x: float, y: float) -> bool:
        """Whether the other picture goes on beyond this point of the contained frame."""
        u, v = to_small_outer @ np.array([x, y, 1.0])
        return bool(0.0 <= u <= ow - 1 and 0.0 <= v <= oh - 1)

    if whole_edge or continues(iw / 2, -2.0):
        inside[:edge] = False
    if whole_edge or continues(iw / 2, ih + 1.0):
        inside[-edge:] = False
    if whole_edge or continues(-2.0, ih / 2):
        inside[:, :edge] = False
    if whole_edge or continues(iw + 1.0, ih / 2):
        inside[:, -edge:] = False
    # The tone change is fitted on pixels clipped in neither picture (a brightened copy loses
    # its highlights). A pixel clipped in one picture only still counts, as an interval: its
    # true value lies at or beyond the clip level, so a prediction beyond it is no difference,
    # but black against white or against a gray texture is. Pixels clipped alike in both (the
    # white background two screenshots share) carry no evidence either way.
    low_in, high_in = small_inner <= CLIP_LOW, small_inner >= CLIP_HIGH
    low_out, high_out = warped <= CLIP_LOW, warped >= CLIP_HIGH
    valid = inside & ~(low_in | high_in | low_out | high_out)
    if valid.sum() < MIN_UNCLIPPED * valid.size:
        # Mostly clipped: line art, a text page, a scan, a silhouette (black strokes on
        # white). Its tones are two, so the strokes themselves are the evidence: every pixel
        # counts, compared after the blur and the tone fit (a copy's resampling and JPEG
        # ringing stay under a fifth of a block's contrast; another page's letters or
        # another drawing's strokes reach more than one).
        valid = inside
        low_in = high_in = low_out = high_out = np.zeros_like(inside)
    a = cv2.GaussianBlur(small_inner.astype(np.float32), (0, 0), 1.5).astype(np.float64)
    b = cv2.GaussianBlur(warped, (0, 0), 1.5).astype(np.float64)
    spread = float(a[valid].std())
    if spread < 2.0:
        return None  # a blank picture: nothing to prove a copy with
    mapped, gain = _tone_map(b, a, valid, robust)
    residual = a - mapped
    # Where a clipped value may hide any darker (or brighter) truth, only a difference in the
    # other direction counts. The warped picture's clipping moves ``mapped`` by the gain's sign.
    darker_out, brighter_out = (low_out, high_out) if gain >= 0 else (high_out, low_out)
    residual[(low_in & (residual > 0)) | (high_in & (residual < 0))] = 0.0
    residual[(darker_out & (residual < 0)) | (brighter_out & (residual > 0))] = 0.0
    clipped_alike = (low_in & darker_out) | (high_in & brighter_out)
    valid = inside & ~clipped_alike
    edges_y = (np.arange(grid) * ih) // grid
    edges_x = (np.arange(grid) * iw) // grid

    def block_sums(values: np.ndarray, counted: np.ndarray) -> np.ndarray:
        rows = np.add.reduceat(np.where(counted, values, 0.0), edges_y, axis=0)
        return np.add.reduceat(rows, edges_x, axis=1)

    def block_ratios(counted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each block's RMS residual over its contrast, and its pixels counted."""
        count = block_sums(np.ones_like(a), counted)
        n = np.maximum(count, 1.0)

        def block_std(values: np.ndarray) -> np.ndarray:
            mean = block_sums(values, counted) / n
            squares = block_sums(values * values, counted) / n
            std: np.ndarray = np.sqrt(np.maximum(squares - mean * mean, 0.0))
            return std

        rms = np.sqrt(block_sums(residual * residual, counted) / n)
        local = np.maximum(np.maximum(block_std(a), block_std(mapped)), CONTRAST_FLOOR * spread)
        return rms / local, count

    size = np.add.reduceat(np.add.reduceat(np.ones_like(a), edges_y, 0), edges_x, 1)
    ratios, count = block_ratios(valid)
    covered = count >= 0.5 * size  # mostly outside the other picture, or clipped: no evidence
    # A block clipped alike in most of its pixels (a page's white margin) is compared on all
    # of them, clipped alike counting as equal: else a word, a page number or a tick put on
    # the margin is never looked at. (Most photos have no such block: nothing more to sum.)
    margin = ~covered & (block_sums(np.ones_like(a), inside) >= 0.5 * size)
    if margin.any():
        whole, _ = block_ratios(inside)
        ratios = np.where(margin, whole, ratios)
    ratios = ratios[covered | margin]
    return ratios if len(ratios) >= grid else None


def fine_residual(inner: Picture, to_outer: np.ndarray, outer: Picture) -> float:
    """For a page (``FINE_CLIPPED`` of either picture pure black or white): the worst block
    residual with both read again from their files at up to ``FINE_SIDE``, compared at the
    finest size both hold, in blocks of ``FINE_BLOCK`` pixels; 0 for a photo, or where
    neither holds more detail than the working size showed.

    A page of small print at 256 px is a gray texture: the same form filled in with one
    other word, another page of one layout, or another page in one screenshot frame agrees
    with it block by block (worst 0.29-0.57 against 0.65). Read larger, the words are
    strokes. Photos are left to the coarser check: their copies' grain and clipped
    highlights differ more when read larger (a brightened copy 0.79 at 512 px), and no word
    decides what a photo shows."""
    if max(_clipped_share(inner.gray), _clipped_share(outer.gray)) < FINE_CLIPPED:
        return 0.0
    fine_in, fine_out = _fine_gray(inner), _fine_gray(outer)
    if fine_in is None or fine_out is None:
        fine_in, fine_out = inner.gray, outer.gray
    # working inner -> fine inner, and working outer -> fine outer (pixel centres kept)
    to_fine_in = _resized(fine_in.shape[::-1], inner.gray.shape[::-1])
    to_fine_out = _resized(fine_out.shape[::-1], outer.gray.shape[::-1])
    matrix = to_fine_out @ np.vstack([to_outer, [0.0, 0.0, 1.0]]) @ np.linalg.inv(to_fine_in)
    to_fine = matrix[:2]
    side = round(max(fine_in.shape) * min(1.0, _scale(to_fine)))
    if side < 1.5 * DENSE_SIDE:
        return 0.0  # one of them holds no more detail than the coarse check saw
    grid = max(BLOCK_GRID, round(side / FINE_BLOCK))
    residuals = block_residuals(
        fine_in, to_fine, fine_out, side=side, grid=grid, fitted=False, whole_edge=True
    )
    return 0.0 if residuals is None else float(residuals.max())


def _clipped_share(gray: np.ndarray) -> float:
    """Share of the picture's pixels at pure black or white."""
    return float(((gray <= CLIP_LOW) | (gray >= CLIP_HIGH)).mean())


def _tone_map(
    source: np.ndarray, target: np.ndarray, valid: np.ndarray, robust: bool = False
) -> tuple[np.ndarray, float]:
    """``source`` mapped by the linear tone change (gain and offset) that best matches
    ``target``, and the gain: absorbs brightness, contrast, grayscale and colour filters,
    but not a local difference. The least-squares line in closed form, from sums (no BLAS
    call: several proofs run at once, one per core, and a threaded BLAS under each of them
    slowed the whole proof by a third).

    ``robust``: fitted twice, the second time without the ``TONE_OUTLIERS`` share of pixels
    the first line misses most. A sticker or a caption over a tenth of the picture bends the
    plain line, and every block then differs (a sticker on scikit-image's rocket: 13 % of
    blocks agreed, so the pair was not even reported as related)."""
    x, y = source[valid], target[valid]
    gain, offset = _line(x, y)
    if robust and x.size >= 100:
        misses = np.abs(y - (gain * x + offset))
        kept = misses <= np.quantile(misses, 1.0 - TONE_OUTLIERS)
        gain, offset = _line(x[kept], y[kept])
    mapped: np.ndarray = gain * source + offset
    return mapped, gain


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares gain and offset of ``y`` on ``x``, from plain sums."""
    mean_x, mean_y = float(x.mean()), float(y.mean())
    dx = x - mean_x
    spread = float((dx * dx).sum())
    if spread <= 1e-9 * max(1, x.size):  # a flat source: one offset, no gain
        return 0.0, mean_y
    gain = float((dx * (y - mean_y)).sum()) / spread
    return gain, mean_y - gain * mean_x


# Cb and Cr of an RGB difference (JPEG's full-range conversion).
_CB = np.array([-0.168736, -0.331264, 0.5])
_CR = np.array([0.5, -0.418688, -0.081312])


def _colour_image(picture: Picture, size: tuple[int, int]) -> np.ndarray:
    """The picture as float32 RGB at ``size`` (width, height): luminance and chroma resized
    on their own (chroma is stored at half size), then combined."""
    cv2 = _cv2()
    y = cv2.resize(picture.gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    if picture.chroma is None:
        return np.repeat(y[..., None], 3, axis=2)
    c = cv2.resize(picture.chroma, size, interpolation=cv2.INTER_AREA).astype(np.float32) - 128
    cb, cr = c[..., 0], c[..., 1]
    return np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=2)


def colour_residual(inner: Picture, to_outer: np.ndarray, outer: Picture) -> float:
    """The largest colour difference between ``inner`` and ``outer`` mapped into its frame
    that no global colour change explains, in Cb/Cr levels averaged over a small window; 0
    when either picture is grayscale (a grayscale copy keeps no colour to compare).

    Compared at ``COLOUR_SIDE``: one affine colour map (3x3 matrix and offset in RGB, the
    result clipped to 0..255) is fitted from one picture to the other, and each cell of a
    ``COLOUR_GRID`` grid is predicted by the map fitted on the rest of the picture, leaving
    out the cell and its neighbours: a recoloured region or a painted dot cannot explain
    itself. Directions no other part of the picture constrains (a red dot on a nearly gray
    photo) are pulled towards "colour kept". Both directions are tried and the better one
    counts, because grayscale conversion, sepia or a strong saturation change can only be
    predicted from the more colourful picture."""
    if inner.chroma is None and outer.chroma is None:
        return 0.0
    cv2 = _cv2()
    ih, iw = inner.gray.shape
    oh, ow = outer.gray.shape
    # A panorama keeps at least COLOUR_MIN_SHORT pixels across; neither picture is compared
    # finer than its stored chroma.
    f_in = min(0.5, max(COLOUR_SIDE / max(ih, iw), COLOUR_MIN_SHORT / min(ih, iw)))
    f_out = min(0.5, f_in / _scale(to_outer))
    in_size = (max(1, round(iw * f_in)), max(1, round(ih * f_in)))
    out_size = (max(1, round(ow * f_out)), max(1, round(oh * f_out)))
    if min(in_size) < 3 * COLOUR_GRID:
        return 0.0  # a thumbnail-sized picture: the block comparison alone decides
    a = _colour_image(inner, in_size)
    o = _colour_image(outer, out_size)
    # colour-size inner -> inner -> outer -> colour-size outer, pixel centres kept in place
    # (at this size half a pixel of misregistration shows at every colour edge)
    to_small = _resized(out_size, (ow, oh)) @ np.vstack([to_outer, [0.0, 0.0, 1.0]])
    to_small = (to_small @ np.linalg.inv(_resized(in_size, (iw, ih))))[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    b = cv2.warpAffine(o, to_small, in_size, flags=flags)
    ones = np.ones(o.shape[:2], np.float32)
    inside = cv2.warpAffine(ones, to_small, in_size, flags=flags) > 0.99
    if inner.chroma is None or outer.chroma is None:
        return _local_colour(b if inner.chroma is None else a, inside)
    return min(_unexplained_colour(b, a, inside), _unexplained_colour(a, b, inside))


def _local_colour(coloured: np.ndarray, inside: np.ndarray) -> float:
    """Against a grayscale picture, the colour of the other one that a grayscale copy
    cannot explain: 0 when colour covers most of it (a colour photo and its grayscale copy,
    or a tinted copy of a gray one), else its strongest windowed chroma, in Cb/Cr levels. Red
    letters or a sticker put on a gray picture barely change its luminance; their colour is
    the evidence. A mostly neutral photo whose colour is one small object is then only
    related to its grayscale copy: a copy missed, never a different picture grouped."""
    cb, cr = ((coloured @ axis).astype(np.float32) for axis in (_CB, _CR))
    found = _windowed_chroma(cb, cr, inside.astype(np.float32))
    if found is None:
        return 0.0
    chroma = found
    # Colour all over (in most cells of a grid), however sparse, is the picture's own: a
    # tint, or the galaxies of a deep-sky photo. An edit is colour in one place.
    h, w = chroma.shape
    rows = (np.arange(h) * COLOUR_GRID) // h
    cols = (np.arange(w) * COLOUR_GRID) // w
    cells = np.zeros((COLOUR_GRID, COLOUR_GRID), dtype=bool)
    y, x = np.nonzero(chroma > COLOURED)
    cells[rows[y], cols[x]] = True
    if float(cells.mean()) >= COLOURED_SHARE:
        return 0.0
    return float(chroma.max())


def _resized(size: tuple[int, int], original: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates of an image of ``original`` (width, height) -> the same image
    resized to ``size``, as a 3x3 matrix."""
    fx, fy = size[0] / original[0], size[1] / original[1]
    return np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])


def _unexplained_colour(source: np.ndarray, target: np.ndarray, inside: np.ndarray) -> float:
    """Largest windowed chroma residual of ``target`` predicted from ``source`` by an affine
    colour map fitted, for each grid cell, on the pixels outside it and its neighbours."""
    cv2 = _cv2()
    h, w = inside.shape
    grid = COLOUR_GRID
    # Clipped pixels do not constrain the map (a brightened copy's highlights), but they are
    # still predicted: a clipped prediction is compared with the clipped target.
    fit = inside.copy()
    for image in (source, target):
        for channel in range(3):
            fit &= (image[..., channel] > 4) & (image[..., channel] < 251)
    features = np.ones((h, w, 4))
    features[..., :3] = source / 255.0
    goal = target.astype(np.float64) / 255.0
    used = features * fit[..., None]
    edges_y = (np.arange(grid) * h) // grid
    edges_x = (np.arange(grid) * w) // grid

    def cell_sums(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(values, edges_y, axis=0), edges_x, axis=1)

    gram = cell_sums(used[..., :, None] * features[..., None, :])  # (grid, grid, 4, 4)
    cross = cell_sums(used[..., :, None] * goal[..., None, :])  # (grid, grid, 4, 3)
    count = cell_sums(fit.astype(np.float64))

    def without_neighbours(values: np.ndarray) -> np.ndarray:
        pad = [(1, 1), (1, 1)] + [(0, 0)] * (values.ndim - 2)
        padded = np.pad(values, pad)
        near = sum(padded[dy : dy + grid, dx : dx + grid] for dy in range(3) for dx in range(3))
        rest: np.ndarray = values.sum(axis=(0, 1)) - near
        return rest

    rest_count = without_neighbours(count)
    prior = np.zeros((4, 3))
    prior[:3, :3] = np.eye(3)  # colour kept, no offset
    strength = COLOUR_PRIOR * np.maximum(rest_count, 1.0)[..., None, None]
    ridge = np.diag([1.0, 1.0, 1.0, 0.0]) * strength + np.eye(4) * 1e-9
    coefficients = np.linalg.solve(
        without_neighbours(gram) + ridge, without_neighbours(cross) + ridge @ prior
    )  # (grid, grid, 4, 3)
    rows = np.repeat(np.arange(grid), np.diff(np.append(edges_y, h)))
    cols = np.repeat(np.arange(grid), np.diff(np.append(edges_x, w)))
    per_pixel = coefficients[rows][:, cols]  # (h, w, 4, 3)
    predicted = sum(features[..., i, None] * per_pixel[..., i, :] for i in range(4))
    residual = target - np.clip(predicted, 0.0, 1.0) * 255.0
    # Too little left to fit a cell from (mostly clipped or outside): no evidence there.
    trusted = inside & (rest_count >= 0.05 * h * w)[rows][:, cols]
    weight = trusted.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), 1.0), 1e-3)
    delta_cb = cv2.GaussianBlur((residual @ _CB).astype(np.float32) * weight, (0, 0), 1.0) / norm
    delta_cr = cv2.GaussianBlur((residual @ _CR).astype(np.float32) * weight, (0, 0), 1.0) / norm
    chroma = _windowed_chroma(delta_cb, delta_cr, weight)
    return 0.0 if chroma is None else float(chroma.max())


def _windowed_chroma(cb: np.ndarray, cr: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """RMS chroma (Cb, Cr) over each ``COLOUR_WINDOW`` window of weighted pixels, 0 where a
    window is not whole; None when none is."""
    cv2 = _cv2()
    window = (COLOUR_WINDOW, COLOUR_WINDOW)
    energy = cv2.boxFilter((cb * cb + cr * cr) * weight, -1, window, normalize=False)
    pixels = cv2.boxFilter(weight, -1, window, normalize=False)
    full = pixels >= 0.99 * COLOUR_WINDOW * COLOUR_WINDOW
    if not full.any():
        return None
    chroma = np.zeros(full.shape)
    chroma[full] = np.sqrt(np.maximum(energy[full], 0.0) / pixels[full])
    return chroma


def _judge(
    inner_picture: Picture,
    outer_picture: Picture,
    to_outer: np.ndarray,
    contained: int,
    mirrored: bool,
    inliers: int,
    fine: bool = False,
) -> GeometricMatch | None:
    """The match of ``inner`` mapped into ``outer`` by ``to_outer``, or None when they are
    not even related. ``fine``: the frames lie on each other exactly (no keypoint fit), so a
    page may be compared again where its print is legible (``fine_residual``); a keypoint
    fit is off by a fraction of a working pixel, which is a stroke's width there. A fit
    within ``FRAME_SNAP`` pixels of frame on frame gets that look frame on frame."""
    inner, outer = inner_picture.gray, outer_picture.gray
    frame = np.array(
        [[outer.shape[1] / inner.shape[1], 0.0, 0.0], [0.0, outer.shape[0] / inner.shape[0], 0.0]]
    )
    corners = np.array([[0.0, 0.0, 1.0], [inner.shape[1], inner.shape[0], 1.0]]).T
    fitted = not fine  # a keypoint fit, not frame on frame
    fine_map = to_outer
    if np.abs((to_outer - frame) @ corners).max() <= FRAME_SNAP:
        fine_map, fine = frame, True  # the finer look needs the frames exactly on each other
    area = _scale(to_outer) ** 2 * inner.size / outer.size
    if area < MIN_AREA or area > 1.1:
        return None
    if not _outside_is_blank(inner, to_outer, outer.shape):
        return None
    residuals = block_residuals(inner, to_outer, outer, fitted=fitted)
    if residuals is None:
        return None
    agreement = float((residuals <= MAX_RESIDUAL).mean())
    worst = float(residuals.max())
    if agreement < MIN_RELATED:
        # Perhaps an overlay bent the tone fit: fitted without the pixels it misses most,
        # the rest may agree. Then the pair is related, never a copy (its worst block stays).
        again = block_residuals(inner, to_outer, outer, robust=True, fitted=fitted)
        if again is None or float((again <= MAX_RESIDUAL).mean()) < MIN_RELATED:
            return None
        agreement = float((again <= MAX_RESIDUAL).mean())
    if fine and worst <= MAX_RESIDUAL:  # a page: its small print compared where legible
        worst = max(worst, fine_residual(inner_picture, fine_map, outer_picture))
    # Colour only matters for what the luminance would prove a copy.
    colour = (
        colour_residual(inner_picture, to_outer, outer_picture) if worst <= MAX_RESIDUAL else 0.0
    )
    angle = float(np.degrees(np.arctan2(to_outer[1, 0], to_outer[0, 0])))
    height, width = inner.shape
    mapped = to_outer @ np.array([[0.0, width, 0.0, width], [0.0, 0.0, height, height], [1.0] * 4])
    across, down = outer.shape[1], outer.shape[0]
    box = (
        float(np.clip(mapped[0].min() / across, 0.0, 1.0)),
        float(np.clip(mapped[1].min() / down, 0.0, 1.0)),
        float(np.clip(mapped[0].max() / across, 0.0, 1.0)),
        float(np.clip(mapped[1].max() / down, 0.0, 1.0)),
    )
    return GeometricMatch(
        contained,
        mirrored,
        inliers,
        agreement,
        worst,
        min(area, 1.0),
        angle,
        _scale(to_outer),
        colour,
        box,
    )


def match_aligned(a: Picture, b: Picture) -> GeometricMatch | None:
    """Compare two pictures frame on frame (each scaled to the other), for pairs whose
    thumbnails already agree: no keypoints needed. None when the frames do not lie on each
    other (``frame_shift``): keypoints decide those."""
    if frame_shift(a, b) > MAX_ALIGNED_SHIFT:
        return None
    ah, aw = a.gray.shape
    bh, bw = b.gray.shape
    a_to_b = np.array([[bw / aw, 0.0, 0.0], [0.0, bh / ah, 0.0]])
    return _judge(a, b, a_to_b, 0, False, 0, fine=True)


def frame_shift(a: Picture, b: Picture) -> float:
    """How far ``b``'s frame is shifted against ``a``'s once both are scaled to one size,
    as a share of the side: the larger of two estimates at ``DENSE_SIDE``.

    Two frames of a burst over a smooth subject (a sky, a gradient, a wall) agree block by
    block with a few per cent of camera movement between them; a copy lies on its source
    within a fraction of a pixel. Phase correlation finds the shift of a textured picture;
    on a smooth one, seen at a slightly different angle, its peak stays at zero (14 burst
    frames of a colour wheel at 100,000 photos), and the gradient estimate
    (``_gradient_shift``) finds it. Measured on the realistic corpus: re-encodes, resizes
    and conversions at most 0.35 %; burst frames 1.5-8 %."""
    cv2 = _cv2()
    h, w = a.gray.shape
    f = min(1.0, DENSE_SIDE / max(h, w))
    size = (max(8, round(w * f)), max(8, round(h * f)))
    first = cv2.resize(a.gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    second = cv2.resize(b.gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    # phaseCorrelate applies the window to its inputs in place: the gradient estimate below
    # needs the pictures as they are.
    (dx, dy), _response = cv2.phaseCorrelate(first.copy(), second.copy(), window)
    phase = max(abs(dx) / size[0], abs(dy) / size[1])
    if phase > MAX_ALIGNED_SHIFT:
        return float(phase)
    gx, gy = _gradient_shift(first, second)
    return float(max(phase, abs(gx) / size[0], abs(gy) / size[1]))


def _gradient_shift(first: np.ndarray, second: np.ndarray, rounds: int = 3) -> tuple[float, float]:
    """The shift (pixels) that best lays ``second`` on ``first`` together with one linear
    tone change, by Lucas-Kanade least squares on the blurred pictures: ``first`` is about
    ``gain * second(x + d) + offset``, linearised in ``d`` and refined ``rounds`` times."""
    cv2 = _cv2()
    smooth_first = cv2.GaussianBlur(first, (0, 0), 2.0)
    smooth_second = cv2.GaussianBlur(second, (0, 0), 2.0)
    h, w = first.shape
    margin = 8  # the shifted picture's border is reflected, not seen
    if h <= 4 * margin or w <= 4 * margin:
        return 0.0, 0.0
    inner = (slice(margin, h - margin), slice(margin, w - margin))
    target = smooth_first[inner].ravel().astype(np.float64)
    shift = np.zeros(2)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for _ in range(rounds):
        moved = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], dtype=np.float32)
        seen = cv2.warpAffine(
            smooth_second, moved, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT
        )
        along_x = cv2.Sobel(seen, cv2.CV_32F, 1, 0, ksize=3) / 8
        along_y = cv2.Sobel(seen, cv2.CV_32F, 0, 1, ksize=3) / 8
        columns = [seen[inner], np.ones_like(seen[inner]), along_x[inner], along_y[inner]]
        flat = np.stack([c.ravel() for c in columns]).astype(np.float64)  # (4, pixels)
        # The normal equations of the 4-column least squares: a 4 x 4 solve, not an SVD
        # of the whole picture.
        try:
            gain, _offset, step_x, step_y = np.linalg.solve(flat @ flat.T, flat @ target)
        except np.linalg.LinAlgError:
            break
        if abs(gain) < 1e-6:
            break
        step = np.array([step_x, step_y]) / gain
        shift += step
        if float(np.abs(step).max()) < 0.05:
            break  # settled to a twentieth of a pixel
    return float(shift[0]), float(shift[1])


def match(a: Picture, b: Picture) -> GeometricMatch | None:
    """How ``a`` maps into ``b`` or back by keypoints, when one contains the other and they
    agree on at least ``MIN_RELATED`` of their blocks; None otherwise. ``is_copy`` says
    whether the match proves a duplicate."""
    best: GeometricMatch | None = None
    for mirrored in (False, True):
        fitted = _fit(a, b, mirrored)
        if fitted is None:
            continue
        a_to_b, inliers = fitted
        b_seen = b.mirrored() if mirrored else b
        b_to_a = _cv2().invertAffineTransform(a_to_b).astype(np.float64)
        for contained, inner, outer, to_outer in (
            (0, a, b_seen, a_to_b),
            (1, b_seen, a, b_to_a),
        ):
            found = _judge(inner, outer, to_outer, contained, mirrored, inliers)
            if found is not None and mirrored and contained == 0:
                # Measured in the container's mirror image: its place in the file itself.
                left, top, right, bottom = found.box
                found = replace(found, box=(1.0 - right, top, 1.0 - left, bottom))
            if found is not None:
                if best is None or _rank(found) > _rank(best):
                    best = found
                break
        if best is not None and best.is_copy:
            break  # proved a copy as it is: its mirror image is not tried
    return best


def _rank(found: GeometricMatch) -> tuple[bool, float, float]:
    return (found.is_copy, found.agreement, -found.worst_residual)


class PictureCache:
    """The files in candidate pairs, each read once while it is in use.

    At most ``capacity`` pictures are held (about 0.4 MB each with chroma and keypoints),
    least recently used first out: candidate pairs come sorted by their first file, so a file
    is mostly done with when it leaves."""

    def __init__(self, capacity: int = 1024) -> None:
        self._cache: OrderedDict[str, Picture | None] = OrderedDict()
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self.capacity = capacity
        self.unreadable = 0

    def get(self, path: str | os.PathLike[str]) -> Picture | None:
        """The picture of a file, or None when it cannot be read (counted once). Safe to
        call from several threads; two threads may rarely read one file twice."""
        key = os.fspath(path)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            if key in self._failed:
                return None
        picture: Picture | None = None
        try:
            picture = load_picture(key)
        except (ImageDecodeError, OSError):
            with self._lock:
                if key not in self._failed:
                    self._failed.add(key)
                    self.unreadable += 1
            return None
        with self._lock:
            self._cache[key] = picture
            if len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return picture
