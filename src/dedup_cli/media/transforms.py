"""Edits that make a copy of a photo, in two tiers, for measuring accuracy (``dedup bench``).

Easy: what copies go through without anyone meaning to change the picture (resizing,
re-encoding, format conversion, a small crop, mild tone changes, a little blur, an EXIF
orientation tag with rotated pixels). Hard: deliberate edits (big crops, flips, rotations,
grayscale, strong filters, overlays, letterboxing). Each function returns encoded bytes and
the file extension to store them under. Implemented with Pillow; where AugLy is installed
(``pip install 'dedup-cli[bench]'``) the hard tier also gets its real emoji and font overlays
and its social-media screenshot frame. Only AugLy functions that work with current
Pillow/numpy are used (``meme_format`` and ``perspective_transform`` are broken there).
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

Transform = Callable[[Image.Image], tuple[bytes, str]]


def _jpeg(image: Image.Image, quality: int = 90, **options: object) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue(), ".jpg"


def _encode(image: Image.Image, fmt: str, ext: str) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue(), ext


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = int(w * fraction / 2), int(h * fraction / 2)
    return image.crop((dx, dy, w - dx, h - dy))


def _exif_rotated(image: Image.Image) -> tuple[bytes, str]:
    """Pixels stored rotated with orientation 6, so a correct viewer shows the original."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(image.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


def _text_overlay(image: Image.Image) -> tuple[bytes, str]:
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    for row in range(3):
        draw.text(
            (w * 0.05, h * (0.1 + 0.3 * row)), "SAMPLE WATERMARK © 2026", fill=(255, 255, 255)
        )
    draw.rectangle((0, h * 0.85, w, h), fill=(0, 0, 0))
    draw.text((w * 0.05, h * 0.88), "caption text overlay", fill=(255, 255, 0))
    return _jpeg(out)


def _sticker_overlay(image: Image.Image) -> tuple[bytes, str]:
    """An emoji-like sticker: a yellow disc with a face, over a corner of the picture."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    r = min(w, h) * 0.18
    cx, cy = w * 0.75, h * 0.3
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 204, 0), outline=(0, 0, 0))
    draw.ellipse((cx - r * 0.4, cy - r * 0.3, cx - r * 0.2, cy - r * 0.1), fill=(0, 0, 0))
    draw.ellipse((cx + r * 0.2, cy - r * 0.3, cx + r * 0.4, cy - r * 0.1), fill=(0, 0, 0))
    draw.arc(
        (cx - r * 0.5, cy - r * 0.2, cx + r * 0.5, cy + r * 0.6), 20, 160, fill=(0, 0, 0), width=3
    )
    return _jpeg(out)


def _letterbox(image: Image.Image) -> tuple[bytes, str]:
    w, h = image.size
    side = max(w, h)
    canvas = Image.new("RGB", (side, int(side * 1.1)), (0, 0, 0))
    canvas.paste(image.convert("RGB"), ((side - w) // 2, (int(side * 1.1) - h) // 2))
    return _jpeg(canvas)


def _sepia(image: Image.Image) -> tuple[bytes, str]:
    gray = ImageOps.grayscale(image)
    return _jpeg(ImageOps.colorize(gray, black=(40, 20, 0), white=(255, 230, 180)))


EASY: dict[str, Transform] = {
    "downscale": lambda im: _jpeg(im.resize((max(1, im.width // 2), max(1, im.height // 2)))),
    "upscale": lambda im: _jpeg(im.resize((im.width * 3 // 2, im.height * 3 // 2))),
    "jpeg_q30": lambda im: _jpeg(im, quality=30),
    "png": lambda im: _encode(im.convert("RGB"), "PNG", ".png"),
    "webp": lambda im: _encode(im.convert("RGB"), "WEBP", ".webp"),
    "crop_10": lambda im: _jpeg(_crop(im, 0.10)),
    "brightness": lambda im: _jpeg(ImageEnhance.Brightness(im.convert("RGB")).enhance(1.2)),
    "contrast": lambda im: _jpeg(ImageEnhance.Contrast(im.convert("RGB")).enhance(0.8)),
    "blur": lambda im: _jpeg(im.convert("RGB").filter(ImageFilter.GaussianBlur(1.0))),
    "exif_rotated": _exif_rotated,
}

HARD: dict[str, Transform] = {
    "crop_35": lambda im: _jpeg(_crop(im, 0.35)),
    "hflip": lambda im: _jpeg(ImageOps.mirror(im.convert("RGB"))),
    "rotate_90": lambda im: _jpeg(im.convert("RGB").transpose(Image.Transpose.ROTATE_90)),
    "rotate_5": lambda im: _jpeg(im.convert("RGB").rotate(5, resample=Image.Resampling.BILINEAR)),
    "grayscale": lambda im: _jpeg(ImageOps.grayscale(im)),
    "colour_filter": _sepia,
    "text_overlay": _text_overlay,
    "sticker_overlay": _sticker_overlay,
    "letterbox": _letterbox,
}


def _augly_transforms() -> dict[str, Transform]:
    """AugLy's overlays, when AugLy (and the libmagic it imports) is available."""
    try:
        import augly.image as imaugs
    except (ImportError, OSError):
        return {}

    def emoji(image: Image.Image) -> tuple[bytes, str]:
        return _jpeg(imaugs.overlay_emoji(image.convert("RGB"), opacity=1.0, emoji_size=0.25))

    def text(image: Image.Image) -> tuple[bytes, str]:
        return _jpeg(imaugs.overlay_text(image.convert("RGB"), font_size=0.12, opacity=1.0))

    def screenshot(image: Image.Image) -> tuple[bytes, str]:
        return _jpeg(imaugs.overlay_onto_screenshot(image.convert("RGB")))

    return {"augly_emoji": emoji, "augly_text": text, "augly_screenshot": screenshot}


HARD.update(_augly_transforms())

TIERS: dict[str, dict[str, Transform]] = {"easy": EASY, "hard": HARD}
