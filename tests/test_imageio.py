from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import encode, random_image
from dedup_cli.media.decode import THUMBNAIL_SIDE, ImageDecodeError, content_hash, decode


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def test_decode_gives_square_rgb_and_original_resolution() -> None:
    image = random_image(1, (300, 200))
    decoded = decode(encode(image, "PNG"), 224)
    assert decoded.pixels.shape == (224, 224, 3) and decoded.pixels.dtype == np.uint8
    assert (decoded.width, decoded.height) == (300, 200)
    assert len(decoded.thumbnail) == THUMBNAIL_SIDE * THUMBNAIL_SIDE


def test_exif_orientation_is_applied_before_embedding() -> None:
    upright = random_image(2, (120, 80))
    # Stored rotated, with orientation 6 ("rotate 90 CW to display") to put it upright again.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = decode(encode(stored, "JPEG", quality=95, exif=exif.tobytes()), 64)
    reference = decode(encode(upright, "JPEG", quality=95), 64)
    assert (rotated.width, rotated.height) == (120, 80)
    assert mean_abs_diff(rotated.pixels, reference.pixels) < 6
    # Without honouring the tag the pixels would be far apart.
    ignored = decode(encode(stored, "JPEG", quality=95), 64)
    assert mean_abs_diff(ignored.pixels, reference.pixels) > 20


def test_bogus_orientation_value_is_ignored() -> None:
    exif = Image.Exif()
    exif[0x0112] = 42
    decoded = decode(encode(random_image(3), "JPEG", exif=exif.tobytes()), 32)
    assert decoded.pixels.shape == (32, 32, 3)


@pytest.mark.parametrize("mode", ["CMYK", "L", "LA", "RGBA", "P", "1", "I;16"])
def test_unusual_modes_decode(mode: str) -> None:
    base = random_image(4, (40, 30))
    if mode == "I;16":
        arr = np.asarray(base.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(arr)
        fmt = "PNG"
    elif mode == "P":
        image = base.convert("P")
        image.info["transparency"] = 0
        fmt = "PNG"
    else:
        image = base.convert(mode)
        fmt = "JPEG" if mode in ("CMYK", "L") else "PNG"
    decoded = decode(encode(image, fmt), 32)
    assert decoded.pixels.shape == (32, 32, 3)
    if mode == "I;16":  # 16-bit values are scaled, not clipped to white
        gray = np.asarray(base.convert("L").resize((32, 32), Image.Resampling.BILINEAR))
        assert mean_abs_diff(decoded.pixels[..., 0], gray) < 8


def test_transparent_areas_become_white() -> None:
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    decoded = decode(encode(image, "PNG"), 8)
    assert decoded.pixels.min() == 255


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [random_image(i, (32, 32)).convert("P") for i in range(3)]
    buffer = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    decoded = decode(buffer, 16)
    first = decode(encode(frames[0], "GIF"), 16)
    assert mean_abs_diff(decoded.pixels, first.pixels) < 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"<html><body>not a photo</body></html>", "not a readable image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image"),
    ],
)
def test_bad_bytes_raise_a_decode_error(content: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=reason):
        decode(content, 32)


def test_truncated_jpeg_is_an_error_not_a_crash() -> None:
    data = encode(random_image(5, (400, 300)), quality=95)
    with pytest.raises(ImageDecodeError):
        decode(data[: len(data) // 3], 32)


def test_decompression_bomb_header_is_refused() -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(ImageDecodeError, match="too large"):
        decode(png, 32)


def test_content_hash_is_stable_and_distinguishes_bytes() -> None:
    assert content_hash(b"abc") == content_hash(b"abc")
    assert content_hash(b"abc") != content_hash(b"abd")
    assert len(content_hash(b"")) == 32


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "WEBP", "TIFF", "BMP"])
def test_other_formats_decode_to_the_same_pixels(fmt: str) -> None:
    pytest.importorskip("pillow_heif")
    import pillow_heif

    pillow_heif.register_heif_opener()
    image = random_image(6, (96, 64))
    decoded = decode(
        encode(image, fmt, quality=95) if fmt in ("HEIF", "AVIF", "WEBP") else encode(image, fmt),
        32,
    )
    reference = decode(encode(image, "PNG"), 32)
    assert (decoded.width, decoded.height) == (96, 64)
    assert mean_abs_diff(decoded.pixels, reference.pixels) < 8


def test_sixteen_bit_values_are_scaled_exactly() -> None:
    # Four flat quarters: black, 16-bit mid grey (128 * 257), just below white, white; laid
    # out so that no side is one flat black or white bar (``media.borders`` would trim it).
    values = np.array([[0, 254 * 257], [65535, 128 * 257]], dtype=np.uint16)
    image = Image.fromarray(np.kron(values, np.ones((32, 32), dtype=np.uint16)))
    assert image.mode == "I;16"
    pixels = decode(encode(image, "PNG"), 8).pixels
    assert pixels.shape == (8, 8, 3)
    assert [pixels[1, 1, 0], pixels[6, 6, 0], pixels[1, 6, 0], pixels[6, 1, 0]] == [
        0,
        128,
        254,
        255,
    ]
    # Values that all fit in 8 bits are taken as 8-bit data, not darkened 257 times.
    low = Image.fromarray(np.full((16, 16), 200, dtype=np.uint16))
    assert int(decode(encode(low, "PNG"), 8).pixels.min()) == 200


@pytest.mark.parametrize("mode", ["I;16", "P", "RGBA", "CMYK", "L", "F"])
def test_conversion_in_strips_is_exactly_the_whole_image_conversion(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_cli.media.decode as imageio

    base = random_image(9, (1003, 701))  # not a multiple of the reduction factors
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257 + 100)
    elif mode == "F":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) * 3.5)
    elif mode == "P":
        image = base.convert("P")
        image.info["transparency"] = 5
    else:
        image = base.convert(mode)
    data = encode(image, "TIFF")
    whole = decode(data, 100)
    monkeypatch.setattr(imageio, "STRIP_BYTES", 40_000)  # 9 rows: ~80 strips
    strips = decode(data, 100)
    assert np.array_equal(whole.pixels, strips.pixels) and whole.thumbnail == strips.thumbnail


def test_a_large_image_is_reduced_for_display(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_cli.media.decode as imageio

    arr = np.asarray(random_image(10, (1200, 800)).convert("L"), dtype=np.uint16) * 257
    path = tmp_path / "big16.png"
    path.write_bytes(encode(Image.fromarray(arr), "PNG"))
    full = imageio.decode_for_display(path, 100)
    assert full.mode == "RGB" and full.size == (1200, 800)
    monkeypatch.setattr(imageio, "DISPLAY_REDUCE_ABOVE_BYTES", 0)
    reduced = imageio.decode_for_display(path, 100)
    assert reduced.mode == "RGB" and reduced.size == (200, 134)  # reduced 6x: >= 2 x 100
    expected = full.reduce(6)
    assert mean_abs_diff(np.asarray(reduced), np.asarray(expected)) < 1


def test_decoded_size_is_estimated_from_the_header_and_capped() -> None:
    from dedup_cli.media.decode import MAX_DECODED_BYTES, decoded_bytes

    def header_png(width: int, height: int, depth: int, color_type: int) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            crc = struct.pack(">I", zlib.crc32(kind + body))
            return struct.pack(">I", len(body)) + kind + body + crc

        header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")

    import io

    sizes = {
        (16, 0): 2,  # 16-bit gray
        (8, 0): 1,  # 8-bit gray
        (8, 2): 3,  # RGB
        (8, 6): 4,  # RGBA
    }
    for (depth, color), per_pixel in sizes.items():
        with Image.open(io.BytesIO(header_png(1000, 500, depth, color))) as image:
            assert decoded_bytes(image) == 1000 * 500 * per_pixel
    # 150 MP of 8-bit RGB still decodes; 150 MP RGBA (600 MB) does not.
    assert 150_000_000 * 3 <= MAX_DECODED_BYTES < 150_000_000 * 4
    with pytest.raises(ImageDecodeError, match=r"too large to decode \(576 MB of pixels, limit"):
        decode(header_png(12000, 12000, 8, 6), 224)


def test_a_damaged_file_read_for_the_proof_fails_as_one_error_there(tmp_path: Path) -> None:
    """A PNG or JPEG whose data rotted (the header intact) fails inside ``decode_for_display``
    as ``ImageDecodeError`` or ``OSError``, which every proof catches; before, Pillow read
    the pixels lazily and a PNG's ``SyntaxError`` escaped later, in the caller."""
    from dedup_cli.media.decode import decode_for_display

    image = random_image(3, (256, 256))
    for name, fmt in (("x.png", "PNG"), ("x.jpg", "JPEG")):
        data = encode(image, fmt)
        path = tmp_path / name
        path.write_bytes(data[:200] + bytes(len(data) - 200))
        with pytest.raises((ImageDecodeError, OSError)):
            decode_for_display(path, 64)
