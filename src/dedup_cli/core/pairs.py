"""Candidate and confirmed pairs: the currency every stage of the pipeline trades in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    @staticmethod
    def union(parts: list[Pairs]) -> Pairs:
        """Disjoint sets of pairs as one, sorted by (i, j) again."""
        left = np.concatenate([p.left for p in parts]).astype(np.int64)
        right = np.concatenate([p.right for p in parts]).astype(np.int64)
        similarity = np.concatenate([p.similarity for p in parts]).astype(np.float32)
        order = np.lexsort((right, left))
        return Pairs(left[order], right[order], similarity[order])


def kth_similarity(pairs: Pairs, n: int, k: int, side: str = "both") -> np.ndarray:
    """Each row's ``k``-th best similarity among ``pairs``, -inf where it has fewer.
    ``side``: the rows of ``left``, of ``right`` (two collections), or of both (one)."""
    result = np.full(n, -np.inf, dtype=np.float32)
    if len(pairs) == 0:
        return result
    sides = {"left": [pairs.left], "right": [pairs.right], "both": [pairs.left, pairs.right]}
    rows = np.concatenate(sides[side])
    similarity = np.concatenate([pairs.similarity] * len(sides[side]))
    order = np.lexsort((-similarity, rows))
    rows, similarity = rows[order], similarity[order]
    starts = np.searchsorted(rows, np.arange(n))
    counts = np.bincount(rows, minlength=n)
    full = np.flatnonzero(counts >= k)
    result[full] = similarity[starts[full] + k - 1]
    return result
