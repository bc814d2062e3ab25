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
from dedup_cli.search import Pairs, rescored, rescored_between, undirected

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


def build_index(
    vectors: np.ndarray,
    ids: np.ndarray | None = None,
    *,
    cells_per_sqrt_n: float = CELLS_PER_SQRT_N,
    seed: int = 0,
) -> Any:
    """An IVF index (float16 codes, inner product) over unit rows, labelled by ``ids``
    (default: row numbers) so it can be kept and updated as files come and go."""
    faiss = _faiss()
    n, dim = vectors.shape
    nlist = max(1, min(n // TRAINING_PER_CELL, int(cells_per_sqrt_n * math.sqrt(n))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(seed)
    size = min(n, TRAINING_PER_CELL * nlist, MAX_TRAINING)
    sample = _f32(vectors[np.sort(rng.choice(n, size, replace=False))])
    index.cp.seed = seed
    index.cp.niter = KMEANS_ITERATIONS
    index.cp.min_points_per_centroid = 1  # a capped sample is fine: no warning
    index.cp.max_points_per_centroid = 1 << 30
    index.train(sample)
    del sample
    labels = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    add_rows(index, vectors, labels)
    # Kept on the index itself, so the index file knows how large it was trained for.
    index.nprobe = min(DEFAULT_NPROBE, nlist)
    return index


def add_rows(index: Any, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add rows under their ids, a block at a time (a float16 matrix is widened per block)."""
    for start in range(0, len(vectors), QUERY_ROWS):
        block = _f32(vectors[start : start + QUERY_ROWS])
        index.add_with_ids(block, np.ascontiguousarray(ids[start : start + QUERY_ROWS]))


def remove_ids(index: Any, ids: np.ndarray) -> int:
    """Drop these ids from the index (one pass over its lists); returns how many it held."""
    if len(ids) == 0:
        return 0
    faiss = _faiss()
    return int(index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))


def query_index(
    index: Any, queries: np.ndarray, threshold: float, *, nprobe: int = DEFAULT_NPROBE
) -> tuple[np.ndarray, np.ndarray]:
    """(query row, found id) for every stored row within reach of each query at
    ``threshold`` minus the float16 margin; the caller re-scores them exactly."""
    index.nprobe = min(nprobe, index.nlist)
    rows: list[np.ndarray] = []
    found_ids: list[np.ndarray] = []
    for start in range(0, len(queries), QUERY_ROWS):
        block = _f32(queries[start : start + QUERY_ROWS])
        limits, _scores, found = index.range_search(block, threshold - FP16_MARGIN)
        counts: np.ndarray = np.diff(np.asarray(limits, dtype=np.int64))
        rows.append(np.repeat(np.arange(start, start + len(counts), dtype=np.int64), counts))
        found_ids.append(np.asarray(found, dtype=np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(found_ids)


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
    n = vectors.shape[0]
    if n < 2:
        return Pairs.empty()
    index = build_index(vectors, cells_per_sqrt_n=cells_per_sqrt_n, seed=seed)
    queries, found = query_index(index, vectors, threshold, nprobe=nprobe)
    del index
    left, right = undirected(queries, found)
    return rescored(vectors, left, right, threshold)


def ann_cross_pairs(left: np.ndarray, right: np.ndarray, threshold: float) -> Pairs:
    """Pairs (i in ``left``, j in ``right``) at cosine >= threshold (``cross --index ann``):
    the larger side is indexed and the smaller queries it (a query scans about
    12 sqrt(N) stored rows, so this is the cheaper way round); every pair is re-scored."""
    if len(left) == 0 or len(right) == 0:
        return Pairs.empty()
    if len(left) > len(right):
        index = build_index(left)
        rows, found = query_index(index, right, threshold)
        del index
        return rescored_between(left, right, found, rows, threshold)
    index = build_index(right)
    rows, found = query_index(index, left, threshold)
    del index
    return rescored_between(left, right, rows, found, threshold)


def _f32(block: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy (or view) of a block of rows, as faiss wants."""
    return np.ascontiguousarray(block, dtype=np.float32)
