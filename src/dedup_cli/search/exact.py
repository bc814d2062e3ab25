"""Pairs above a cosine threshold, in row blocks: never an N x N matrix in memory. ``find``
and ``cross`` take each row's nearest (``nearest_pairs``, ``search.nearest``); every pair in
range (``similar_pairs``) is kept for the calibration bench, which scores every threshold.

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
# float32 products against float32 re-scoring of the same rows: rounding only.
FP32_SCREEN_MARGIN = 1e-4


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
    dtype, margin = screen_dtype(device, screen_precision)
    rescore = dtype != torch.float32
    if device.type == "cpu":
        keep_freed_memory()
    block = block or block_rows(n, memory_budget(device))
    exact_rows, matrix = _screen_matrix(vectors, device, dtype)
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


def screen_dtype(device: torch.device, precision: str = "auto") -> tuple[torch.dtype, float]:
    """The dtype block products screen in, and how far below the threshold a candidate
    must be re-scored in float32 (see ``similar_pairs``)."""
    import torch

    if precision == "auto":
        if device.type in ("cuda", "mps"):
            precision = "fp16"
        else:
            precision = "bf16" if cpu_has_bf16() else "fp32"
    return {
        "fp16": (torch.float16, HALF_PRECISION_MARGIN),
        "bf16": (torch.bfloat16, BF16_MARGIN),
        "fp32": (torch.float32, 0.0),
    }[precision]


def _screen_matrix(
    vectors: np.ndarray, device: torch.device, dtype: torch.dtype
) -> tuple[np.ndarray, torch.Tensor]:
    """The rows for exact re-scoring, and the matrix in the screening dtype. A float16
    matrix (a large collection) goes to the screening dtype without a float32 copy of the
    whole; candidates are re-scored from float32 copies of their own rows."""
    import torch

    exact_rows = np.ascontiguousarray(vectors)
    if exact_rows.dtype not in (np.float16, np.float32):
        exact_rows = exact_rows.astype(np.float32)
    source = exact_rows if exact_rows.flags.writeable else exact_rows.copy()
    return exact_rows, torch.from_numpy(source).to(device, dtype=dtype)


def merge_device(device: torch.device) -> torch.device:
    """Where a bounded search merges its blocks of scores: on a CUDA GPU, where they were
    computed (a block is rows x N; copied over PCIe it costs more than its products); on the
    host for every other device (Apple's MPS shares memory with it, and its top-k took at
    most 16 per row in earlier torch releases, where a search keeps 24)."""
    import torch

    return device if device.type == "cuda" else torch.device("cpu")


def nearest_pairs(
    vectors: np.ndarray,
    threshold: float,
    neighbours: int,
    *,
    block: int | None = None,
    device: torch.device | None = None,
) -> Pairs:
    """Pairs (i < j) at cosine >= threshold where j is among the ``neighbours`` rows most
    similar to i, or i among those of j.

    The same upper-triangle blocks as ``similar_pairs``, so the same products: each block
    offers its rows their neighbours to the right, and its columns their neighbours above.
    Work and memory grow with N x neighbours, never with the number of pairs in range."""
    import torch

    from dedup_cli.malloc_tuning import keep_freed_memory
    from dedup_cli.search.nearest import Nearest

    n = vectors.shape[0]
    if n < 2:
        return Pairs.empty()
    device = device or torch.device("cpu")
    dtype, margin = screen_dtype(device)
    if device.type == "cpu":
        keep_freed_memory()
    # A block is held about four times over (scores, masks, the transposed selection): a
    # quarter of the budget each keeps 10,000 noise thumbnails under 2 GB in all.
    block = block or block_rows(n, memory_budget(device) // 4)
    exact_rows, matrix = _screen_matrix(vectors, device, dtype)
    cut = threshold - margin
    merging = merge_device(device)
    nearest = Nearest(n, neighbours, device=merging)
    every = torch.arange(n, dtype=torch.int64, device=merging)
    with torch.inference_mode():
        for start in range(0, n, block):
            stop = min(start + block, n)
            scores = (matrix[start:stop] @ matrix[start:].T).to(merging)  # screening dtype
            below = torch.ones(stop - start, stop - start, dtype=torch.bool, device=merging)
            scores[:, : stop - start].masked_fill_(below.tril(), float("-inf"))  # j <= i
            scores.masked_fill_(scores < cut, float("-inf"))
            nearest.offer(every[start:stop], scores, every[start:])
            nearest.offer(every[start:], scores.T, every[start:stop])
            del scores
    left, right = nearest.pairs(cut, threshold, lambda a, b: row_dots(exact_rows, a, b))
    left, right = np.minimum(left, right), np.maximum(left, right)
    return rescored(exact_rows, left, right, threshold)


def nearest_pairs_of_rows(
    vectors: np.ndarray,
    rows: np.ndarray,
    threshold: float,
    neighbours: int,
    *,
    block: int | None = None,
    device: torch.device | None = None,
) -> Pairs:
    """``pairs_of_rows`` bounded: each of ``rows`` against the whole matrix, keeping its
    ``neighbours`` most similar rows at or above the threshold (``find --new-only``)."""
    import torch

    from dedup_cli.search.nearest import Nearest

    rows = np.asarray(rows, dtype=np.int64)
    n = vectors.shape[0]
    if len(rows) == 0 or n < 2:
        return Pairs.empty()
    device = device or torch.device("cpu")
    queries = torch.from_numpy(np.array(vectors[rows], dtype=np.float32)).to(device)
    block = max(block or block_rows(len(rows), memory_budget(device)), 4096)
    merging = merge_device(device)
    nearest = Nearest(len(rows), neighbours, device=merging)
    positions = torch.arange(len(rows), dtype=torch.int64, device=merging)
    asking = torch.from_numpy(rows).to(merging)
    with torch.inference_mode():
        for start in range(0, n, block):
            part = np.array(vectors[start : start + block], dtype=np.float32)
            scores = (queries @ torch.from_numpy(part).to(device).T).to(merging)
            columns = torch.arange(start, start + part.shape[0], dtype=torch.int64, device=merging)
            scores.masked_fill_(asking[:, None] == columns[None, :], float("-inf"))
            scores.masked_fill_(scores < threshold - FP32_SCREEN_MARGIN, float("-inf"))
            nearest.offer(positions, scores, columns)
            del scores
    found = nearest.pairs(
        threshold - FP32_SCREEN_MARGIN, threshold, lambda a, b: row_dots(vectors, a, b), rows
    )
    left, right = undirected(*found)
    return rescored(vectors, left, right, threshold)


def nearest_cross_pairs(
    left: np.ndarray,
    right: np.ndarray,
    threshold: float,
    neighbours: int,
    *,
    block: int | None = None,
    device: torch.device | None = None,
) -> Pairs:
    """Pairs (i in ``left``, j in ``right``) at cosine >= threshold, only between the two
    collections, bounded: (i, j) when j is among the ``neighbours`` rows of ``right``
    most similar to ``left[i]``, or i among those of ``left`` most similar to ``right[j]``."""
    import torch

    from dedup_cli.search.nearest import Nearest

    if left.shape[0] == 0 or right.shape[0] == 0:
        return Pairs.empty()
    device = device or torch.device("cpu")
    a = torch.from_numpy(np.array(left, dtype=np.float32)).to(device)
    b = torch.from_numpy(np.array(right, dtype=np.float32)).to(device)
    block = block or block_rows(b.shape[0], memory_budget(device))
    merging = merge_device(device)
    of_left = Nearest(a.shape[0], neighbours, device=merging)
    of_right = Nearest(b.shape[0], neighbours, device=merging)
    left_rows = torch.arange(a.shape[0], dtype=torch.int64, device=merging)
    right_rows = torch.arange(b.shape[0], dtype=torch.int64, device=merging)
    with torch.inference_mode():
        for start in range(0, a.shape[0], block):
            scores = (a[start : start + block] @ b.T).to(merging)
            scores.masked_fill_(scores < threshold - FP32_SCREEN_MARGIN, float("-inf"))
            here = left_rows[start : start + scores.shape[0]]
            of_left.offer(here, scores, right_rows)
            of_right.offer(right_rows, scores.T, here)
            del scores
    cut = threshold - FP32_SCREEN_MARGIN
    left, right = np.asarray(left), np.asarray(right)
    i1, j1 = of_left.pairs(cut, threshold, lambda i, j: row_dots(left, i, j, right))
    j2, i2 = of_right.pairs(cut, threshold, lambda j, i: row_dots(left, i, j, right))
    return rescored_between(
        left, right, np.concatenate([i1, i2]), np.concatenate([j1, j2]), threshold
    )


def row_dots(
    rows: np.ndarray, left: np.ndarray, right: np.ndarray, other: np.ndarray | None = None
) -> np.ndarray:
    """Inner products of ``rows[left[k]]`` and ``rows[right[k]]`` (or ``other[right[k]]``)
    in float32, in slices so a float16 matrix is only widened a slice at a time."""
    other = rows if other is None else other
    out = np.empty(len(left), dtype=np.float32)
    step = 1 << 13  # 8,192 pairs: 40 MB a side at 1280 dimensions
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
