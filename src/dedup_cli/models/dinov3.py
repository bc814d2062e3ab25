"""``dinov3``: DINOv3 ViT-L/16 (LVD-1689M) image embeddings through ``transformers``.

The embedding is the model's ``pooler_output``: the class token after the final LayerNorm.

Weights: without ``--weights`` they come from the Hugging Face hub
(``facebook/dinov3-vitl16-pretrain-lvd1689m``), a gated repository: accept the licence on the
model page once and log in (``hf auth login``) before the first run. ``--weights DIR`` loads a
local copy, a folder with ``config.json`` and ``model.safetensors`` as ``save_pretrained`` or
``hf download`` leave it.

The registry says 1024 dimensions (ViT-L). A loaded model reports the width it really has,
``config.hidden_size``, so a tiny local test model works too; for the real weights both agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedup_cli.errors import ModelLoadError
from dedup_cli.models import ModelSpec, register_model
from dedup_cli.models.base import Preprocessing, normalise_rows, to_model_input
from dedup_cli.models.hub import check_reachable, quiet_hub

if TYPE_CHECKING:
    import numpy as np
    import torch

HUB_ID = "facebook/dinov3-vitl16-pretrain-lvd1689m"
MODEL_TYPE = "dinov3_vit"
PREPROCESSING = Preprocessing(
    size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize="squash"
)


def _brief(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line (hub errors span several lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers draws a "Loading weights" bar even for local folders; hide it there."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if was_enabled:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _load_transformers_model(spec: ModelSpec, weights: Path | None) -> Any:
    """The DINOv3 ``transformers`` model in float32 on the CPU, or ModelLoadError."""
    import torch

    try:
        from transformers import AutoModel
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ModelLoadError(
            f"{spec.name} needs transformers: pip install transformers ({exc})"
        ) from exc

    if weights is None:
        check_reachable(
            spec.name,
            HUB_ID,
            ("model.safetensors", "pytorch_model.bin"),
            f"; the model is gated: accept its licence at https://huggingface.co/{HUB_ID} "
            "and run `hf auth login` first",
        )
        try:
            with quiet_hub():
                return AutoModel.from_pretrained(HUB_ID, dtype=torch.float32)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot download {spec.name} weights from the Hugging Face hub "
                f"({HUB_ID}: {_brief(exc)}); the model is gated: accept its licence at "
                f"https://huggingface.co/{HUB_ID}, run `hf auth login` "
                f"(or `huggingface-cli login`), or pass --weights DIR with a local copy"
            ) from exc

    path = weights.expanduser()
    if not path.exists():
        raise ModelLoadError(f"{spec.name} weights not found: {path} does not exist")
    if path.is_file():
        # A weights file inside a saved model folder: take the folder.
        if (path.parent / "config.json").is_file():
            path = path.parent
        else:
            raise ModelLoadError(
                f"{spec.name} --weights must be a folder with config.json and "
                f"model.safetensors, not {path}"
            )
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"no {spec.name} model in {path}: expected config.json and model.safetensors "
            f"(a copy of {HUB_ID})"
        )
    try:
        with _no_progress_bars():
            return AutoModel.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {spec.name} weights from {path}: {_brief(exc)}") from exc


class Dinov3Model:
    """DINOv3 ``pooler_output`` embeddings."""

    def __init__(self, spec: ModelSpec, device: torch.device, weights: Path | None) -> None:
        import torch

        self.name = spec.key
        self.preprocessing = spec.preprocessing
        self.default_threshold = spec.default_threshold
        self.device = device

        model = _load_transformers_model(spec, weights)
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type != MODEL_TYPE:
            raise ModelLoadError(
                f"the {spec.name} weights are a {model_type!r} model, not {MODEL_TYPE!r}; "
                f"pass a local copy of {HUB_ID}"
            )
        # The width the model really has (1024 for ViT-L; smaller for local test models).
        self.dimension = int(model.config.hidden_size)
        model.eval()
        model.requires_grad_(False)
        self.model = model.to(device)
        if device.type == "cuda":
            self.autocast_dtype: torch.dtype | None = (
                torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            )
        else:
            self.autocast_dtype = None

    def embed_batch(self, images: torch.Tensor) -> np.ndarray:
        import torch

        x = to_model_input(images, self.preprocessing, self.device)
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            pooled = self.model(pixel_values=x).pooler_output
        return normalise_rows(pooled)


def _load(spec: ModelSpec, device: torch.device, weights: Path | None) -> Dinov3Model:
    return Dinov3Model(spec, device, weights)


SPEC = register_model(
    ModelSpec(
        name="dinov3",
        dimension=1024,
        preprocessing=PREPROCESSING,
        # Placeholder until calibrated on real duplicates.
        default_threshold=0.90,
        description=f"DINOv3 ViT-L/16 self-supervised features ({HUB_ID}; gated, hub login)",
        loader=_load,
    )
)
