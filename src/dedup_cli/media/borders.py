"""Uniform borders around a picture: letterbox and pillarbox bars, scanner margins, padding.

A copy padded to another frame (a 16:9 video still, a square post, a scan with a margin) is
the same picture with flat black or white bars: the model sees the bars and rates the pair
below the threshold. The picture is embedded (and its thumbnail made) from inside its
borders, so the padded copy meets its original. Only black or white bars are trimmed (what
letterboxing, padding and scanners add), and never more than leaves ``MIN_CONTENT`` of a
side: a dark or bright photo is not cut down to a strip. The file's own facts (its pixel
size) stay untrimmed, for the keeper.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

DARK, LIGHT = 24, 231  # a border's tone is at most DARK (black bars) or at least LIGHT (white)
TOLERANCE = 12  # levels a border pixel may differ from the border's tone (JPEG noise)
UNIFORM = 0.995  # share of a row or column within tolerance for it to be border
MIN_TRIM = 0.02  # a side is trimmed only when at least this share of the picture goes
MIN_CONTENT = 0.30  # what is left keeps at least this share of each side


def _bar_tone(line: np.ndarray) -> bool:
    """Whether a line of RGB pixels is mostly black or mostly white (its median tone)."""
    tone = np.median(line.reshape(-1, 3), axis=0)
    return bool(tone.max() <= DARK or tone.min() >= LIGHT)


def content_box_of(image: Image.Image) -> tuple[int, int, int, int] | None:
    """``content_box`` of an RGB image, reading its four outer lines first: a picture none
    of whose edges is black or white (most photos) costs four lines, not a copy of it."""
    w, h = image.size
    if w < 8 or h < 8:
        return None
    edges = ((0, 0, w, 1), (0, h - 1, w, h), (0, 0, 1, h), (w - 1, 0, w, h))
    if not any(_bar_tone(np.asarray(image.crop(edge))) for edge in edges):
        return None
    return content_box(np.asarray(image))


def border_run(lines: np.ndarray) -> int:
    """How many leading lines (``lines[k]`` is one row or column of RGB pixels) are one
    flat black or white tone; read a few lines at a time, so a photo costs one line."""
    if not _bar_tone(lines[0]):
        return 0
    level = np.median(lines[0].reshape(-1, 3), axis=0).astype(np.int16)
    run, step = 0, 8
    while run < len(lines):
        chunk = lines[run : run + step].astype(np.int16)
        close = np.abs(chunk - level).max(axis=-1) <= TOLERANCE
        flat = close.mean(axis=1) >= UNIFORM
        if not flat.all():
            return run + int(np.argmin(flat))
        run += len(chunk)
        step = min(step * 2, 64)
    return run


def content_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(left, top, right, bottom)`` of the picture inside its uniform borders, in the
    pixels' coordinates; None when there is nothing to trim (or trimming would leave too
    little)."""
    height, width = pixels.shape[:2]
    if height < 8 or width < 8:
        return None
    top = border_run(pixels)
    bottom = border_run(pixels[::-1])
    left = border_run(pixels.transpose(1, 0, 2))
    right = border_run(pixels.transpose(1, 0, 2)[::-1])
    top, bottom = (t if t >= MIN_TRIM * height else 0 for t in (top, bottom))
    left, right = (t if t >= MIN_TRIM * width else 0 for t in (left, right))
    if not (top or bottom or left or right):
        return None
    if height - top - bottom < MIN_CONTENT * height or width - left - right < MIN_CONTENT * width:
        return None
    return left, top, width - right, height - bottom
