"""RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF, …) seen through their embedded
preview.

Every camera RAW format carries the camera's own JPEG rendering of the shot, most at full
size, beside the sensor data. Embedding and proving a RAW from that preview needs no RAW
decoder (LibRaw would develop the sensor data, slowly, into a picture that differs from the
camera's anyway), and it is what makes a RAW and its copies comparable with each other and
with the JPEG the camera wrote beside it. The largest complete JPEG found in the file is the
preview; a file with none is unreadable, like any other broken image.
"""

from __future__ import annotations

import io
import os
import warnings

from PIL import Image

from dedup_cli.media.companions import kind_of
from dedup_cli.media.decode import ImageDecodeError

JPEG_START = b"\xff\xd8\xff"
# Embedded JPEGs looked at, in file order (a RAW holds two or three: thumbnail, preview).
MAX_CANDIDATES = 32


def is_raw(name: str | os.PathLike[str]) -> bool:
    return kind_of(os.fspath(name)) == "raw"


def picture_source(path: str | os.PathLike[str]) -> str | os.PathLike[str] | io.BytesIO:
    """What to open for a file's picture: the file itself, or a RAW's embedded preview."""
    if not is_raw(path):
        return path
    with open(path, "rb") as handle:
        return io.BytesIO(raw_preview(handle.read()))


def raw_preview(data: bytes) -> bytes:
    """The largest embedded JPEG of a RAW file, from its start marker (a decoder stops at
    its end marker). Raises ``ImageDecodeError`` when the file holds none."""
    best: tuple[int, int] | None = None  # (pixels, offset)
    start = data.find(JPEG_START)
    looked = 0
    while start >= 0 and looked < MAX_CANDIDATES:
        looked += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(data[start:])) as image:
                    if image.format == "JPEG":
                        image.verify()
                        width, height = image.size
                        if best is None or width * height > best[0]:
                            best = (width * height, start)
        except Exception:  # noqa: BLE001 - not a JPEG at this offset: look further
            pass
        start = data.find(JPEG_START, start + 3)
    if best is None:
        raise ImageDecodeError("RAW file without an embedded preview")
    return data[best[1] :]
