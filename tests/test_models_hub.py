"""The hub-backed backends (``clip-b32``, ``clip-l14``, ``dinov3``) without any download.

Tiny random models are saved under tmp_path in the layouts real local copies use and loaded
through ``load_model(spec, cpu, weights=...)``, the same path ``--weights`` takes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch

from dedup_cli.errors import ModelLoadError
from dedup_cli.models import get_spec, load_model

CPU = torch.device("cpu")

TINY_CLIP_CFG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
}


# ---------------------------------------------------------------- fixtures and helpers


def _images(size: int) -> torch.Tensor:
    """uint8 (4, 3, size, size): A, A again, B (a different picture), C (noise)."""
    ramp = torch.linspace(0, 255, size).round().to(torch.uint8)
    a = torch.stack(
        [
            ramp.view(1, -1).expand(size, size),
            ramp.view(-1, 1).expand(size, size),
            torch.full((size, size), 40, dtype=torch.uint8),
        ]
    )
    idx = torch.arange(size)
    checker = (((idx.view(-1, 1) // 16) + (idx.view(1, -1) // 16)) % 2 * 255).to(torch.uint8)
    b = torch.stack([checker, 255 - checker, checker // 2])
    c = torch.randint(
        0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    return torch.stack([a, a.clone(), b, c])


def _check_vectors(vectors: np.ndarray, dimension: int) -> None:
    assert isinstance(vectors, np.ndarray)
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the same image twice gives the same vector; different images give different vectors
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert np.abs(vectors[0] - vectors[2]).max() > 1e-3
    assert np.abs(vectors[0] - vectors[3]).max() > 1e-3
    assert np.abs(vectors[2] - vectors[3]).max() > 1e-3


def _one_line(exc: pytest.ExceptionInfo[ModelLoadError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A tiny open_clip model saved as open_clip's hub layout: config JSON + safetensors."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP_CFG).eval()
    folder = tmp_path_factory.mktemp("tiny_clip")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG}))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(folder / "open_clip_model.safetensors"),
    )
    return folder, model


@pytest.fixture(scope="module")
def tiny_dinov3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A tiny DINOv3 saved with save_pretrained (config.json + model.safetensors)."""
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(0)
    config = DINOv3ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=16,
        image_size=224,
        num_register_tokens=4,
    )
    model = DINOv3ViTModel(config)
    model.eval()  # type: ignore[no-untyped-call]  # train mode would jitter RoPE coordinates
    folder = tmp_path_factory.mktemp("tiny_dinov3")
    model.save_pretrained(folder)
    return folder, model


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network and an empty cache for huggingface_hub (and thus transformers / open_clip).

    huggingface_hub reads HF_HUB_OFFLINE and the cache location once, at import, so the
    module constants are patched as well as the environment.
    """
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf_home"
    cache.mkdir()
    for name, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(cache),
        "HF_HUB_CACHE": str(cache / "hub"),
        "XDG_CACHE_HOME": str(cache),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache / "hub"))

    # open_clip falls back to plain URLs when the hub is unavailable: never let that run.
    def no_url_download(*args: object, **kwargs: object) -> str:
        raise OSError("network disabled in tests")

    import open_clip.pretrained

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url", no_url_download)
    return cache


# ---------------------------------------------------------------- registry


def test_registry_specs() -> None:
    b32, l14, dino = get_spec("clip-b32"), get_spec("clip-l14"), get_spec("dinov3")
    assert (b32.dimension, l14.dimension, dino.dimension) == (512, 768, 1024)
    assert get_spec("clip-b32", "hidden").dimension == 768
    assert get_spec("clip-b32", "both").dimension == 1280
    assert get_spec("clip-l14", "hidden").dimension == 1024
    assert get_spec("clip-l14/both").dimension == 1792
    assert get_spec("clip-l14", "both").key == "clip-l14/both"
    assert b32.default_threshold == l14.default_threshold == 0.96
    assert dino.default_threshold == 0.90
    assert b32.preprocessing.size == l14.preprocessing.size == dino.preprocessing.size == 224
    assert b32.preprocessing.mean == (0.48145466, 0.4578275, 0.40821073)
    assert b32.preprocessing.std == (0.26862954, 0.26130258, 0.27577711)
    assert dino.preprocessing.mean == (0.485, 0.456, 0.406)
    assert dino.preprocessing.std == (0.229, 0.224, 0.225)
    assert {b32.preprocessing.resize, dino.preprocessing.resize} == {"squash"}


def test_importing_backends_stays_cheap() -> None:
    code = (
        "import sys, dedup_cli.models.clip, dedup_cli.models.dinov3; "
        "print(sorted(m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules))"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- CLIP


@pytest.mark.parametrize("name", ["clip-b32", "clip-l14"])
@pytest.mark.parametrize("embedding_type", ["final", "hidden", "both"])
def test_clip_tiny_embeddings(tiny_clip: tuple[Path, Any], name: str, embedding_type: str) -> None:
    folder, _ = tiny_clip
    spec = get_spec(name, embedding_type)
    model = load_model(spec, CPU, folder)
    expected = {"final": 32, "hidden": 64, "both": 96}[embedding_type]
    assert model.dimension == expected  # taken from the loaded model, not the registry
    assert model.name == spec.key
    assert model.preprocessing == spec.preprocessing
    assert model.default_threshold == 0.96
    _check_vectors(model.embed_batch(_images(spec.preprocessing.size)), expected)


def test_clip_vectors_match_open_clip(tiny_clip: tuple[Path, Any]) -> None:
    """The saved weights are really loaded, and hidden = mean of the last block's tokens."""
    folder, reference = tiny_clip
    spec = get_spec("clip-b32")
    images = _images(spec.preprocessing.size)
    x = (
        images.float() / 255 - torch.tensor(spec.preprocessing.mean).view(1, 3, 1, 1)
    ) / torch.tensor(spec.preprocessing.std).view(1, 3, 1, 1)
    with torch.no_grad():
        final = torch.nn.functional.normalize(reference.encode_image(x), dim=1).numpy()
        # open_clip's own intermediates API: last block, class token and patch tokens apart
        out = reference.visual.forward_intermediates(
            x, indices=1, output_fmt="NLC", output_extra_tokens=True
        )
        tokens = torch.cat(
            [out["image_intermediates_prefix"][-1], out["image_intermediates"][-1]], dim=1
        )
        hidden = torch.nn.functional.normalize(tokens.mean(dim=1), dim=1).numpy()
    assert tokens.shape == (4, 50, 64)  # (N, 1 + 7*7 patches, width)

    got_final = load_model(spec, CPU, folder).embed_batch(images)
    got_hidden = load_model(get_spec("clip-b32", "hidden"), CPU, folder).embed_batch(images)
    got_both = load_model(get_spec("clip-b32", "both"), CPU, folder).embed_batch(images)
    np.testing.assert_allclose(got_final, final, atol=1e-5)
    np.testing.assert_allclose(got_hidden, hidden, atol=1e-5)
    np.testing.assert_allclose(
        got_both, np.concatenate([final, hidden], axis=1) / np.sqrt(2), atol=1e-5
    )


def test_clip_pt_checkpoint_in_folder(tiny_clip: tuple[Path, Any], tmp_path: Path) -> None:
    """A folder with the config and a plain torch.save'd ``.pt`` state dict also loads."""
    folder, reference = tiny_clip
    (tmp_path / "open_clip_config.json").write_text((folder / "open_clip_config.json").read_text())
    torch.save(reference.state_dict(), tmp_path / "tiny.pt")
    spec = get_spec("clip-b32")
    images = _images(spec.preprocessing.size)
    a = load_model(spec, CPU, tmp_path).embed_batch(images)
    b = load_model(spec, CPU, folder).embed_batch(images)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_clip_missing_weights_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("clip-b32"), CPU, tmp_path / "nope")
    assert "does not exist" in _one_line(exc)


def test_clip_folder_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("clip-b32"), CPU, tmp_path)
    assert "no clip-b32 weights" in _one_line(exc)


def test_clip_bad_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / "ViT-B-32.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("clip-b32"), CPU, bad)
    assert str(bad) in _one_line(exc)


def test_clip_weights_of_wrong_architecture(tiny_clip: tuple[Path, Any], tmp_path: Path) -> None:
    """Tiny weights without their config are checked against the real ViT-B-32: a clear error."""
    folder, _ = tiny_clip
    lone = tmp_path / "open_clip_model.safetensors"
    lone.write_bytes((folder / "open_clip_model.safetensors").read_bytes())
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("clip-b32"), CPU, lone)
    assert "cannot load clip-b32 weights" in _one_line(exc)


def test_clip_without_weights_offline(offline_hub: Path) -> None:
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("clip-b32"), CPU, None)
    message = _one_line(exc)
    assert "clip-b32 weights are not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE=1 is set" in message and "--weights PATH" in message


def test_an_unreachable_hub_is_said_at_once_in_one_line(
    offline_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not offline by setting, but the hub's host refuses: no download is tried (it would
    retry for a minute), one line says what is missing and what to do."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("clip-l14"), CPU, None)
    message = _one_line(exc)
    assert "127.0.0.1 cannot be reached" in message and "--weights PATH" in message


def test_cached_hub_weights_are_not_refused(offline_hub: Path) -> None:
    """Weights in the cache need no network: the check lets them through even offline."""
    from dedup_cli.models.clip import HUB_FILES
    from dedup_cli.models.hub import check_reachable

    repo = offline_hub / "hub" / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / HUB_FILES[0]).write_bytes(b"weights")
    check_reachable("clip-b32", "timm/vit_base_patch32_clip_224.openai", HUB_FILES)
    with pytest.raises(ModelLoadError):
        check_reachable("clip-b32", "timm/vit_large_patch14_clip_224.openai", HUB_FILES)


def test_the_cli_says_offline_in_one_line_without_retries(tmp_path: Path) -> None:
    import os

    from conftest import encode, random_image

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(encode(random_image(1, (64, 48)), "PNG"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DEDUP_"))}
    env.update(
        HF_HOME=str(tmp_path / "hf"),
        HF_ENDPOINT="http://127.0.0.1:9",
        DEDUP_STATE_DIR=str(tmp_path / "state"),
    )
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(proxy, None)
    done = subprocess.run(
        [sys.executable, "-m", "dedup_cli", "hash", str(photos), "--model", "clip-b32"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Retry" not in done.stderr, done.stderr
    assert "--weights PATH" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]


# ---------------------------------------------------------------- DINOv3


def test_dinov3_tiny_embeddings(tiny_dinov3: tuple[Path, Any]) -> None:
    folder, reference = tiny_dinov3
    spec = get_spec("dinov3")
    model = load_model(spec, CPU, folder)
    assert model.dimension == 32  # config.hidden_size of the loaded model; the registry says 1024
    assert model.name == "dinov3"
    assert model.preprocessing == spec.preprocessing
    images = _images(spec.preprocessing.size)
    vectors = model.embed_batch(images)
    _check_vectors(vectors, 32)

    x = (
        images.float() / 255 - torch.tensor(spec.preprocessing.mean).view(1, 3, 1, 1)
    ) / torch.tensor(spec.preprocessing.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            reference(pixel_values=x).pooler_output, dim=1
        ).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_dinov3_weights_file_means_its_folder(tiny_dinov3: tuple[Path, Any]) -> None:
    folder, _ = tiny_dinov3
    model = load_model(get_spec("dinov3"), CPU, folder / "model.safetensors")
    assert model.dimension == 32


def test_dinov3_only_final_type() -> None:
    from dedup_cli.errors import UsageError

    with pytest.raises(UsageError):
        get_spec("dinov3", "hidden")


def test_dinov3_missing_weights_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("dinov3"), CPU, tmp_path / "nope")
    assert "does not exist" in _one_line(exc)


def test_dinov3_folder_without_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("dinov3"), CPU, tmp_path)
    assert "config.json" in _one_line(exc)


def test_dinov3_folder_without_weights(tiny_dinov3: tuple[Path, Any], tmp_path: Path) -> None:
    folder, _ = tiny_dinov3
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("dinov3"), CPU, tmp_path)
    assert "cannot load dinov3 weights" in _one_line(exc)


def test_dinov3_rejects_other_model_types(tmp_path: Path) -> None:
    from transformers import ViTConfig, ViTModel

    ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=16,
        )
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("dinov3"), CPU, tmp_path)
    assert "not 'dinov3_vit'" in _one_line(exc)


def test_dinov3_without_weights_offline(offline_hub: Path) -> None:
    with pytest.raises(ModelLoadError) as exc:
        load_model(get_spec("dinov3"), CPU, None)
    message = _one_line(exc)
    assert "facebook/dinov3-vitl16-pretrain-lvd1689m" in message
    assert "licence" in message
    assert "hf auth login" in message
    assert "--weights" in message
