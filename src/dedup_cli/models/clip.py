"""``clip-b32`` and ``clip-l14``: OpenAI CLIP image towers through ``open_clip``.

Each offers three embedding types:

* ``final``: ``encode_image``, the projected image embedding CLIP was trained with;
* ``hidden``: the tokens leaving the last transformer block of the visual tower (before
  ``ln_post`` and the projection), mean-pooled over all tokens (class token included);
* ``both``: the unit-normalised ``final`` and ``hidden`` vectors side by side.

Weights: without ``--weights`` the OpenAI checkpoint is fetched by open_clip into its usual
cache (the Hugging Face hub cache) on first use. ``--weights FILE`` loads a checkpoint for the
built-in architecture (``.safetensors``, ``.bin``, ``.pth``, ``.pt``, including OpenAI's own
TorchScript ``ViT-B-32.pt`` / ``ViT-L-14.pt``). ``--weights DIR`` takes a checkpoint from the
folder; if the folder also holds an ``open_clip_config.json`` with a ``model_cfg`` (the layout
of open_clip's hub repositories), that architecture is used instead of the built-in one, which
is how the tests load tiny random models.

The dimensions reported by a loaded model are read from the model itself, so they equal the
registry's ``type_dimensions`` for the real weights and differ only for such local test models.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
import zipfile
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

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESSING = Preprocessing(size=224, mean=OPENAI_MEAN, std=OPENAI_STD, resize="squash")

# name -> (open_clip architecture, pretrained tag)
ARCHITECTURES = {
    "clip-b32": ("ViT-B-32", "openai"),
    "clip-l14": ("ViT-L-14", "openai"),
}

CONFIG_NAME = "open_clip_config.json"
# Preferred checkpoint names in a weights folder, then any file with these suffixes.
PREFERRED_CHECKPOINTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


# The files open_clip fetches for a pretrained tag on the hub (either is enough).
HUB_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")


def _brief(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line (hub errors span several lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _DropOpenClipRecords(logging.Filter):
    """open_clip reports through the root logger; its messages are folded into ModelLoadError."""

    _marker = os.sep + "open_clip" + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        return self._marker not in record.pathname


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence open_clip while loading.

    Its module-level ``logging.info(...)`` calls would otherwise run ``logging.basicConfig()``
    and leave a handler on the root logger for the rest of the process; a temporary
    NullHandler prevents that and a filter drops its records for the duration.
    """
    root = logging.getLogger()
    guard = logging.NullHandler()
    drop = _DropOpenClipRecords()
    root.addHandler(guard)
    root.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(guard)


def _find_checkpoint(folder: Path) -> Path | None:
    for name in PREFERRED_CHECKPOINTS:
        if (folder / name).is_file():
            return folder / name
    for suffix in CHECKPOINT_SUFFIXES:
        found = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())
        if found:
            return found[0]
    return None


def _folder_has_model_cfg(folder: Path) -> bool:
    config = folder / CONFIG_NAME
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {config}: {_brief(exc)}") from exc
    return isinstance(data, dict) and "model_cfg" in data


def _is_torchscript(path: Path) -> bool:
    """OpenAI's original CLIP files are TorchScript archives (they hold a ``constants.pkl``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _create_open_clip(spec: ModelSpec, weights: Path | None) -> Any:
    """The full open_clip model on the CPU, weights loaded, or ModelLoadError."""
    try:
        import open_clip
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ModelLoadError(
            f"{spec.name} needs open_clip: pip install open_clip_torch ({exc})"
        ) from exc

    arch, tag = ARCHITECTURES[spec.name]
    with _quiet_open_clip():
        if weights is None:
            repo = str(open_clip.get_pretrained_cfg(arch, tag).get("hf_hub", "")).strip("/")
            if repo:
                check_reachable(spec.name, repo, HUB_FILES)
            try:
                # OpenAI's weights were trained with QuickGELU, which the plain 'ViT-B-32' /
                # 'ViT-L-14' configs of open_clip 3.x do not use: force it, or the features are off.
                with quiet_hub():
                    return open_clip.create_model(arch, pretrained=tag, force_quick_gelu=True)
            except Exception as exc:
                raise ModelLoadError(
                    f"cannot download {spec.name} weights (open_clip {arch!r}, pretrained {tag!r}: "
                    f"{_brief(exc)}); run once with network access "
                    f"or pass --weights PATH to a local copy"
                ) from exc

        path = weights.expanduser()
        if not path.exists():
            raise ModelLoadError(f"{spec.name} weights not found: {path} does not exist")
        if path.is_dir():
            checkpoint = _find_checkpoint(path)
            if checkpoint is None:
                raise ModelLoadError(
                    f"no {spec.name} weights in {path}: expected open_clip_model.safetensors, "
                    f"open_clip_pytorch_model.bin or a .safetensors/.bin/.pth/.pt file"
                )
            local_cfg = _folder_has_model_cfg(path)
        else:
            checkpoint, local_cfg = path, False
        try:
            if local_cfg:
                # Architecture from the folder's open_clip_config.json (open_clip's hub layout).
                model = open_clip.create_model(f"local-dir:{path}", load_weights=False)
            else:
                model = open_clip.create_model(arch, force_quick_gelu=True)
            open_clip.load_checkpoint(
                model,
                str(checkpoint),
                strict=True,
                # TorchScript archives cannot be read with weights_only=True; torch dispatches them
                # to torch.jit.load, which does not unpickle arbitrary objects.
                weights_only=not _is_torchscript(checkpoint),
            )
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load {spec.name} weights from {checkpoint}: {_brief(exc)}"
            ) from exc
    return model


class ClipModel:
    """An open_clip ViT image tower; see the module docstring for the embedding types."""

    def __init__(self, spec: ModelSpec, device: torch.device, weights: Path | None) -> None:
        import torch

        self.name = spec.key
        self.embedding_type = spec.embedding_type or "final"
        self.default_threshold = spec.default_threshold
        self.device = device

        model = _create_open_clip(spec, weights)
        from open_clip.transformer import VisionTransformer

        visual = getattr(model, "visual", None)
        if not isinstance(visual, VisionTransformer):
            raise ModelLoadError(
                f"the {spec.name} weights are not an open_clip ViT (got {type(visual).__name__}); "
                f"pass weights for the {ARCHITECTURES[spec.name][0]} architecture"
            )
        image_size = visual.image_size
        if not isinstance(image_size, (tuple, list)):
            image_size = (image_size, image_size)
        expected = spec.preprocessing.size
        if tuple(int(v) for v in image_size) != (expected, expected):
            raise ModelLoadError(
                f"the {spec.name} weights expect {image_size[0]}x{image_size[1]} images, "
                f"but {spec.name} uses {expected}x{expected}; "
                f"pass weights for the {ARCHITECTURES[spec.name][0]} architecture"
            )
        self.preprocessing = spec.preprocessing

        # Real dimensions from the loaded tower (they differ from the registry for test models).
        self.final_dimension = int(visual.output_dim)
        self.hidden_dimension = int(visual.transformer.width)
        self.dimension = {
            "final": self.final_dimension,
            "hidden": self.hidden_dimension,
            "both": self.final_dimension + self.hidden_dimension,
        }[self.embedding_type]

        # Keep only the image tower; the text tower is dropped with ``model``.
        visual.eval()
        visual.requires_grad_(False)
        self.visual = visual.to(device)
        self._tokens: torch.Tensor | None = None
        if self.embedding_type in ("hidden", "both"):
            # open_clip 3.x's Transformer.forward returns batch-first (N, L, D) tokens whatever
            # its internal layout; embed_batch still checks the batch axis.
            self.visual.transformer.register_forward_hook(self._keep_tokens)
        self.autocast_dtype = torch.float16 if device.type == "cuda" else None

    def _keep_tokens(self, module: Any, inputs: Any, output: Any) -> None:
        self._tokens = output[0] if isinstance(output, tuple) else output

    def _pooled_tokens(self, batch: int) -> torch.Tensor:
        tokens = self._tokens
        self._tokens = None
        if tokens is None:  # pragma: no cover - the hook always fires
            raise RuntimeError("CLIP hidden tokens were not captured")
        if tokens.shape[0] != batch and tokens.shape[1] == batch:  # sequence-first (L, N, D)
            tokens = tokens.transpose(0, 1)
        return tokens.float().mean(dim=1)

    def embed_batch(self, images: torch.Tensor) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = to_model_input(images, self.preprocessing, self.device)
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            final = self.visual(x).float()
            if self.embedding_type == "final":
                return normalise_rows(final)
            hidden = self._pooled_tokens(x.shape[0])
            if self.embedding_type == "hidden":
                return normalise_rows(hidden)
            both = torch.cat([F.normalize(final, dim=1), F.normalize(hidden, dim=1)], dim=1)
            return normalise_rows(both)


def _load(spec: ModelSpec, device: torch.device, weights: Path | None) -> ClipModel:
    return ClipModel(spec, device, weights)


SPEC_B32 = register_model(
    ModelSpec(
        name="clip-b32",
        dimension=512,
        preprocessing=PREPROCESSING,
        default_threshold=0.96,
        description="OpenAI CLIP ViT-B/32 image embeddings (open_clip; downloads weights once)",
        loader=_load,
        type_dimensions={"final": 512, "hidden": 768, "both": 1280},
    )
)

SPEC_L14 = register_model(
    ModelSpec(
        name="clip-l14",
        dimension=768,
        preprocessing=PREPROCESSING,
        default_threshold=0.96,
        description="OpenAI CLIP ViT-L/14 image embeddings (open_clip; downloads weights once)",
        loader=_load,
        type_dimensions={"final": 768, "hidden": 1024, "both": 1792},
    )
)
