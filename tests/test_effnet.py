"""The embedded default model: real weights, offline, same results across precisions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import encode, sample_photos
from dedup_cli.errors import ModelLoadError
from dedup_cli.media.decode import decode
from dedup_cli.models import get_spec, load_model
from dedup_cli.models.effnet import EffnetModel, bundled_weights_path


def batch(size: int = 224) -> torch.Tensor:
    images = [decode(encode(p, quality=92), size).pixels for p in sample_photos().values()]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def test_bundled_weights_classify_real_photos() -> None:
    """The architecture matches the shipped weights: a cat is a cat, a coffee an espresso."""
    model = EffnetModel(get_spec("effnet"), torch.device("cpu"), None, precision="fp32")
    photos = sample_photos()
    for name, expected in (("chelsea", {281, 282, 285}), ("coffee", {967})):
        pixels = decode(encode(photos[name], quality=95), 224).pixels
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
        x = (x - 0.498) / 0.502
        with torch.inference_mode():
            top = int(model.net.classify(x).argmax())
        assert top in expected


def test_embeddings_are_unit_norm_1280_d() -> None:
    model = load_model(get_spec("effnet"), torch.device("cpu"))
    vectors = model.embed_batch(batch())
    assert vectors.shape == (len(sample_photos()), 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16"])
def test_fast_runtime_matches_fp32_within_tolerance(precision: str) -> None:
    spec = get_spec("effnet")
    images = batch()
    reference = EffnetModel(spec, torch.device("cpu"), None, precision="fp32").embed_batch(images)
    fast = EffnetModel(spec, torch.device("cpu"), None, precision=precision).embed_batch(images)
    cosine = np.einsum("ij,ij->i", reference, fast)
    assert cosine.min() > 0.995  # bfloat16 keeps 8 bits of mantissa
    # Pairwise similarities, which decide duplicates, move by less than 0.01.
    assert np.abs(reference @ reference.T - fast @ fast.T).max() < 0.01


def test_weights_option_takes_a_file_or_folder(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(bundled_weights_path(), folder / "lite0.pth")
    images = batch(224)[:2]
    by_folder = load_model(get_spec("effnet"), torch.device("cpu"), folder).embed_batch(images)
    by_file = load_model(get_spec("effnet"), torch.device("cpu"), folder / "lite0.pth").embed_batch(
        images
    )
    np.testing.assert_array_equal(by_folder, by_file)


def test_bad_weights_are_a_model_load_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(get_spec("effnet"), torch.device("cpu"), tmp_path / "junk.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"no \.pth"):
        load_model(get_spec("effnet"), torch.device("cpu"), tmp_path / "empty")
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(get_spec("effnet"), torch.device("cpu"), tmp_path / "missing")
