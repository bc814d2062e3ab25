"""Registry of embedding backends.

A ``ModelSpec`` knows a model's name, dimension, preprocessing and default threshold without
loading any weights, so ``find`` on a fully hashed folder never imports torch models.
Backends register themselves with ``register_model``; ``load_model`` builds one lazily.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dedup_cli.config import DEVICES
from dedup_cli.errors import UnknownModelError, UsageError
from dedup_cli.models.base import EmbeddingModel, Preprocessing

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelSpec:
    """What is known about a model before loading it."""

    name: str
    dimension: int
    preprocessing: Preprocessing
    default_threshold: float
    description: str
    loader: Callable[[ModelSpec, torch.device, Path | None], EmbeddingModel] = field(repr=False)
    # Extra dimension per embedding type, for models that offer several (CLIP).
    type_dimensions: dict[str, int] = field(default_factory=dict)
    embedding_type: str | None = None

    @property
    def key(self) -> str:
        """The name embeddings are stored under: ``clip-b32/hidden`` differs from ``clip-b32``."""
        if self.embedding_type and self.embedding_type != "final":
            return f"{self.name}/{self.embedding_type}"
        return self.name

    def with_embedding_type(self, embedding_type: str | None) -> ModelSpec:
        if embedding_type is None:
            return self
        if not self.type_dimensions:
            if embedding_type != "final":
                raise UsageError(f"model {self.name!r} has only the 'final' embedding type")
            return self
        if embedding_type not in self.type_dimensions:
            raise UsageError(
                f"embedding type must be one of {', '.join(self.type_dimensions)}, not {embedding_type!r}"
            )
        return ModelSpec(
            name=self.name,
            dimension=self.type_dimensions[embedding_type],
            preprocessing=self.preprocessing,
            default_threshold=self.default_threshold,
            description=self.description,
            loader=self.loader,
            type_dimensions=self.type_dimensions,
            embedding_type=embedding_type,
        )


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a backend to the registry (called by each backend module at import)."""
    _REGISTRY[spec.name] = spec
    return spec


BUILTIN_BACKENDS = ("effnet", "clip", "dinov3")


def _ensure_builtin() -> None:
    # Importing a backend module registers it; the modules themselves import torch lazily.
    import importlib

    for module in BUILTIN_BACKENDS:
        importlib.import_module(f"dedup_cli.models.{module}")


def list_models(pattern: str = "*") -> list[ModelSpec]:
    """Registered models whose name matches a glob pattern, in registry order."""
    _ensure_builtin()
    return [spec for name, spec in _REGISTRY.items() if fnmatch.fnmatch(name, pattern)]


def get_spec(name: str, embedding_type: str | None = None) -> ModelSpec:
    """Look up a model by name (``clip-b32/hidden`` is accepted as a shorthand)."""
    _ensure_builtin()
    if "/" in name and embedding_type is None:
        name, embedding_type = name.split("/", 1)
    try:
        spec = _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {known}") from None
    return spec.with_embedding_type(embedding_type)


def load_model(
    spec: ModelSpec, device: torch.device, weights: Path | None = None
) -> EmbeddingModel:
    """Build the backend on a device; ``weights`` is a local file or folder (offline use)."""
    return spec.loader(spec, device, weights)


DEVICE_CHOICES = DEVICES


def check_device_choice(choice: str) -> str:
    """Validate ``--device`` without importing torch (a rerun may never need it)."""
    if choice not in DEVICE_CHOICES:
        raise UsageError(f"--device must be auto, cpu, cuda or mps, not {choice!r}")
    return choice


def resolve_device(choice: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    import torch

    if not isinstance(choice, str):  # already resolved
        return choice
    check_device_choice(choice)
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA GPU is available")
    if choice == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("--device mps was asked for, but MPS is not available")
    return torch.device(choice)


__all__ = [
    "EmbeddingModel",
    "ModelSpec",
    "Preprocessing",
    "check_device_choice",
    "get_spec",
    "list_models",
    "load_model",
    "register_model",
    "resolve_device",
]
