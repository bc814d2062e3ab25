"""All pairs above a cosine threshold, in row blocks: never an N x N matrix in memory.

Each block of rows is multiplied only against itself and the rows after it (the upper
triangle). On the CPU the products are float32; on a GPU they run in half precision and the
candidates near the threshold are re-scored in float32, so the result is exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Budget for one block of similarities (rows x N floats) when free memory cannot be read.
DEFAULT_BLOCK_BYTES = 256 * 1024 * 1024
MIN_BLOCK_BYTES = 32 * 1024 * 1024
MAX_BLOCK_BYTES = 1024 * 1024 * 1024
# Half-precision products can be off by ~1e-3; candidates this far below are re-scored.
HALF_PRECISION_MARGIN = 0.01


@dataclass(frozen=True)
class Pairs:
    """Index pairs i < j with their cosine similarity, sorted by (i, j)."""

    left: np.ndarray  # int64
    right: np.ndarray  # int64
    similarity: np.ndarray  # float32

    def __len__(self) -> int:
        return int(self.left.shape[0])

    @staticmethod
    def empty() -> Pairs:
        return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))


def memory_budget(device: torch.device | None = None) -> int:
    """Bytes one block of similarities may take: a quarter of free GPU memory, or an eighth
    of the available RAM (a block also needs a mask and index arrays of similar size)."""
    import os

    if device is not None and device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 4)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_BLOCK_BYTES
    return int(min(MAX_BLOCK_BYTES, max(MIN_BLOCK_BYTES, available // 8)))


def block_rows(n: int, block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows per block so one block of similarities stays within the memory budget."""
    return int(max(16, min(8192, block_bytes // max(1, 4 * n))))


def similar_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    block: int | None = None,
    device: torch.device | None = None,
) -> Pairs:
    """Every pair (i < j) with cosine similarity >= threshold among unit-norm rows."""
    import torch

    n = vectors.shape[0]
    if n < 2:
        return Pairs.empty()
    device = device or torch.device("cpu")
    half = device.type in ("cuda", "mps")
    block = block or block_rows(n, memory_budget(device))
    full = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    matrix = full.to(device, dtype=torch.float16 if half else torch.float32)
    cut = threshold - HALF_PRECISION_MARGIN if half else threshold
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    sims: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, n, block):
            stop = min(start + block, n)
            scores = matrix[start:stop] @ matrix[start:].T  # (rows, n - start)
            # Keep the strict upper triangle of the diagonal block and everything right of it.
            rows, cols = torch.nonzero(scores >= cut, as_tuple=True)
            keep = cols > rows
            rows, cols = rows[keep], cols[keep]
            if rows.numel() == 0:
                continue
            i = rows.cpu().numpy().astype(np.int64) + start
            j = cols.cpu().numpy().astype(np.int64) + start
            if half:
                exact = np.einsum("ij,ij->i", vectors[i], vectors[j]).astype(np.float32)
            else:
                exact = scores[rows, cols].cpu().numpy().astype(np.float32)
            ok = exact >= threshold
            lefts.append(i[ok])
            rights.append(j[ok])
            sims.append(exact[ok])
    if not lefts:
        return Pairs.empty()
    left, right, sim = np.concatenate(lefts), np.concatenate(rights), np.concatenate(sims)
    order = np.lexsort((right, left))
    return Pairs(left[order], right[order], sim[order])


def brute_force_pairs(vectors: np.ndarray, threshold: float) -> Pairs:
    """Reference implementation for tests: the full matrix, small inputs only."""
    scores = vectors.astype(np.float64) @ vectors.astype(np.float64).T
    i, j = np.nonzero(np.triu(scores >= threshold, k=1))
    return Pairs(i.astype(np.int64), j.astype(np.int64), scores[i, j].astype(np.float32))
