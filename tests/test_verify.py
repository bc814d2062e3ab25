"""The thumbnail check: its fast separable form equals a direct computation of every crop
window, and it accepts resized/re-encoded copies while rejecting a different picture."""

from __future__ import annotations

import numpy as np

from conftest import encode
from dedup_cli.confirm.thumbnails import _OFFSETS, _SCALES, aligned_correlation, confirm
from dedup_cli.media.decode import THUMBNAIL_SIDE, decode


def direct_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Every crop window of one thumbnail, bilinearly resampled pixel by pixel, against the
    other, both ways: the definition the fast form must match."""
    side = THUMBNAIL_SIDE
    unit = (np.arange(side) + 0.5) / side
    best = -1.0
    for outer, inner in ((a, b), (b, a)):
        target = inner.ravel() - inner.mean()
        for sy in _SCALES:
            for oy in np.linspace(0.0, 1.0 - sy, _OFFSETS if sy < 1 else 1):
                for sx in _SCALES:
                    for ox in np.linspace(0.0, 1.0 - sx, _OFFSETS if sx < 1 else 1):
                        ys = np.clip((oy + sy * unit) * side - 0.5, 0, side - 1)
                        xs = np.clip((ox + sx * unit) * side - 0.5, 0, side - 1)
                        window = np.empty((side, side))
                        for r, y in enumerate(ys):
                            y0 = int(np.floor(y))
                            y1, wy = min(y0 + 1, side - 1), y - np.floor(y)
                            for c, x in enumerate(xs):
                                x0 = int(np.floor(x))
                                x1, wx = min(x0 + 1, side - 1), x - np.floor(x)
                                top = outer[y0, x0] * (1 - wx) + outer[y0, x1] * wx
                                bottom = outer[y1, x0] * (1 - wx) + outer[y1, x1] * wx
                                window[r, c] = top * (1 - wy) + bottom * wy
                        centred = window.ravel() - window.mean()
                        norm = np.linalg.norm(centred) * np.linalg.norm(target)
                        if norm > 0:
                            best = max(best, float(centred @ target / norm))
    return best


def test_fast_form_equals_direct_computation() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (32, 32)).astype(np.float64)
    shifted = np.roll(base, 2, axis=1)
    noisy = np.clip(base + rng.normal(0, 30, base.shape), 0, 255)
    other = rng.integers(0, 256, (32, 32)).astype(np.float64)
    for b in (shifted, noisy, other):
        fast = aligned_correlation(base.astype(np.uint8).tobytes(), b.astype(np.uint8).tobytes())
        direct = direct_correlation(np.floor(base), np.floor(b).astype(np.uint8).astype(float))
        assert abs(fast - direct) < 1e-9


def test_copies_pass_and_another_photo_fails(photos) -> None:  # type: ignore[no-untyped-def]
    photo = photos["coffee"]
    original = decode(encode(photo, quality=95), 224).thumbnail
    half = decode(encode(photo.resize((300, 200)), quality=60), 224).thumbnail
    other = decode(encode(photos["rocket"], quality=95), 224).thumbnail
    assert confirm(original, half, 0.99)
    assert not confirm(original, other)
    flat = bytes([100]) * 1024
    assert confirm(flat, bytes([102]) * 1024) and not confirm(flat, bytes([150]) * 1024)


def test_the_batched_thumbnail_check_answers_exactly_as_confirm(photos) -> None:  # type: ignore[no-untyped-def]
    """``agreeing`` decides most pairs by two sound shortcuts; every answer must still be
    ``confirm``'s: copies (resized, re-encoded, cropped, brightened), look-alikes, noise,
    flat and missing thumbnails."""
    import numpy as np
    from PIL import ImageEnhance

    from dedup_cli.confirm.thumbnails import agreeing, confirm
    from dedup_cli.media.decode import THUMBNAIL_SIDE

    def thumb(image) -> bytes:  # type: ignore[no-untyped-def]
        small = image.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        return np.asarray(small, dtype=np.uint8).tobytes()

    thumbs = []
    for photo in list(photos.values())[:6]:
        w, h = photo.size
        thumbs += [
            thumb(photo),
            thumb(photo.resize((w // 3, h // 3))),
            thumb(photo.crop((w // 12, h // 12, w - w // 12, h - h // 12))),
            thumb(ImageEnhance.Brightness(photo).enhance(1.2)),
            thumb(photo.crop((0, 0, w // 2, h // 2))),
        ]
    rng = np.random.default_rng(0)
    thumbs += [rng.integers(0, 256, THUMBNAIL_SIDE**2, dtype=np.uint8).tobytes() for _ in range(5)]
    thumbs += [bytes([128]) * THUMBNAIL_SIDE**2, bytes([129]) * THUMBNAIL_SIDE**2, b"short"]
    pairs = [(a, b) for a in range(len(thumbs)) for b in range(len(thumbs)) if a != b]
    a = [thumbs[i] for i, _ in pairs] + [None]
    b = [thumbs[j] for _, j in pairs] + [thumbs[0]]
    got = agreeing(a, b, 0.99)
    expected = [confirm(x, y, 0.99) for x, y in zip(a, b)]
    assert got.tolist() == expected
    assert 0 < sum(expected) < len(expected) / 4  # copies pass, the rest do not
