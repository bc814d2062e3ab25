"""The cell join (``search.cells``) on a Ray cluster: cells trained on a sample by the driver,
rows assigned to their nearest cells by parallel tasks, and the join run as one task per
group of cells; every proposed pair is re-scored exactly, as locally.

The vectors go to the object store once; tasks on one node share that copy (zero-copy numpy).
Each group of cells is chosen to hold about the same work (rows probing it x rows in it), so
no task is the long tail. With ``neighbours``, each task keeps every row's ``k`` best in its
cells; the driver keeps each row's ``k`` best of those by exact similarity: the union of the
groups' best holds the best of all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dedup_cli.core.pairs import Pairs
from dedup_cli.distributed.runtime import cluster_size, connect
from dedup_cli.search.cells import (
    ASSIGN_ROWS,
    CELLS_PER_SQRT_N,
    DEFAULT_NPROBE,
    cell_join,
    nearest_cells,
    train_cells,
)
from dedup_cli.search.exact import rescored, row_dots, undirected

ASSIGN_BLOCKS_PER_CPU = 2  # assignment tasks per CPU
GROUPS_PER_CPU = 4  # cell groups per CPU: small enough to balance, large enough to amortise


def _assign(vectors: np.ndarray, centroids: np.ndarray, start: int, stop: int, k: int) -> Any:
    return nearest_cells(centroids, vectors[start:stop], k)


def work_groups(probe_cells: np.ndarray, cells: np.ndarray, nlist: int, groups: int) -> np.ndarray:
    """Each cell's group (0..groups-1), consecutive cells together, so that every group
    holds about the same join work: for each cell, the rows probing it times its members."""
    asking = np.bincount(probe_cells, minlength=nlist).astype(np.float64)
    held = np.bincount(cells, minlength=nlist).astype(np.float64)
    work = asking * np.maximum(held, 1.0)
    total = float(work.sum())
    if total <= 0:
        return np.zeros(nlist, dtype=np.int64)
    before = np.cumsum(work) - work  # the work of the cells ahead of each
    return np.minimum(before * groups // total, groups - 1).astype(np.int64)


def ray_ann_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    nprobe: int = DEFAULT_NPROBE,
    cells_per_sqrt_n: float = CELLS_PER_SQRT_N,
    seed: int = 0,
    neighbours: int | None = None,
    address: str | None = None,
) -> Pairs:
    """The pairs ``search.cells.ann_pairs`` finds (same cells, same probes), computed on the
    cluster."""
    n = vectors.shape[0]
    if n < 2:
        return Pairs.empty()
    ray = connect(address)
    cpus = max(1, cluster_size().cpus)
    centroids = train_cells(vectors, cells_per_sqrt_n=cells_per_sqrt_n, seed=seed)
    nlist = len(centroids)
    table, centres = ray.put(vectors), ray.put(centroids)
    assign = ray.remote(num_cpus=1)(_assign)
    step = max(ASSIGN_ROWS, -(-n // (ASSIGN_BLOCKS_PER_CPU * cpus)))
    probes = np.concatenate(
        ray.get(
            [
                assign.remote(table, centres, start, min(start + step, n), nprobe)
                for start in range(0, n, step)
            ]
        )
    )
    cells = probes[:, 0].copy()
    width = probes.shape[1]
    flat = probes.ravel()
    group_of = work_groups(flat, cells, nlist, GROUPS_PER_CPU * cpus)
    entry_group = group_of[flat]
    order = np.argsort(entry_group, kind="stable")  # by group, then by row: rows stay sorted
    bounds = np.searchsorted(entry_group[order], np.arange(group_of.max() + 2))
    owners_all = np.repeat(np.arange(n, dtype=np.int64), width)[order]
    cells_all = flat[order]
    member_cells = ray.put(cells)
    join = ray.remote(num_cpus=1)(cell_join)
    futures = []
    for g in range(len(bounds) - 1):
        lo, hi = bounds[g], bounds[g + 1]
        if lo == hi:
            continue
        owners, probed = _probe_table(owners_all[lo:hi], cells_all[lo:hi], nlist)
        futures.append(
            join.remote(table, member_cells, owners, probed, threshold, neighbours=neighbours)
        )
    found = ray.get(futures)
    queries = np.concatenate([q for q, _ in found]) if found else np.zeros(0, np.int64)
    members = np.concatenate([m for _, m in found]) if found else np.zeros(0, np.int64)
    if neighbours is not None:
        queries, members = _best_of_groups(vectors, queries, members, neighbours)
    left, right = undirected(queries, members)
    return rescored(vectors, left, right, threshold)


def _probe_table(
    owners: np.ndarray, cells: np.ndarray, nlist: int
) -> tuple[np.ndarray, np.ndarray]:
    """(row, probed cell) entries of one group (sorted by row) as the rows and their probe
    table that ``cell_join`` takes; a row with fewer probes here is padded with ``nlist``,
    a cell with no members, which the join passes over."""
    rows, starts, counts = np.unique(owners, return_index=True, return_counts=True)
    table = np.full((len(rows), int(counts.max())), nlist, dtype=np.int64)
    column = np.arange(len(owners)) - np.repeat(starts, counts)
    table[np.repeat(np.arange(len(rows)), counts), column] = cells
    return rows, table


def _best_of_groups(
    vectors: np.ndarray, queries: np.ndarray, members: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each query row's ``k`` most similar members (exact float32) among those the groups
    returned."""
    if len(queries) == 0:
        return queries, members
    similarity = row_dots(vectors, queries, members)
    order = np.lexsort((-similarity, queries))
    queries, members = queries[order], members[order]
    first = np.searchsorted(queries, queries)
    keep = np.arange(len(queries)) - first < k
    return queries[keep], members[keep]
