"""Bounded neighbourhoods: each row keeps only its ``k`` most similar rows.

Proposing every pair above the threshold costs work with how alike the photos look, not with
how many there are: 10,000 noise thumbnails are 50 million pairs at 0.75, 3,000 copies of a
photo 4.5 million. A copy is nearly always among the few rows most similar to its original,
so a pair is proposed when either row has the other among its ``k`` nearest (at or above the
threshold). Candidates are then at most ``k`` per row, at any density, and always a subset of
the exact answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from dedup_cli.core.pairs import Pairs

if TYPE_CHECKING:
    import torch

# Candidates per file. The calibration corpus has photos with 25 copies each; 16 keeps every
# planted copy there (docs/benchmarks.md), and bounds 10,000 noise thumbnails to 160,000 pairs.
NEIGHBOURS = 16


# Up to this many rows, the default search (each row's ``k`` nearest among all) runs as
# faiss's exact k-NN on the CPU (``nearest_pairs_small``), so a ``find`` on a hashed folder
# never imports torch: at 50,000 rows of 1,280 dimensions it is seconds, about what starting
# torch costs.
SMALL_SEARCH = 50_000


# Neighbours kept beyond ``k`` while screening in reduced precision (bfloat16 is off by up to
# 0.008): the final ``k`` are chosen among them by exact float32 similarity.
SCREEN_SLACK = 8


class Nearest:
    """The ``k`` best (similarity, row) seen so far for each of ``n`` rows, merged block by
    block of a search, in ``n x (k + slack)`` arrays: never one object per pair. The arrays
    live on the search's ``device``, so a GPU search merges each block where it computed it
    and only the final table crosses to the host (a block of scores is rows x N)."""

    def __init__(
        self, n: int, k: int, slack: int = SCREEN_SLACK, device: torch.device | None = None
    ) -> None:
        import torch

        self.k = k
        self.width = k + slack
        self.similarity = torch.full(
            (n, self.width), float("-inf"), dtype=torch.float32, device=device
        )
        self.index = torch.full((n, self.width), -1, dtype=torch.int64, device=device)

    def offer(self, rows: torch.Tensor, scores: torch.Tensor, columns: torch.Tensor) -> None:
        """Merge ``scores[r, c]`` (similarity of row ``rows[r]`` to row ``columns[c]``; -inf
        where not a candidate) into the best of each row. ``rows`` must not repeat."""
        import torch

        if scores.numel() == 0:
            return
        take = min(self.width, scores.shape[1])
        values, positions = torch.topk(scores, take, dim=1)
        found = columns[positions]
        merged_values = torch.cat([self.similarity[rows], values.float()], dim=1)
        merged_index = torch.cat([self.index[rows], found], dim=1)
        best, order = torch.topk(merged_values, self.width, dim=1)
        self.similarity[rows] = best
        self.index[rows] = torch.gather(merged_index, 1, order)

    def pairs(
        self,
        cut: float,
        threshold: float,
        exact: Callable[[np.ndarray, np.ndarray], np.ndarray],
        rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row, neighbour): each row's ``k`` most similar by ``exact(rows, neighbours)``
        (float32 similarity) at or above ``threshold``, chosen among those the screen kept at
        or above ``cut``. ``rows`` maps the positions of this table to row numbers."""
        import torch

        similarity, index = self.similarity.cpu(), self.index.cpu()
        screened = (similarity >= cut) & (index >= 0)
        where, slot = np.nonzero(screened.numpy())
        owners = where.astype(np.int64) if rows is None else rows[where]
        neighbours = index.numpy()[where, slot]
        table = torch.full(similarity.shape, float("-inf"), dtype=torch.float32)
        if len(where):
            table[torch.from_numpy(where), torch.from_numpy(slot)] = torch.from_numpy(
                np.asarray(exact(owners, neighbours), dtype=np.float32)
            )
        table.masked_fill_(table < threshold, float("-inf"))
        best, order = torch.topk(table, min(self.k, self.width), dim=1)
        where, slot = np.nonzero(np.isfinite(best.numpy()))
        chosen = torch.gather(index, 1, order).numpy()[where, slot]
        owners = where.astype(np.int64) if rows is None else rows[where]
        return owners, chosen


def nearest_pairs_small(vectors: np.ndarray, threshold: float, neighbours: int) -> Pairs:
    """The pairs ``search.exact.nearest_pairs`` returns, by faiss's exact inner-product
    k-NN in float32 on the CPU, without torch: each row's ``neighbours`` most similar other
    rows at or above ``threshold``, as (i < j) pairs re-scored exactly. Meant for
    ``SMALL_SEARCH`` rows or fewer (it holds an n x (k + 1) table)."""
    import faiss

    from dedup_cli.search.exact import rescored

    n = len(vectors)
    if n < 2:
        return Pairs.empty()
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    take = min(n, neighbours + 1)  # the row itself comes back among its nearest
    similarity, index = faiss.knn(rows, rows, take, metric=faiss.METRIC_INNER_PRODUCT)
    owners = np.repeat(np.arange(n, dtype=np.int64)[:, None], take, axis=1)
    others = (index != owners) & (index >= 0)
    rank = np.cumsum(others, axis=1)  # a row tied with its own copies may come back later
    keep = others & (rank <= neighbours) & (similarity >= threshold)
    left, right = owners[keep], index[keep].astype(np.int64)
    return rescored(rows, np.minimum(left, right), np.maximum(left, right), threshold)


def nearest_cross_pairs_small(
    left: np.ndarray, right: np.ndarray, threshold: float, neighbours: int
) -> Pairs:
    """The pairs ``search.exact.nearest_cross_pairs`` returns, by faiss's exact k-NN both
    ways in float32 on the CPU, without torch: (i in ``left``, j in ``right``) when j is
    among the ``neighbours`` rows of ``right`` most similar to ``left[i]``, or i among those
    of ``left`` most similar to ``right[j]``, at or above ``threshold``, re-scored exactly.
    Meant for ``SMALL_SEARCH`` rows or fewer a side."""
    import faiss

    from dedup_cli.search.exact import rescored_between

    if len(left) == 0 or len(right) == 0:
        return Pairs.empty()
    a = np.ascontiguousarray(left, dtype=np.float32)
    b = np.ascontiguousarray(right, dtype=np.float32)

    def nearest(queries: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        take = min(len(among), neighbours)
        similarity, index = faiss.knn(queries, among, take, metric=faiss.METRIC_INNER_PRODUCT)
        owners = np.repeat(np.arange(len(queries), dtype=np.int64)[:, None], take, axis=1)
        keep = (index >= 0) & (similarity >= threshold)
        return owners[keep], index[keep].astype(np.int64)

    i1, j1 = nearest(a, b)
    j2, i2 = nearest(b, a)
    return rescored_between(
        left, right, np.concatenate([i1, i2]), np.concatenate([j1, j2]), threshold
    )
