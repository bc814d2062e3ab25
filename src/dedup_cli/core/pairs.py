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
