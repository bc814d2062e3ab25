"""Approximate all-pairs search for large collections on the CPU: cells propose, float32
decides.

Exact search costs N^2 products (1M x 512 is about 25 minutes on a 2-core CPU).
Near-duplicates sit far closer to each other than ordinary neighbours, so clustering the rows
into ``nlist`` cells (k-means on a sample) and comparing each row only with the members of
its ``nprobe`` nearest cells finds them while scanning a small share of the collection; that
is an inverted-file (IVF) search. It is run here as a *cell join*: for each cell, every row
that probes it is multiplied against all its members in one matrix product (bfloat16 where
the CPU has it), instead of one query at a time through an index. The products are the same
as IVF probing; done as large matrix products they run 3-4x faster than faiss's IVF range
search on this machine (docs/benchmarks.md). Every proposed pair is then re-scored in
float32 and kept only at or above the threshold, so the result is a subset of the exact
answer; its recall against exact search is measured in ``benchmarks/bench_ann.py``.

faiss is used for the k-means only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dedup_cli.core.pairs import Pairs
from dedup_cli.errors import DedupError
from dedup_cli.search.exact import (
    BF16_MARGIN,
    rescored,
    rescored_between,
    row_dots,
    undirected,
)

# nlist = 4 sqrt(N); 64 probes: 0.995 recall at 1M x 512 (docs/benchmarks.md)
CELLS_PER_SQRT_N = 4
DEFAULT_NPROBE = 64
# ``--new-only`` searches one way (new rows probe; old rows do not probe back), so each new
# row looks in at least 4x as many cells, and in as many more as a budget of row products
# allows: 1,000 new rows against 1M then scan half the collection each (seconds).
NEW_ONLY_NPROBE = 4 * DEFAULT_NPROBE
NEW_ONLY_BUDGET = 500_000_000  # new rows x scanned rows


def new_only_probes(new_rows: int, total_rows: int, nlist: int) -> int:
    """Cells each new row looks in: at least ``NEW_ONLY_NPROBE``, more while the products
    stay within ``NEW_ONLY_BUDGET``, at most all of them."""
    per_cell = max(1.0, total_rows / max(1, nlist))
    affordable = int(NEW_ONLY_BUDGET / max(1, new_rows) / per_cell)
    return max(1, min(nlist, max(NEW_ONLY_NPROBE, affordable)))


TRAINING_PER_CELL = 40  # k-means sample size per cell (faiss wants at least 39)
MAX_TRAINING = 256_000  # k-means sample cap: training cost grows with sample x cells
KMEANS_ITERATIONS = 10
ASSIGN_ROWS = 8192  # rows per block when finding nearest cells: 8192 x 4000 scores
JOIN_QUERIES = 131072  # query rows per pass of the join: bounds the probe-sorting buffers
ROW_BUCKET = 256  # query rows per product rounded up to a multiple of this
MEMBER_BUCKET = 64  # member rows likewise
FP32_MARGIN = 1e-4  # float32 matrix products against float32 re-scoring: rounding only


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise DedupError("--index ann needs faiss: pip install faiss-cpu") from exc
    return faiss


def cell_count(n: int, cells_per_sqrt_n: float = CELLS_PER_SQRT_N) -> int:
    return max(1, min(n // TRAINING_PER_CELL, int(cells_per_sqrt_n * math.sqrt(n))))


def train_cells(
    vectors: np.ndarray, *, cells_per_sqrt_n: float = CELLS_PER_SQRT_N, seed: int = 0
) -> np.ndarray:
    """k-means centroids (unit rows, float32) of a sample of the collection."""
    n, dim = vectors.shape
    nlist = cell_count(n, cells_per_sqrt_n)
    rng = np.random.default_rng(seed)
    size = min(n, TRAINING_PER_CELL * nlist, MAX_TRAINING)
    sample = np.ascontiguousarray(
        vectors[np.sort(rng.choice(n, size, replace=False))], dtype=np.float32
    )
    if nlist == 1:
        centroid: np.ndarray = sample.mean(axis=0, keepdims=True)
        return np.asarray(centroid / max(float(np.linalg.norm(centroid)), 1e-12), np.float32)
    kmeans = _faiss().Kmeans(
        dim,
        nlist,
        niter=KMEANS_ITERATIONS,
        seed=seed,
        spherical=True,
        min_points_per_centroid=1,  # a capped sample is fine: no warning
        max_points_per_centroid=1 << 30,
    )
    kmeans.train(sample)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def _compute_dtype() -> Any:
    import torch

    from dedup_cli.search.exact import cpu_has_bf16

    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def nearest_cells(centroids: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` cells nearest each row (largest inner product first), int32 N x k."""
    import torch

    k = min(k, len(centroids))
    out = np.empty((len(vectors), k), dtype=np.int32)
    dtype = _compute_dtype()
    centres = torch.from_numpy(centroids).to(dtype)
    with torch.inference_mode():
        for start in range(0, len(vectors), ASSIGN_ROWS):
            block = torch.from_numpy(np.asarray(vectors[start : start + ASSIGN_ROWS]))
            scores = block.to(dtype) @ centres.T
            out[start : start + ASSIGN_ROWS] = torch.topk(scores, k, dim=1).indices.numpy()
            del scores
    return out


def cell_join(
    vectors: np.ndarray,
    cells: np.ndarray,
    query_rows: np.ndarray,
    probes: np.ndarray,
    threshold: float,
    query_vectors: np.ndarray | None = None,
    neighbours: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(query row, member row) candidates: each query row (``query_rows[k]``, a row of
    ``query_vectors``, default ``vectors``) against every row of ``vectors`` whose cell
    (``cells``, -1: none) is one of its probed cells (``probes[k]``), one matrix product per
    cell, screened at the threshold minus the rounding margin. ``neighbours``: only each
    query's that many most similar members (``search.nearest``), itself left out."""
    import torch

    from dedup_cli.malloc_tuning import keep_freed_memory
    from dedup_cli.search.nearest import Nearest

    nearest = None if neighbours is None else Nearest(len(query_rows), neighbours)

    keep_freed_memory()
    nlist = int(probes.max()) + 1 if probes.size else 0
    nlist = max(nlist, int(cells.max()) + 1 if cells.size else 0)
    dtype = _compute_dtype()
    cut = threshold - (BF16_MARGIN if dtype == torch.bfloat16 else FP32_MARGIN)
    members = np.argsort(cells, kind="stable")
    member_starts = np.searchsorted(cells[members], np.arange(nlist + 1))
    table = _tensor(vectors)
    asked = table if query_vectors is None else _tensor(query_vectors)
    found_q: list[np.ndarray] = []
    found_m: list[np.ndarray] = []
    width = probes.shape[1] if probes.ndim == 2 else 0
    with torch.inference_mode():
        for start in range(0, len(query_rows), JOIN_QUERIES):
            block = probes[start : start + JOIN_QUERIES].ravel()
            stop = min(start + JOIN_QUERIES, len(query_rows))
            places = np.repeat(np.arange(start, stop, dtype=np.int64), width)
            order = np.argsort(block, kind="stable")
            block, places = block[order], places[order]
            owners = query_rows[places]
            bounds = np.searchsorted(block, np.arange(nlist + 1))
            for cell in range(nlist):
                q0, q1 = bounds[cell], bounds[cell + 1]
                m0, m1 = member_starts[cell], member_starts[cell + 1]
                if q0 == q1 or m0 == m1:
                    continue
                asking, held = owners[q0:q1], members[m0:m1]
                # Shapes rounded up (padding rows are dropped below): oneDNN keeps a
                # primitive per matrix shape, and thousands of shapes held 1.4 GB.
                a_rows, b_rows = _padded(asking, ROW_BUCKET), _padded(held, MEMBER_BUCKET)
                scores = (
                    asked[torch.from_numpy(a_rows)].to(dtype)
                    @ table[torch.from_numpy(b_rows)].to(dtype).T
                )
                if nearest is not None:
                    offered = scores[: len(asking), : len(held)].float()
                    members_t = torch.from_numpy(held)
                    if query_vectors is None:  # one matrix: a row does not find itself
                        itself = members_t[None, :] == torch.from_numpy(asking)[:, None]
                        offered.masked_fill_(itself, float("-inf"))
                    offered.masked_fill_(offered < cut, float("-inf"))
                    nearest.offer(torch.from_numpy(places[q0:q1]), offered, members_t)
                    continue
                a, b = torch.nonzero(scores >= cut, as_tuple=True)
                if a.numel():
                    a_np, b_np = a.numpy(), b.numpy()
                    real = (a_np < len(asking)) & (b_np < len(held))
                    found_q.append(asking[a_np[real]])
                    found_m.append(held[b_np[real]])
    if nearest is not None:
        asked_rows = vectors if query_vectors is None else query_vectors
        return nearest.pairs(
            cut,
            threshold,
            lambda q, m: row_dots(asked_rows, q, m, vectors),
            np.asarray(query_rows, dtype=np.int64),
        )
    if not found_q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(found_q).astype(np.int64), np.concatenate(found_m).astype(np.int64)


def _tensor(matrix: np.ndarray) -> Any:
    """A torch view of a matrix, never a copy. A read-only one (vectors loaded from the
    database, or shared from Ray's object store by every task of a node) is viewed too:
    the join only reads it, and a copy per task was the matrix again (2 GB at 1M x 512)."""
    import warnings

    import torch

    source = np.asarray(matrix)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(source)


def _padded(rows: np.ndarray, bucket: int) -> np.ndarray:
    """``rows`` followed by copies of its first row up to a multiple of ``bucket``."""
    extra = -len(rows) % bucket
    return rows if extra == 0 else np.concatenate([rows, np.full(extra, rows[0], rows.dtype)])


def ann_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    nprobe: int = DEFAULT_NPROBE,
    cells_per_sqrt_n: float = CELLS_PER_SQRT_N,
    seed: int = 0,
    neighbours: int | None = None,
) -> Pairs:
    """Pairs (i < j) with cosine >= threshold among unit rows, proposed by the cell join and
    re-scored exactly; may miss a few pairs that exact search finds, never adds one.
    ``neighbours``: only each row's that many most similar (``search.nearest``). Nothing is
    kept between runs (``kept_cells`` keeps the cells of one database)."""
    n = vectors.shape[0]
    if n < 2:
        return Pairs.empty()
    centroids = train_cells(vectors, cells_per_sqrt_n=cells_per_sqrt_n, seed=seed)
    probes = nearest_cells(centroids, vectors, nprobe)
    queries, found = cell_join(
        vectors,
        probes[:, 0].copy(),
        np.arange(n, dtype=np.int64),
        probes,
        threshold,
        neighbours=neighbours,
    )
    left, right = undirected(queries, found)
    return rescored(vectors, left, right, threshold)


def ann_cross_pairs(
    left: np.ndarray,
    right: np.ndarray,
    threshold: float,
    *,
    nprobe: int = DEFAULT_NPROBE,
    neighbours: int | None = None,
) -> Pairs:
    """Pairs (i in ``left``, j in ``right``) at cosine >= threshold (``cross --index ann``):
    the larger side is clustered and the smaller one probes it (a probe scans about
    nprobe / (4 sqrt(N)) of the clustered side, so this is the cheaper way round); every
    pair is re-scored exactly."""
    if len(left) == 0 or len(right) == 0:
        return Pairs.empty()
    swap = len(left) > len(right)
    held, asking = (left, right) if swap else (right, left)
    centroids = train_cells(held)
    cells = nearest_cells(centroids, held, 1)[:, 0].copy()
    probes = nearest_cells(centroids, asking, nprobe)
    rows, found = cell_join(
        held,
        cells,
        np.arange(len(asking), dtype=np.int64),
        probes,
        threshold,
        asking,
        neighbours,
    )
    if swap:
        return rescored_between(left, right, found, rows, threshold)
    return rescored_between(left, right, rows, found, threshold)
