"""Decode images for embedding: EXIF orientation, JPEG draft downscaling, odd modes, limits.

Every failure becomes an ``ImageDecodeError`` with a short reason that is stored with the
file and counted in the report; nothing here lets a bad file crash a run.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
import xxhash
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Refuse images over 150 megapixels: decoding one would take gigabytes per worker.
MAX_PIXELS = 150_000_000
THUMBNAIL_SIDE = 32

_heif_registered = False


def _register_plugins() -> None:
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


def content_hash(data: bytes) -> str:
    """A fast 128-bit hash of the file's bytes (xxh3), as 32 hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def read_file(path: str | os.PathLike[str]) -> tuple[bytes, int, int]:
    """The bytes of a file with the size and mtime of exactly what was read."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        data = handle.read()
    return data, info.st_size, info.st_mtime_ns


def decode(data: bytes, size: int) -> DecodedImage:
    """Bytes -> oriented RGB pixels squashed to size x size, plus a grayscale thumbnail."""
    _register_plugins()
    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            img: Image.Image = Image.open(io.BytesIO(data))
            width, height = img.size
            orientation = _orientation(img)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            if img.format == "JPEG" and isinstance(img, ImageFile.ImageFile):
                img.draft("RGB", (size, size))
            img = ImageOps.exif_transpose(img) if orientation not in (None, 1) else img
            rgb = _to_rgb(img)
            square = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # One short reason for both: Pillow's own error text is long and names its hard
        # limit (twice ours), not the 150 megapixels the docs promise.
        raise ImageDecodeError(
            f"image too large (over {MAX_PIXELS // 1_000_000} megapixels)"
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image") from None
    # RuntimeError: Pillow's AVIF plugin, on a sound container with damaged pixel data.
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, RuntimeError) as exc:
        raise ImageDecodeError(f"corrupt image ({exc})") from None
    if width < 1 or height < 1:
        raise ImageDecodeError("image has no pixels")
    thumb = square.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    return DecodedImage(np.asarray(square, dtype=np.uint8), width, height, thumb.tobytes())


def decode_for_display(path: str | os.PathLike[str], side: int) -> Image.Image:
    """An oriented RGB image at least ``side`` px on its long edge, decoded with JPEG draft
    mode where possible (for review thumbnails)."""
    _register_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            img: Image.Image = Image.open(path)
            if img.format == "JPEG" and isinstance(img, ImageFile.ImageFile):
                img.draft("RGB", (side, side))
            orientation = _orientation(img)
            img = ImageOps.exif_transpose(img) if orientation not in (None, 1) else img
            return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError("image too large") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image") from None
    except (ValueError, SyntaxError, EOFError, TypeError, IndexError, RuntimeError) as exc:
        raise ImageDecodeError(f"corrupt image ({exc})") from None


def _orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - broken EXIF must not make the image unreadable
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> 8-bit RGB; transparency is flattened onto white, 16-bit is scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img
