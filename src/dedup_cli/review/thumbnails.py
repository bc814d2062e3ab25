"""Small JPEG thumbnails for review, made one at a time with JPEG draft decoding, so a large
group never holds full-size images in memory."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from dedup_cli.media.decode import ImageDecodeError, decode_for_display


def thumbnail_jpeg(path: Path, side: int = 256, quality: int = 80) -> bytes | None:
    """JPEG bytes of the oriented image fitted in ``side`` x ``side``, or None if unreadable."""
    try:
        image = decode_for_display(path, side)
    except (OSError, ImageDecodeError):
        return None
    image.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
