"""Which pairs ``find`` confirms: every pair of the collection above the threshold, or only
those that touch files added since the last ``find`` (``--new-only``), by exact search or
through the kept approximate index.

Exact search is chunked matrix products (``search``); the approximate one is the IVF index
kept beside the database (``persistent_index``), queried and re-scored exactly (``ann``).
``auto`` uses exact search on a GPU and below ``ANN_CUTOVER`` files, measured on a 2-core
CPU (docs/benchmarks.md). GPU faiss is not used: its indexes have no range search
(facebookresearch/faiss#565), and on a GPU exact half-precision products over 1M rows are
seconds anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dedup_cli.config import INDEXES
from dedup_cli.core.pairs import Pairs
from dedup_cli.errors import UsageError
from dedup_cli.models import resolve_device
from dedup_cli.search.exact import (
    nearest_pairs,
    nearest_pairs_of_rows,
    pairs_of_rows,
    rescored,
    similar_pairs,
    undirected,
)
from dedup_cli.search.nearest import NEIGHBOURS, SMALL_SEARCH, nearest_pairs_small
from dedup_cli.store import Store

# ``auto`` switches to the approximate search where it is clearly faster than exact search
# and at least 0.99 in recall, measured on a 2-core CPU (bench_ann.py, 512 dims,
# docs/benchmarks.md): 100k: exact 11.5 s, ann 9.5 s (999 of 1,000 pairs: not worth a pair);
# 200k: exact 42.7 s, ann 18.0 s at 0.9975; 1M: ann about 2.5 minutes at 0.995 (exact about
# 25 minutes). On a GPU exact search is always used.
ANN_CUTOVER: int | None = 200_000


def searched_key(model_id: int, scope: str | None = None) -> str:
    """The counter holding the write sequence number the last ``find`` searched up to.
    ``scope``: the set of folders it searched together (``find A B``: old files of A were
    compared with old files of B only once a find of both ran), None for the folder alone."""
    return f"searched:{model_id}" if scope is None else f"searched:{model_id}:{scope}"


def choose_index(index: str, n: int, device: Any) -> str:
    """``exact`` or ``ann`` for ``--index`` (``auto`` decides by size and device)."""
    if index not in INDEXES:
        raise UsageError(f"--index must be one of {', '.join(INDEXES)}, not {index!r}")
    if index != "auto":
        return index
    large = ANN_CUTOVER is not None and n >= ANN_CUTOVER
    if large and isinstance(device, str):
        device = resolve_device(device)  # whether a GPU is there decides: torch starts
    on_gpu = getattr(device, "type", "cpu") in ("cuda", "mps")
    return "ann" if large and not on_gpu else "exact"


@dataclass
class Candidates:
    """The pairs to confirm and how they were found."""

    pairs: Pairs
    method: str  # exact | ann
    new_rows: np.ndarray | None  # --new-only: the rows searched against everything
    index: dict[str, Any] | None = None  # the kept ANN index: built, updated, saved...


def find_candidates(
    store: Store | None,
    model_id: int | None,
    model_key: str,
    ids: np.ndarray,
    seqs: np.ndarray,
    matrix: np.ndarray,
    threshold: float,
    *,
    index: str = "auto",
    device: Any = None,
    new_only: bool = False,
    new_rows: np.ndarray | None = None,
    searched: np.ndarray | None = None,
    neighbours: int | None = NEIGHBOURS,
    engine: str = "local",
    ray_address: str | None = None,
) -> Candidates:
    """Candidate pairs (row indices) of a collection whose row k is file ``ids[k]`` with
    vector ``matrix[k]`` written at ``seqs[k]``. ``new_only``: only pairs with a row
    written after the last ``mark_searched``. ``searched``: the rows to search among (one
    per set of byte-identical files, which stands for the others; default every row).
    ``neighbours``: each row's that many most similar rows (``search.nearest``); None: every
    pair at or above the threshold. ``store`` None: the rows come from several databases
    (``find A B``), so no approximate index is kept, and ``new_rows`` (rows written since
    each database's last ``find``) replaces ``new_only``. ``engine`` ``ray``: the
    approximate search runs as tasks on a Ray cluster (``distributed.search``), its cells
    made for this run rather than kept; exact search stays here."""
    method = choose_index(index, len(matrix), device)
    if new_only and new_rows is None and model_id is not None:
        if store is None:
            raise ValueError("new_only needs the store, or the new rows")
        new_rows = rows_written_since(store, model_id, seqs)
    rows = np.arange(len(matrix), dtype=np.int64) if searched is None else np.asarray(searched)
    queries: np.ndarray | None = None
    if new_rows is not None:
        queries = new_rows if searched is None else np.flatnonzero(np.isin(rows, new_rows))
    report: dict[str, Any] | None = None
    if model_id is None or len(rows) < 2 or (queries is not None and len(queries) == 0):
        pairs = Pairs.empty()
    elif method == "ann" and (store is None or engine == "ray"):
        pairs = _unkept_ann_candidates(
            matrix, rows, new_rows, threshold, neighbours, engine, ray_address
        )
    elif method == "ann" and store is not None:
        pairs, report = _ann_candidates(
            store, model_id, model_key, ids, seqs, matrix, threshold, new_rows, rows, neighbours
        )
    else:
        among = matrix if searched is None else matrix[rows]
        pairs = _exact_candidates(among, queries, threshold, neighbours, device)
        if searched is not None:
            pairs = in_rows(pairs, rows)
    return Candidates(pairs, method, new_rows, report)


def _exact_candidates(
    among: np.ndarray,
    queries: np.ndarray | None,
    threshold: float,
    neighbours: int | None,
    device: Any,
) -> Pairs:
    """Exact search: each row's nearest (or, ``neighbours`` None, every pair in range),
    among all rows or from ``queries`` to all. A small collection's default search runs
    without torch; every other one on ``device`` (a name is resolved here, starting
    torch)."""
    if queries is None and neighbours is not None and _small_on_cpu(len(among), device):
        return nearest_pairs_small(among, threshold, neighbours)
    if device is None or isinstance(device, str):
        device = resolve_device(device or "cpu")
    if queries is None and neighbours is None:
        return similar_pairs(among, threshold, device=device)
    if queries is None:
        return nearest_pairs(among, threshold, neighbours, device=device)  # type: ignore[arg-type]
    if neighbours is None:
        return pairs_of_rows(among, queries, threshold, device=device)
    return nearest_pairs_of_rows(among, queries, threshold, neighbours, device=device)


def _small_on_cpu(n: int, device: Any) -> bool:
    """Whether the default search runs torch-free (``nearest_pairs_small``): a collection
    of at most ``SMALL_SEARCH`` rows, on the CPU or where the device is still to be chosen
    (a GPU gains nothing at that size)."""
    if n > SMALL_SEARCH:
        return False
    kind = device if isinstance(device, str) or device is None else device.type
    return kind in (None, "auto", "cpu")


def in_rows(pairs: Pairs, rows: np.ndarray) -> Pairs:
    """Pairs found among ``matrix[rows]``, numbered as rows of the whole matrix."""
    left, right = rows[pairs.left], rows[pairs.right]
    small, large = np.minimum(left, right), np.maximum(left, right)
    order = np.lexsort((large, small))
    return Pairs(small[order], large[order], pairs.similarity[order])


def rows_written_since(
    store: Store, model_id: int, seqs: np.ndarray, scope: str | None = None
) -> np.ndarray:
    """The rows whose vectors were written after the last ``find`` (``--new-only``). Never
    searched (or a database from before sequence numbers, whose vectors are all numbered
    0): everything is new."""
    since = store.counter(searched_key(model_id, scope))
    return np.arange(len(seqs)) if since is None else np.flatnonzero(seqs > since)


def mark_searched(store: Store, model_id: int, seqs: np.ndarray, scope: str | None = None) -> None:
    """Record that every vector up to these has been compared, once ``find`` has planned:
    the next ``--new-only`` (of the same ``scope``) starts after them."""
    if len(seqs):
        key = searched_key(model_id, scope)
        store.set_counter(key, max(int(seqs.max()), store.counter(key) or 0))


def _unkept_ann_candidates(
    matrix: np.ndarray,
    rows: np.ndarray,
    new_rows: np.ndarray | None,
    threshold: float,
    neighbours: int | None,
    engine: str = "local",
    ray_address: str | None = None,
) -> Pairs:
    """The approximate search with cells built for this run: over rows of several
    databases, whose cells no one database can keep, or on a Ray cluster. With new rows,
    the pairs that touch one (the join itself runs over every row, as a first
    ``--new-only`` does)."""
    if engine == "ray":
        from dedup_cli.distributed.search import ray_ann_pairs

        found = ray_ann_pairs(matrix[rows], threshold, neighbours=neighbours, address=ray_address)
    else:
        from dedup_cli.search.cells import ann_pairs

        found = ann_pairs(matrix[rows], threshold, neighbours=neighbours)
    pairs = in_rows(found, rows)
    if new_rows is None:
        return pairs
    touch = np.isin(pairs.left, new_rows) | np.isin(pairs.right, new_rows)
    return Pairs(pairs.left[touch], pairs.right[touch], pairs.similarity[touch])


def _ann_candidates(
    store: Store,
    model_id: int,
    model_key: str,
    ids: np.ndarray,
    seqs: np.ndarray,
    matrix: np.ndarray,
    threshold: float,
    new_rows: np.ndarray | None,
    searched: np.ndarray,
    neighbours: int | None,
) -> tuple[Pairs, dict[str, Any]]:
    from dedup_cli.search.cells import cell_join
    from dedup_cli.search.kept_cells import current_cells

    kept = current_cells(store, model_id, model_key, ids, seqs, matrix, new_rows)
    cells, query_rows, probes = kept.cells, kept.query_rows, kept.probes
    if len(searched) < len(ids):  # the rows standing for others are left out of the join
        standing = np.zeros(len(ids), dtype=bool)
        standing[searched] = True
        cells = np.where(standing, cells, -1).astype(cells.dtype)
        asking = standing[query_rows]
        query_rows, probes = query_rows[asking], probes[asking]
    query_rows, found_rows = cell_join(
        matrix, cells, query_rows, probes, threshold, neighbours=neighbours
    )
    report = kept.report.as_dict()
    del kept
    left, right = undirected(query_rows, found_rows)
    return rescored(matrix, left, right, threshold), report
