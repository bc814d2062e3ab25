"""The one small interface every embedding backend implements."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded image becomes model input; stored with the model so embeddings made
    with different preprocessing are never compared."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # "squash": the whole frame resized to size x size, so nothing at the edges is ignored.
    resize: str = "squash"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@runtime_checkable
class EmbeddingModel(Protocol):
    """A backend: a stable name, a dimension, its preprocessing, and a batch embedder.

    ``embed_batch`` takes uint8 images shaped (N, 3, size, size) and returns float32
    vectors shaped (N, dimension), each with unit L2 norm.
    """

    name: str
    dimension: int
    preprocessing: Preprocessing
    default_threshold: float

    def embed_batch(self, images: torch.Tensor) -> np.ndarray: ...


def normalise_rows(vectors: torch.Tensor) -> np.ndarray:
    """Unit-normalise rows in float32 and hand them back as a contiguous numpy array."""
    import torch

    vectors = torch.nn.functional.normalize(vectors.float(), dim=1)
    return vectors.detach().cpu().numpy().astype("float32", copy=False)


def to_model_input(
    images: torch.Tensor,
    prep: Preprocessing,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """uint8 NCHW -> normalised float NCHW on the device (normalising on the device keeps
    worker-to-main transfers 4x smaller than shipping floats)."""
    import torch

    x = images.to(device, non_blocking=True).float().div_(255.0)
    mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.to(dtype) if dtype is not None else x
