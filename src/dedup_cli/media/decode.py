"""Decode images for embedding: EXIF orientation, JPEG draft downscaling, odd modes, limits.

Memory is bounded by the decoded size, not the file size: a 1 MB PNG can hold 12000 x 12000
16-bit pixels. The header is checked against ``MAX_PIXELS`` and ``MAX_DECODED_BYTES`` before
anything is decoded, and conversion to RGB reduces strip by strip (``_to_rgb``).

Every failure becomes an ``ImageDecodeError`` with a short reason that is stored with the
file and counted in the report; nothing here lets a bad file crash a run.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import xxhash
from PIL import Image, ImageFile, UnidentifiedImageError

from dedup_cli.media.borders import content_box_of
from dedup_cli.media.regions import inner_pictures, may_hold_pictures, pack

# Refuse images over 150 megapixels: decoding one would take gigabytes per worker.
MAX_PIXELS = 150_000_000
# Refuse images whose pixels would take more than this once decoded, estimated from the
# header before anything is decoded: width x height x the bytes per pixel of the file's mode
# (1 for L, P and 1-bit; 2 for 16-bit gray and LA; 3 for RGB; 4 for RGBA, CMYK and 32-bit int
# or float). 512 MB lets a 150 MP 8-bit RGB photo through (450 MB; Pillow pads RGB to 4
# bytes a pixel, so it really takes 600 MB) and refuses a 150 MP RGBA or float one.
MAX_DECODED_BYTES = 512_000_000
# Conversion to 8-bit RGB (16-bit scaling, palettes, CMYK, flattening alpha onto white) runs
# over horizontal strips of about this many bytes, each reduced as it is converted, so no
# full-size converted copy (let alone a float64 one) is ever made.
STRIP_BYTES = 16_000_000
# Review and geometry decodes (`decode_for_display`) of images above this many decoded bytes
# are reduced to a few times the asked size; smaller ones are returned at full size as before.
DISPLAY_REDUCE_ABOVE_BYTES = 64_000_000
THUMBNAIL_SIDE = 32
# EXIF orientation -> the transposition that displays the image upright (as ImageOps).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")

_heif_registered = False


def register_plugins() -> None:
    """HEIC/HEIF (and AVIF where Pillow lacks it) through pillow-heif, once per process."""
    global _heif_registered
    if _heif_registered:
        return
    _heif_registered = True
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
    except ImportError:  # optional: HEIC files are then reported as unreadable
        pass


class ImageDecodeError(Exception):
    """A file that cannot be turned into pixels; ``str()`` is the reason to store."""


@dataclass(frozen=True)
class DecodedImage:
    """Model-ready pixels plus the facts recorded for the file."""

    pixels: np.ndarray  # uint8, (size, size, 3)
    width: int  # after EXIF orientation
    height: int
    thumbnail: bytes  # THUMBNAIL_SIDE^2 grayscale bytes
    regions: bytes = b""  # pictures shown inside it (``media.regions.pack``)


def content_hash(data: bytes) -> str:
    """A fast 128-bit hash of the file's bytes (xxh3), as 32 hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def read_file(path: str | os.PathLike[str]) -> tuple[bytes, int, int]:
    """The bytes of a file with the size and mtime of exactly what was read."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        data = handle.read()
    return data, info.st_size, info.st_mtime_ns


def decoded_bytes(img: Image.Image) -> int:
    """The bytes of pixels ``img`` would take once decoded, from its header alone:
    width x height x bytes per pixel of its mode (one byte a band; 2 for 16-bit, 4 for
    32-bit int and float)."""
    mode = img.mode
    if mode.startswith("I;16"):
        per_pixel = 2
    elif mode in ("I", "F") or mode.startswith(("I;32", "F;")):
        per_pixel = 4
    else:
        per_pixel = len(img.getbands())
    width, height = img.size
    return width * height * per_pixel


def _check_decoded_size(img: Image.Image) -> None:
    need = decoded_bytes(img)
    if need > MAX_DECODED_BYTES:
        raise ImageDecodeError(
            f"image too large to decode ({-(-need // 1_000_000)} MB of pixels, "
            f"limit {MAX_DECODED_BYTES // 1_000_000} MB)"
        )


def decode(data: bytes, size: int) -> DecodedImage:
    """Bytes -> oriented RGB pixels squashed to size x size (the picture inside its uniform
    black or white borders, ``media.borders``), plus a grayscale thumbnail of the whole
    frame; the width and height are the file's own.

    The image is reduced by whole factors while it is converted to RGB (see ``_to_rgb``), so
    memory stays near the size of the decoded file itself; for an image without a
    transposing EXIF orientation the pixels are the same, bit for bit, as converting the
    full image and resizing it with ``reducing_gap=2.0``."""
    register_plugins()
    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            img: Image.Image = Image.open(io.BytesIO(data))
            width, height = img.size
            orientation = exif_orientation(img)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            if img.format == "JPEG" and isinstance(img, ImageFile.ImageFile):
                img.draft("RGB", (size, size))
            _check_decoded_size(img)
            # The reduction Pillow's resize(reducing_gap=2.0) would make (the target is square,
            # so the factors hold whichever way the image is turned).
            factor = (int(img.width / size / 2) or 1, int(img.height / size / 2) or 1)
            transpose = _TRANSPOSE.get(orientation or 1)
            if transpose is None:
                rgb = _to_rgb(img, factor)
                box = (0.0, 0.0, img.width / factor[0], img.height / factor[1])
                square = rgb.resize((size, size), Image.Resampling.BILINEAR, box=box)
            else:
                rgb = _to_rgb(img, factor).transpose(transpose)
                square = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            # The model sees the picture inside its uniform black or white borders
            # (letterbox, pillarbox, margins); the thumbnail, which the proof compares frame
            # on frame, stays the whole frame.
            whole = square
            inside = content_box_of(rgb)
            if inside is not None:
                left, top, right, bottom = (float(v) for v in inside)
                square = rgb.resize(
                    (size, size), Image.Resampling.BILINEAR, box=(left, top, right, bottom)
                )
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # One short reason for both: Pillow's own error text is long and names its hard
        # limit (twice ours), not the 150 megapixels the docs promise.
        raise ImageDecodeError(
            f"image too large (over {MAX_PIXELS // 1_000_000} megapixels)"
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image") from None
    except MemoryError:
        raise ImageDecodeError("not enough memory to decode the image") from None
    # RuntimeError: Pillow's AVIF plugin, on a sound container with damaged pixel data.
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, RuntimeError) as exc:
        raise ImageDecodeError(f"corrupt image ({exc})") from None
    if width < 1 or height < 1:
        raise ImageDecodeError("image has no pixels")
    thumb = whole.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    thumbnail = thumb.tobytes()
    # Pictures inside it, looked for in the pixels decoded (upright, at least 2x ``size``).
    regions = pack(inner_pictures(rgb)) if may_hold_pictures(thumbnail) else b""
    return DecodedImage(np.asarray(square, dtype=np.uint8), width, height, thumbnail, regions)


def decode_for_display(path: str | os.PathLike[str] | BinaryIO, side: int) -> Image.Image:
    """An oriented RGB image at least ``side`` px on its long edge, decoded with JPEG draft
    mode where possible (for review thumbnails). An image over
    ``DISPLAY_REDUCE_ABOVE_BYTES`` decoded is reduced while converted, to at least twice
    ``side`` on its long edge."""
    register_plugins()
    if isinstance(path, (str, os.PathLike)):
        from dedup_cli.media.raw import picture_source

        path = picture_source(path)  # a RAW: the camera's embedded JPEG
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            img: Image.Image = Image.open(path)
            if img.format == "JPEG" and isinstance(img, ImageFile.ImageFile):
                img.draft("RGB", (side, side))
            _check_decoded_size(img)
            orientation = exif_orientation(img)
            factor = 1
            if decoded_bytes(img) > DISPLAY_REDUCE_ABOVE_BYTES:
                factor = max(1, max(img.size) // (2 * max(side, 1)))
            rgb = _to_rgb(img, (factor, factor))
            transpose = _TRANSPOSE.get(orientation or 1)
            shown = rgb if transpose is None else rgb.transpose(transpose)
            shown.load()  # a damaged file fails here, as one error, not later in the caller
            return shown
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError("image too large") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image") from None
    except MemoryError:
        raise ImageDecodeError("not enough memory to decode the image") from None
    except (ValueError, SyntaxError, EOFError, TypeError, IndexError, RuntimeError) as exc:
        raise ImageDecodeError(f"corrupt image ({exc})") from None


def exif_orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - broken EXIF must not make the image unreadable
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _to_rgb(img: Image.Image, factor: tuple[int, int] = (1, 1)) -> Image.Image:
    """Any mode -> 8-bit RGB reduced by ``factor`` (``Image.reduce``: the mean of each
    factor[0] x factor[1] block); transparency is flattened onto white, 16-bit is scaled down.

    RGB is reduced as it is. Any other mode is converted and reduced strip by strip (strips a
    whole number of blocks high, so the result is exactly that of converting the whole image
    and then reducing it), so memory beyond the decoded image is one strip and the result.
    """
    if img.mode == "RGB":
        return img if factor == (1, 1) else img.reduce(factor)
    width, height = img.size
    top = _wide_top(img) if img.mode in _WIDE_MODES else 0.0
    fx, fy = factor
    rows = max(fy, STRIP_BYTES // max(1, 4 * width) // fy * fy)
    if rows >= height:
        whole = _pixels_to_rgb(img, top)
        return whole if factor == (1, 1) else whole.reduce(factor)
    out = Image.new("RGB", (-(-width // fx), -(-height // fy)))
    for y in range(0, height, rows):
        strip = _pixels_to_rgb(img.crop((0, y, width, min(height, y + rows))), top)
        out.paste(strip if factor == (1, 1) else strip.reduce(factor), (0, y // fy))
    return out


def _wide_top(img: Image.Image) -> float:
    """The value shown as white for a 16-bit, 32-bit or float image: 255 if no pixel is
    above it (8-bit data in a wide mode), else 65535, else the brightest pixel."""
    if img.width < 1 or img.height < 1:
        return 255.0
    high = img.getextrema()[1]  # one band: (lowest, highest)
    peak = float(high) if isinstance(high, int | float) else 0.0
    return 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak


def _pixels_to_rgb(img: Image.Image, top: float) -> Image.Image:
    """The per-pixel conversion of ``_to_rgb`` (for a strip or a small image)."""
    if img.mode in _WIDE_MODES:
        arr = np.asarray(img)
        if arr.dtype.kind == "f":  # float32 arithmetic
            work = arr.astype(np.float32)
            work *= np.float32(255.0 / top)
        else:  # integers stay integers: v * 255 // top, exact (uint32 holds 65535 * 255)
            work = arr.astype(np.uint32 if arr.dtype.kind == "u" else np.int64)
            work *= 255
            work //= int(top)
        np.clip(work, 0, 255, out=work)
        img = Image.fromarray(work.astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img
