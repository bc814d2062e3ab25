"""Approximate all-pairs search for large collections on the CPU: faiss proposes, float32
decides.

Exact search costs N^2 products (1M x 512 is hours on a 2-core CPU). Near-duplicates sit far
closer to each other than ordinary neighbours, so an inverted-file index with a few probes
finds them while scanning a small share of the collection: the rows are clustered into
``nlist`` cells (k-means on a sample), stored in float16 per cell, and every row looks for
partners in its ``nprobe`` nearest cells (faiss ``range_search`` at the threshold minus the
float16 margin). Every proposed pair is then re-scored exactly in float32 and kept only at or
above the threshold, so the result is a subset of the exact answer; its recall against exact
search is measured in ``benchmarks/bench_ann.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dedup_cli.errors import DedupError
from dedup_cli.search import Pairs, row_dots

FP16_MARGIN = 0.01  # float16 storage moves inner products of unit rows by < 0.002
CELLS_PER_SQRT_N = 4  # nlist = 4 sqrt(N): with 48 probes, 0.990 recall at 1M x 512 in 307 s
DEFAULT_NPROBE = 48
TRAINING_PER_CELL = 40  # k-means sample size per cell (faiss wants at least 39)
MAX_TRAINING = 256_000  # k-means sample cap: training cost grows with sample x cells
KMEANS_ITERATIONS = 10
QUERY_ROWS = 16384  # rows per range-search call: bounds the result buffers


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise DedupError("--index ann needs faiss: pip install faiss-cpu") from exc
    return faiss


def ann_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    nprobe: int = DEFAULT_NPROBE,
    cells_per_sqrt_n: float = CELLS_PER_SQRT_N,
    seed: int = 0,
) -> Pairs:
    """Pairs (i < j) with cosine >= threshold among unit rows, proposed by an IVF index and
    re-scored exactly; may miss a few pairs that exact search finds, never adds one."""
    n, dim = vectors.shape
    if n < 2:
        return Pairs.empty()
    faiss = _faiss()
    rows = vectors  # float32, or float16 for a large collection: widened a block at a time
    nlist = max(1, min(n // TRAINING_PER_CELL, int(cells_per_sqrt_n * math.sqrt(n))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(seed)
    size = min(n, TRAINING_PER_CELL * nlist, MAX_TRAINING)
    sample = _f32(rows[np.sort(rng.choice(n, size, replace=False))])
    index.cp.seed = seed
    index.cp.niter = KMEANS_ITERATIONS
    index.cp.min_points_per_centroid = 1  # a capped sample is fine: no warning
    index.cp.max_points_per_centroid = 1 << 30
    index.train(sample)
    del sample
    for start in range(0, n, QUERY_ROWS):
        index.add(_f32(rows[start : start + QUERY_ROWS]))
    index.nprobe = min(nprobe, nlist)
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    for start in range(0, n, QUERY_ROWS):
        block = _f32(rows[start : start + QUERY_ROWS])
        limits, _scores, found = index.range_search(block, threshold - FP16_MARGIN)
        left, right = ranges_to_pairs(start, limits, found)
        lefts.append(left)
        rights.append(right)
    del index
    first = np.concatenate(lefts) if lefts else np.zeros(0, np.int64)
    second = np.concatenate(rights) if rights else np.zeros(0, np.int64)
    return _rescored(rows, first, second, threshold)


def ranges_to_pairs(
    start: int, limits: np.ndarray, found: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """faiss range-search results for rows ``start, start + 1, ...`` as (small, large) index
    pairs. A pair counts when either row finds the other (each probes only its own nearest
    cells), so both directions are kept; duplicates are removed when re-scoring."""
    counts: np.ndarray = np.diff(np.asarray(limits, dtype=np.int64))
    queries = np.repeat(np.arange(start, start + len(counts), dtype=np.int64), counts)
    found = found.astype(np.int64)
    other = found != queries
    return np.minimum(queries, found)[other], np.maximum(queries, found)[other]


def _rescored(rows: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: float) -> Pairs:
    """Exact float32 similarity of each proposed pair; those at or above the threshold,
    unique and sorted by (i, j)."""
    if len(left) == 0:
        return Pairs.empty()
    order = np.lexsort((right, left))
    left, right = left[order], right[order]
    unique = np.ones(len(left), dtype=bool)
    unique[1:] = (left[1:] != left[:-1]) | (right[1:] != right[:-1])
    left, right = left[unique], right[unique]
    similarity = row_dots(rows, left, right)
    keep = similarity >= threshold
    return Pairs(left[keep], right[keep], similarity[keep])


def _f32(block: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy (or view) of a block of rows, as faiss wants."""
    return np.ascontiguousarray(block, dtype=np.float32)
