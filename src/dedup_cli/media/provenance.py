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
  well, was re-encoded from the other. Both tests compare pixels, so they never call two
  different pictures one another's source; when neither direction is clear, neither file
  is called made from the other.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from dedup_cli.media.decode import MAX_PIXELS

LOSSLESS_FORMATS = frozenset({"PNG", "TIFF", "BMP", "PPM", "QOI"})
LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "HEIF", "AVIF"})
# Mean absolute difference (gray levels) under which two decodings are the same pixels; and
# the share of pixels allowed to differ by more than ``SAME_PIXELS_OUTLIER`` (JPEG decoders
# differ by a level or two in their upsampling).
SAME_PIXELS_MEAN = 0.5
SAME_PIXELS_OUTLIER = 4
SAME_PIXELS_OUTLIER_SHARE = 0.001
# A JPEG re-encoded from another matches that re-encoding within this mean difference, and at
# least this many times better than the other direction does.
REENCODE_MEAN = 0.75
REENCODE_MARGIN = 2.0
REENCODE_TILE = 512  # the re-encoding test runs on a central tile of at most this side
COMPARED_TILE = 1024  # decoded pixels are compared on a central square of at most this side


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
    """Width and height from the header (upright), or None when unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - unreadable: no size known
        return None
    return (height, width) if turned else (width, height)


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
    when the files do not show it."""
    copy_kind, source_kind = encoding_of(copy), encoding_of(source)
    if copy_kind.lossless and source_kind.lossy:
        a, b = _pixels(copy), _pixels(source)
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


def _pixels(path: Path) -> tuple[tuple[int, int], np.ndarray] | None:
    """The upright picture's size and its central ``COMPARED_TILE`` square of RGB pixels
    (int16, for differences): memory stays bounded whatever the picture's size."""
    image = _open_checked(path)
    if image is None:
        return None
    try:
        with image:
            upright = ImageOps.exif_transpose(image)
            width, height = upright.size
            side = COMPARED_TILE
            left, top = max(0, (width - side) // 2), max(0, (height - side) // 2)
            box = (left, top, min(width, left + side), min(height, top + side))
            tile = upright.crop(box).convert("RGB")
            return (width, height), np.asarray(tile, dtype=np.int16)
    except Exception:  # noqa: BLE001 - a file that does not decode proves nothing
        return None


def _same_pixels(
    a: tuple[tuple[int, int], np.ndarray], b: tuple[tuple[int, int], np.ndarray]
) -> bool:
    """The same size, and the same pixels over the compared tile."""
    if a[0] != b[0] or a[1].shape != b[1].shape:
        return False
    difference = np.abs(a[1] - b[1])
    if float(difference.mean()) > SAME_PIXELS_MEAN:
        return False
    return float((difference > SAME_PIXELS_OUTLIER).mean()) <= SAME_PIXELS_OUTLIER_SHARE


def _reencoding_error(source: Path, copy: Path) -> float | None:
    """Mean difference between ``copy``'s pixels and ``source``'s pixels encoded with
    ``copy``'s quantisation tables and chroma sampling, on a central tile aligned to the
    16-pixel blocks (blocks are coded independently, so the tile is coded as in the whole
    picture; its border rows, where upsampling sees neighbours, are left out)."""
    source_image, copy_image = _open_checked(source), _open_checked(copy)
    if source_image is None or copy_image is None:
        return None
    with source_image, copy_image:
        if source_image.size != copy_image.size or copy_image.mode not in ("RGB", "L"):
            return None
        if _orientation(source_image) != _orientation(copy_image):
            return None
        sampling = JpegImagePlugin.get_sampling(copy_image)
        tables = getattr(copy_image, "quantization", None)
        if sampling < 0 or not tables:
            return None
        box = _central_tile(copy_image.size)
        if min(box[2] - box[0], box[3] - box[1]) < 48:
            return None  # too small a picture to tell
        try:
            source_tile = source_image.convert(copy_image.mode).crop(box)
            copy_tile = np.asarray(copy_image.crop(box), dtype=np.int16)
            buffer = io.BytesIO()
            source_tile.save(buffer, "JPEG", qtables=tables, subsampling=sampling)
            buffer.seek(0)
            with Image.open(buffer) as again:
                redone = np.asarray(again.convert(copy_image.mode), dtype=np.int16)
        except Exception:  # noqa: BLE001 - a file that does not decode proves nothing
            return None
    inner = (slice(8, -8), slice(8, -8))
    return float(np.abs(redone[inner] - copy_tile[inner]).mean())


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001
        return 1
    return value if isinstance(value, int) else 1


def _central_tile(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box of at most ``REENCODE_TILE`` pixels a side, on 16-pixel block edges."""
    width, height = size

    def span(length: int) -> tuple[int, int]:
        side = min(REENCODE_TILE, length // 16 * 16)
        start = (length - side) // 2 // 16 * 16
        return start, start + side

    left, right = span(width)
    top, bottom = span(height)
    return left, top, right, bottom
