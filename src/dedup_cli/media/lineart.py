"""Line art, documents and binary images for measuring accuracy where photos are not photos.

Real libraries hold scans, text pages, drawings, comics, logos and faxes: pictures that are
mostly one flat tone with sharp strokes. Their copies (resized, re-encoded, converted,
brightened, blurred) must be found, and different pages or drawings that share a layout
must not be grouped. Everything here is made offline: scikit-image's text, page, horse and
checkerboard images, text pages rendered with different words, and line drawings drawn
with Pillow from a seed.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = (
    "archive ledger invoice harbour meadow lantern orchard summit quarry garden violet "
    "copper thunder window silver canyon marble feather winter pepper saddle timber"
).split()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has one bitmap size
        return ImageFont.load_default()


def text_page(seed: int, size: tuple[int, int] = (600, 800)) -> Image.Image:
    """A page of text in one layout (title, justified lines, a footer); the words differ
    with ``seed``, so two pages look alike and are not copies."""
    rng = np.random.default_rng(seed)
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    w, h = size
    draw.text((w * 0.1, h * 0.06), " ".join(rng.choice(WORDS, 3)).title(), fill=0, font=_font(34))
    body = _font(18)
    y = h * 0.16
    while y < h * 0.88:
        draw.text((w * 0.1, y), " ".join(rng.choice(WORDS, 6)), fill=0, font=body)
        y += 26
    draw.line((w * 0.1, h * 0.92, w * 0.9, h * 0.92), fill=0, width=2)
    draw.text((w * 0.1, h * 0.94), f"page {seed}", fill=0, font=body)
    return page.convert("RGB")


def drawing(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Black strokes on white: lines, circles and a polygon placed by ``seed``."""
    rng = np.random.default_rng(seed)
    picture = Image.new("L", size, 255)
    draw = ImageDraw.Draw(picture)
    w, h = size
    for _ in range(6):
        x0, y0, x1, y1 = rng.uniform(0, 1, 4) * (w, h, w, h)
        draw.line((x0, y0, x1, y1), fill=0, width=int(rng.integers(2, 6)))
    for _ in range(3):
        cx, cy = rng.uniform(0.15, 0.85, 2) * (w, h)
        r = rng.uniform(0.05, 0.2) * min(w, h)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=0, width=3)
    points = [tuple(p) for p in (rng.uniform(0.1, 0.9, (5, 2)) * (w, h)).tolist()]
    draw.polygon(points, outline=0, width=3)
    return picture.convert("RGB")


def _scaled(image: np.ndarray, long_side: int = 600) -> Image.Image:
    picture = Image.fromarray(image)
    factor = long_side / max(picture.size)
    size = (round(picture.width * factor), round(picture.height * factor))
    return picture.resize(size, Image.Resampling.LANCZOS).convert("RGB")


def line_art() -> dict[str, Image.Image]:
    """The originals: rendered pages and drawings, and scikit-image's scans and binary
    images where scikit-image is installed (it is in the ``test`` extra)."""
    found: dict[str, Image.Image] = {}
    try:
        data: Any = importlib.import_module("skimage.data")
    except ImportError:
        data = None
    if data is not None:
        horse = (~data.horse()).astype(np.uint8) * 255  # a black silhouette on white
        found["skimage_text"] = _scaled(data.text())
        found["skimage_page"] = _scaled(data.page())
        found["horse"] = _scaled(255 - horse)
        found["checkerboard"] = _scaled(data.checkerboard())
    for seed in range(1, 5):
        found[f"text_page_{seed}"] = text_page(seed)
        found[f"drawing_{seed}"] = drawing(seed)
    return found
