"""What a file's bytes say about where it came from: its format, the metadata it carries, and
whether it was made from another file of its group.

The ``quality`` keeper needs to know more than sizes. A PNG saved from a JPEG is four times
the bytes and not one pixel better; a JPEG re-saved at quality 95 from a quality-75 one is
larger and worse than its source; a copy downloaded from a chat app has lost the capture
time, the camera and the GPS position its original carries. These are read from the files:

- *Metadata*: EXIF capture time (DateTimeOriginal), camera (Make or Model), GPS position,
  read from the header without decoding any pixels.
- *Made from*: a lossless file (PNG, TIFF, BMP) whose decoded pixels are a lossy file's
  decoded pixels is a conversion of it. A JPEG whose pixels are what encoding the other
  JPEG's pixels with *its* quantisation tables gives, while the reverse does not hold as
  well, was re-encoded from the other. Both compare tiles spread over the picture, not
  every pixel: they tell which of two files the proof already called copies was made from
  which, and prove nothing themselves; when neither direction is clear, neither file is
  called made from the other.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, JpegImagePlugin

from dedup_cli.media.decode import MAX_PIXELS, exif_orientation

LOSSLESS_FORMATS = frozenset({"PNG", "TIFF", "BMP", "PPM", "QOI"})
LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "HEIF", "AVIF"})
# Two decodings are the same pixels when they differ by at most this on average (levels) and
# at most ``SAME_PIXELS_OUTLIER_SHARE`` of their values by more than ``SAME_PIXELS_OUTLIER``.
SAME_PIXELS_MEAN = 0.1
SAME_PIXELS_OUTLIER = 1
SAME_PIXELS_OUTLIER_SHARE = 0.001
# A JPEG re-encoded from another matches that re-encoding within this mean difference, and at
# least this many times better than the other direction does.
REENCODE_MEAN = 0.75
REENCODE_MARGIN = 2.0
TILES = 3  # pixels are compared on TILES x TILES tiles spread over the picture ...
TILE = 256  # ... each at most this many pixels a side


@dataclass(frozen=True)
class Encoding:
    """How a file is stored, and which kinds of metadata it carries."""

    format: str | None
    metadata: tuple[str, ...] = ()  # of "capture time", "camera", "GPS"

    @property
    def lossless(self) -> bool:
        return self.format in LOSSLESS_FORMATS

    @property
    def lossy(self) -> bool:
        return self.format in LOSSY_FORMATS


def encoding_of(path: str | os.PathLike[str]) -> Encoding:
    """The file's format and metadata, from its header; ``Encoding(None)`` when unreadable."""
    try:
        with Image.open(path) as image:
            return Encoding(image.format, _metadata(image))
    except Exception:  # noqa: BLE001 - an unreadable header only means "nothing known"
        return Encoding(None)


def pixel_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """Width and height from the header (upright), or None when unreadable; of a RAW, its
    embedded preview's (``media.raw``)."""
    try:
        from dedup_cli.media.raw import picture_source

        source = picture_source(path)
    except Exception:  # noqa: BLE001 - unreadable: no size known
        return None
    return upright_size(source)


def upright_size(source: str | os.PathLike[str] | BinaryIO) -> tuple[int, int] | None:
    """Width and height from the header of ``source`` (a picture, not a RAW), upright; None
    when unreadable."""
    try:
        with Image.open(source) as image:
            width, height = image.size
            turned = exif_orientation(image) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - unreadable: no size known
        return None
    return (height, width) if turned else (width, height)


def photo_facts(source: str | os.PathLike[str] | BinaryIO) -> dict[str, str | None]:
    """What a reviewer wants to see of a file besides its size: format, capture time and
    camera, from the header (all None when unreadable)."""
    facts: dict[str, str | None] = {"format": None, "captured": None, "camera": None}
    try:
        with Image.open(source) as image:
            facts["format"] = image.format
            exif = image.getexif()
            taken = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
            make, model = exif.get(0x010F), exif.get(0x0110)
    except Exception:  # noqa: BLE001 - an unreadable header only means "nothing known"
        return facts
    if isinstance(taken, str) and taken.strip("\0 "):
        facts["captured"] = taken.strip("\0 ")
    camera = " ".join(str(v).strip("\0 ") for v in (make, model) if v)
    facts["camera"] = camera or None
    return facts


def capture_moment(path: str | os.PathLike[str]) -> tuple[str, float] | None:
    """(camera, seconds) of the shot from EXIF: Make and Model, DateTimeOriginal with
    SubSecTimeOriginal. None when the file does not say (a copy that lost its EXIF)."""
    import datetime

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            shot = exif.get_ifd(0x8769)
            taken, fraction = shot.get(0x9003), shot.get(0x9291)
            make, model = exif.get(0x010F), exif.get(0x0110)
    except Exception:  # noqa: BLE001 - unreadable: nothing known
        return None
    camera = " ".join(str(v).strip("\0 ") for v in (make, model) if v)
    if not isinstance(taken, str) or not camera:
        return None
    try:
        when = datetime.datetime.strptime(taken.strip("\0 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    seconds = when.replace(tzinfo=datetime.timezone.utc).timestamp()
    digits = str(fraction).strip("\0 ") if fraction is not None else ""
    if digits.isdigit():
        seconds += int(digits) / 10 ** len(digits)
    return camera, seconds


def sharpness(path: str | os.PathLike[str], side: int = 512) -> float | None:
    """How sharp a picture is: the variance of the Laplacian of its gray image at ``side``
    pixels (a blurred or shaken frame scores low). None when unreadable."""
    import cv2

    from dedup_cli.media.decode import ImageDecodeError, decode_for_display

    try:
        image = decode_for_display(path, side)
    except (OSError, ImageDecodeError):
        return None
    image.thumbnail((side, side))
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def _metadata(image: Image.Image) -> tuple[str, ...]:
    try:
        exif = image.getexif()
        taken = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
        camera = exif.get(0x010F) or exif.get(0x0110)
        gps = exif.get_ifd(0x8825)
    except Exception:  # noqa: BLE001 - broken EXIF carries nothing
        return ()
    kinds = (("capture time", taken), ("camera", camera), ("GPS", gps))
    return tuple(name for name, value in kinds if value)


def made_from(copy: Path, source: Path) -> str | None:
    """Why ``copy`` is a conversion or re-encode of ``source`` (one short phrase), or None
    when the files do not show it. Compared on ``TILES`` x ``TILES`` tiles spread over the
    picture, in the files' stored orientation: it tells which of two *proved* copies was
    made from which, it does not prove two files the same picture. When unsure, None: the
    next keep criteria (metadata, then bytes) decide."""
    copy_kind, source_kind = encoding_of(copy), encoding_of(source)
    if copy_kind.lossless and source_kind.lossy:
        a, b = _tiles(copy), _tiles(source)
        if a is not None and b is not None and _same_pixels(a, b):
            return f"a {copy_kind.format} holding the decoded pixels of the {source_kind.format}"
        return None
    if copy_kind.format == source_kind.format == "JPEG":
        forward = _reencoding_error(source, copy)
        backward = _reencoding_error(copy, source)
        if forward is None or backward is None:
            return None
        if forward <= REENCODE_MEAN and REENCODE_MARGIN * forward < backward:
            return "a JPEG re-encoded from the other"
    return None


def _open_checked(path: Path) -> Image.Image | None:
    try:
        image = Image.open(path)
    except Exception:  # noqa: BLE001 - unreadable: nothing to compare
        return None
    if image.width * image.height > MAX_PIXELS:
        image.close()
        return None
    return image


@dataclass(frozen=True)
class _Tiles:
    """A file's pixels where they are compared: its stored size and orientation, its mode,
    and the ``TILES`` x ``TILES`` tiles (16-pixel aligned) as arrays."""

    size: tuple[int, int]
    orientation: int
    mode: str
    pixels: tuple[np.ndarray, ...]
    quantization: object = None
    sampling: int = -1


def _tiles(path: Path) -> _Tiles | None:
    """Decoded once per file version (``_decoded_tiles`` is cached): a group compares up to
    six files pairwise, and a 100-megapixel file is decoded once, its tiles kept (small)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _decoded_tiles(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _decoded_tiles(path: str, _size: int, _mtime_ns: int) -> _Tiles | None:
    image = _open_checked(Path(path))
    if image is None:
        return None
    try:
        with image:
            mode = image.mode if image.mode in ("RGB", "L") else "RGB"
            boxes = _tile_boxes(image.size)
            if not boxes:
                return None
            image.load()
            pixels = tuple(
                np.asarray(image.crop(box).convert(mode), dtype=np.int16) for box in boxes
            )
            return _Tiles(
                image.size,
                exif_orientation(image) or 1,
                image.mode,
                pixels,
                getattr(image, "quantization", None),
                JpegImagePlugin.get_sampling(image) if image.format == "JPEG" else -1,
            )
    except Exception:  # noqa: BLE001 - a file that does not decode proves nothing
        return None


def _same_pixels(a: _Tiles, b: _Tiles) -> bool:
    """The same stored size and orientation, and the same pixels in every tile: at most a
    tenth of a level on average and one pixel in a thousand off by more than one level (a
    PNG saved from a JPEG's decoding is exact; a JPEG saved at quality 100 from a PNG is
    not: 4.5 % of its pixels are off by 2-4 levels)."""
    if (a.size, a.orientation) != (b.size, b.orientation) or len(a.pixels) != len(b.pixels):
        return False
    for x, y in zip(a.pixels, b.pixels):
        difference = np.abs(_as_rgb(x) - _as_rgb(y))
        if float(difference.mean()) > SAME_PIXELS_MEAN:
            return False
        if float((difference > SAME_PIXELS_OUTLIER).mean()) > SAME_PIXELS_OUTLIER_SHARE:
            return False
    return True


def _as_rgb(tile: np.ndarray) -> np.ndarray:
    """A gray tile as three equal channels, so a gray file compares with its RGB copy."""
    return np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile


def _reencoding_error(source: Path, copy: Path) -> float | None:
    """Mean difference between ``copy``'s pixels and ``source``'s pixels encoded with
    ``copy``'s quantisation tables and chroma sampling, over the tiles (16-pixel aligned:
    blocks are coded independently, so a tile is coded as in the whole picture; its border,
    where upsampling sees neighbours, is left out)."""
    a, b = _tiles(source), _tiles(copy)
    if a is None or b is None or a.size != b.size or a.orientation != b.orientation:
        return None
    if b.mode not in ("RGB", "L") or b.sampling < 0 or not b.quantization:
        return None
    errors = []
    for mine, theirs in zip(a.pixels, b.pixels):
        if mine.shape[:2] != theirs.shape[:2] or min(mine.shape[:2]) < 48:
            return None
        source_tile = Image.fromarray(mine.astype(np.uint8)).convert(b.mode)
        buffer = io.BytesIO()
        try:
            source_tile.save(buffer, "JPEG", qtables=b.quantization, subsampling=b.sampling)
            buffer.seek(0)
            with Image.open(buffer) as again:
                redone = np.asarray(again.convert(b.mode), dtype=np.int16)
        except Exception:  # noqa: BLE001 - tables PIL cannot write back: cannot tell
            return None
        inner = (slice(8, -8), slice(8, -8))
        errors.append(float(np.abs(redone[inner] - theirs[inner]).mean()))
    return float(np.mean(errors)) if errors else None


def _tile_boxes(size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """``TILES`` x ``TILES`` boxes of at most ``TILE`` pixels a side, spread evenly over the
    picture (corners to centre) on 16-pixel block edges; none for a picture too small."""
    width, height = size

    def spans(length: int) -> list[tuple[int, int]]:
        side = min(TILE, length // TILES // 16 * 16)
        if side < 48:
            return []
        free = length - side
        starts = sorted({(free * k // (TILES - 1)) // 16 * 16 for k in range(TILES)})
        return [(start, start + side) for start in starts]

    return [(x0, y0, x1, y1) for y0, y1 in spans(height) for x0, x1 in spans(width)]
