"""All pairs above a cosine threshold, in row blocks: never an N x N matrix in memory.

Each block of rows is multiplied only against itself and the rows after it (the upper
triangle). Products run in half precision on a GPU and in bfloat16 on CPUs that support it; candidates
near the threshold are then re-scored in float32, so the result is exact either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dedup_cli.core.pairs import Pairs

if TYPE_CHECKING:
    import torch

# Budget for one block of similarities (rows x N floats) when free memory cannot be read.
DEFAULT_BLOCK_BYTES = 256 * 1024 * 1024
MIN_BLOCK_BYTES = 32 * 1024 * 1024
# Larger blocks are no faster on the CPU and only raise the peak (docs/benchmarks.md).
MAX_BLOCK_BYTES = 256 * 1024 * 1024
# Half-precision products can be off by ~1e-3; candidates this far below are re-scored.
HALF_PRECISION_MARGIN = 0.01
# bfloat16 keeps 8 bits of mantissa: products of unit rows are off by < 0.008 (measured
# < 0.003); candidates this far below the threshold are re-scored in float32.
BF16_MARGIN = 0.02


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


def cpu_has_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def similar_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    block: int | None = None,
    device: torch.device | None = None,
    screen_precision: str = "auto",
) -> Pairs:
    """Every pair (i < j) with cosine similarity >= threshold among unit-norm rows.

    ``screen_precision`` picks the dtype of the block products: ``auto`` uses float16 on a
    GPU, bfloat16 on CPUs with native bf16 (2.5x faster here) and float32 elsewhere. Reduced
    precision only screens: candidates within a margin of the threshold are re-scored in
    float32, so the pairs and similarities returned are the exact ones.
    """
    import torch

    from dedup_cli.malloc_tuning import keep_freed_memory

    n = vectors.shape[0]
    if n < 2:
        return Pairs.empty()
    device = device or torch.device("cpu")
    if screen_precision == "auto":
        if device.type in ("cuda", "mps"):
            screen_precision = "fp16"
        else:
            screen_precision = "bf16" if cpu_has_bf16() else "fp32"
    dtype, margin = {
        "fp16": (torch.float16, HALF_PRECISION_MARGIN),
        "bf16": (torch.bfloat16, BF16_MARGIN),
        "fp32": (torch.float32, 0.0),
    }[screen_precision]
    rescore = dtype != torch.float32
    if device.type == "cpu":
        keep_freed_memory()
    block = block or block_rows(n, memory_budget(device))
    # A float16 matrix (a large collection) goes to the screening dtype without a float32
    # copy of the whole; candidates are re-scored from float32 copies of their own rows.
    exact_rows = np.ascontiguousarray(vectors)
    if exact_rows.dtype not in (np.float16, np.float32):
        exact_rows = exact_rows.astype(np.float32)
    source = exact_rows if exact_rows.flags.writeable else exact_rows.copy()
    matrix = torch.from_numpy(source).to(device, dtype=dtype)
    cut = threshold - margin
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    sims: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, n, block):
            stop = min(start + block, n)
            scores = matrix[start:stop] @ matrix[start:].T  # (rows, n - start)
            mask = scores >= cut
            rows, cols = torch.nonzero(mask, as_tuple=True)
            del mask
            # Keep the strict upper triangle of the diagonal block and everything right of it.
            keep = cols > rows
            rows, cols = rows[keep], cols[keep]
            if rows.numel() == 0:
                del scores
                continue
            i = rows.cpu().numpy().astype(np.int64) + start
            j = cols.cpu().numpy().astype(np.int64) + start
            if rescore:
                exact = row_dots(exact_rows, i, j)
            else:
                exact = scores[rows, cols].cpu().numpy().astype(np.float32)
            del scores
            ok = exact >= threshold
            lefts.append(i[ok])
            rights.append(j[ok])
            sims.append(exact[ok])
    if not lefts:
        return Pairs.empty()
    left, right, sim = np.concatenate(lefts), np.concatenate(rights), np.concatenate(sims)
    order = np.lexsort((right, left))
    return Pairs(left[order], right[order], sim[order])


def row_dots(
    rows: np.ndarray, left: np.ndarray, right: np.ndarray, other: np.ndarray | None = None
) -> np.ndarray:
    """Inner products of ``rows[left[k]]`` and ``rows[right[k]]`` (or ``other[right[k]]``)
    in float32, in slices so a float16 matrix is only widened a slice at a time."""
    other = rows if other is None else other
    out = np.empty(len(left), dtype=np.float32)
    step = 1 << 16
    for s in range(0, len(left), step):
        a = rows[left[s : s + step]].astype(np.float32, copy=False)
        b = other[right[s : s + step]].astype(np.float32, copy=False)
        out[s : s + step] = np.einsum("ij,ij->i", a, b)
    return out


def undirected(queries: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query row, found row) results as (small, large) pairs, self-matches dropped. A pair
    counts when either row finds the other (each probes only its own nearest cells), so
    both directions are kept; duplicates are removed when re-scoring."""
    other = found != queries
    return np.minimum(queries, found)[other], np.maximum(queries, found)[other]


def rescored(rows: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: float) -> Pairs:
    """Exact float32 similarity of each proposed pair of rows; those at or above the
    threshold, unique and sorted by (i, j)."""
    return rescored_between(rows, rows, left, right, threshold)


def rescored_between(
    left: np.ndarray, right: np.ndarray, i: np.ndarray, j: np.ndarray, threshold: float
) -> Pairs:
    """Exact float32 cosine of (left[i], right[j]) pairs; unique, at or above the
    threshold, sorted by (i, j)."""
    if len(i) == 0:
        return Pairs.empty()
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    unique = np.ones(len(i), dtype=bool)
    unique[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    i, j = i[unique], j[unique]
    similarity = row_dots(left, i, j, right)
    keep = similarity >= threshold
    return Pairs(i[keep], j[keep], similarity[keep])


def cross_pairs(
    left: np.ndarray,
    right: np.ndarray,
    threshold: float,
    *,
    block: int | None = None,
    device: torch.device | None = None,
) -> Pairs:
    """Pairs (i in ``left``, j in ``right``) with cosine >= threshold: only between the two
    collections, never within one. Exact float32 products, in blocks of ``left`` rows."""
    import torch

    from dedup_cli.malloc_tuning import keep_freed_memory

    if left.shape[0] == 0 or right.shape[0] == 0:
        return Pairs.empty()
    device = device or torch.device("cpu")
    if device.type == "cpu":
        keep_freed_memory()
    a = torch.from_numpy(np.array(left, dtype=np.float32)).to(device)
    b = torch.from_numpy(np.array(right, dtype=np.float32)).to(device)
    block = block or block_rows(b.shape[0], memory_budget(device))
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    sims: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, a.shape[0], block):
            scores = a[start : start + block] @ b.T
            rows, cols = torch.nonzero(scores >= threshold, as_tuple=True)
            if rows.numel():
                lefts.append(rows.cpu().numpy().astype(np.int64) + start)
                rights.append(cols.cpu().numpy().astype(np.int64))
                sims.append(scores[rows, cols].cpu().numpy().astype(np.float32))
            del scores
    if not lefts:
        return Pairs.empty()
    left_i, right_i, sim = np.concatenate(lefts), np.concatenate(rights), np.concatenate(sims)
    order = np.lexsort((right_i, left_i))
    return Pairs(left_i[order], right_i[order], sim[order])


def pairs_of_rows(
    vectors: np.ndarray,
    rows: np.ndarray,
    threshold: float,
    *,
    block: int | None = None,
    device: torch.device | None = None,
) -> Pairs:
    """Pairs (i < j) at cosine >= threshold with i or j among ``rows``: those rows against
    the whole matrix (``find --new-only``), exact float32 products, in blocks of the matrix
    so a float16 collection is only widened a block at a time."""
    import torch

    rows = np.asarray(rows, dtype=np.int64)
    n = vectors.shape[0]
    if len(rows) == 0 or n < 2:
        return Pairs.empty()
    device = device or torch.device("cpu")
    queries = torch.from_numpy(np.array(vectors[rows], dtype=np.float32)).to(device)
    block = block or block_rows(len(rows), memory_budget(device))
    block = max(block, 4096)
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, n, block):
            part = np.array(vectors[start : start + block], dtype=np.float32)
            scores = queries @ torch.from_numpy(part).to(device).T
            q, col = torch.nonzero(scores >= threshold, as_tuple=True)
            if q.numel():
                lefts.append(rows[q.cpu().numpy()])
                rights.append(col.cpu().numpy().astype(np.int64) + start)
            del scores
    if not lefts:
        return Pairs.empty()
    left, right = undirected(np.concatenate(lefts), np.concatenate(rights))
    return rescored(vectors, left, right, threshold)
