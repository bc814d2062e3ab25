"""The one workflow every job ends with, once it has candidate pairs.

``find``, ``cross`` and ``bench`` differ in where their pairs come from (one folder against
itself, two folders against each other, a corpus of made-up copies) and in which files may
lose (``cross --keep db1``). From the candidates on they are the same: forget the pairs a
reviewer marked "not duplicates", prove the rest from the files (or, with ``--no-verify``,
take the embedding's word), group without chaining, and plan under a keep rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dedup_cli.confirm.cascade import GEOMETRY_PER_FILE, Confirmation, confirm_pairs
from dedup_cli.core.files import FileInfo
from dedup_cli.core.group import Group, group_pairs
from dedup_cli.core.pairs import Pairs
from dedup_cli.errors import UsageError
from dedup_cli.store import Store


def validate_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1, not {threshold}")
    return threshold


@dataclass
class Proved:
    """The candidates that survived the remembered pairs, and what the proof made of them."""

    candidates: Pairs
    confirmation: Confirmation


def byte_identical(content_hashes: Sequence[str | None]) -> list[list[int]]:
    """Positions that share a content hash, set by set (each of two or more); takes the
    hash column, so a million files build no object each."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for position, digest in enumerate(content_hashes):
        if digest:
            by_hash[digest].append(position)
    return [members for members in by_hash.values() if len(members) > 1]


def drop_remembered(
    pairs: Pairs,
    left: Sequence[FileInfo],
    right: Sequence[FileInfo],
    remembered: set[tuple[str, str]],
) -> Pairs:
    """Pairs a reviewer marked "not duplicates" (by content hash) never come back."""
    if not remembered or len(pairs) == 0:
        return pairs
    keep = np.ones(len(pairs), dtype=bool)
    for k, (i, j) in enumerate(zip(pairs.left.tolist(), pairs.right.tolist())):
        a, b = left[i].content_hash, right[j].content_hash
        if a and b and (min(a, b), max(a, b)) in remembered:
            keep[k] = False
    return Pairs(pairs.left[keep], pairs.right[keep], pairs.similarity[keep])


def prove(
    candidates: Pairs,
    left: Sequence[FileInfo],
    right: Sequence[FileInfo],
    stores: tuple[Store, Store],
    *,
    verify: bool = True,
    geometric: bool = True,
    per_file: int | None = None,
) -> Proved:
    """Drop remembered pairs, then confirm each candidate from the files (``left[i]``
    against ``right[j]``; the same list for one folder), or trust it (``verify=False``)."""
    left_store, right_store = stores
    remembered = left_store.not_duplicate_pairs()
    if right_store is not left_store:
        remembered |= right_store.not_duplicate_pairs()
    candidates = drop_remembered(candidates, left, right, remembered)
    if not verify:
        return Proved(candidates, Confirmation.unverified(candidates))
    lefts, rights = set(candidates.left.tolist()), set(candidates.right.tolist())
    if right is left:  # one collection: one read of the thumbnails
        thumbs_left = thumbs_right = left_store.thumbnails({left[i].path for i in lefts | rights})
    else:
        thumbs_left = left_store.thumbnails({left[i].path for i in lefts})
        thumbs_right = right_store.thumbnails({right[j].path for j in rights})
    confirmation = confirm_pairs(
        candidates,
        left,
        right,
        thumbs_left,
        thumbs_right,
        geometric=geometric,
        per_file=GEOMETRY_PER_FILE if per_file is None else per_file,
    )
    return Proved(candidates, confirmation)


def group_proved(
    proved: Proved,
    rank: Callable[[int], Hashable],
    exact_sets: Iterable[Iterable[int]],
    right_offset: int = 0,
    may_lose: Callable[[int], bool] | None = None,
) -> list[Group]:
    """Groups without chaining over one index space (``right`` rows shifted by
    ``right_offset`` when the two sides are two lists); ``may_lose`` keeps protected files
    out of the removals."""
    found = proved.confirmation.pairs
    confirmed = Pairs(found.left, found.right + right_offset, found.similarity)
    groups = group_pairs(
        confirmed,
        rank,
        exact_sets,
        methods=proved.confirmation.methods,
        crop_of=proved.confirmation.crop_of,
    )
    if may_lose is not None:
        for group in groups:
            group.members = [m for m in group.members if may_lose(m)]
        groups = [g for g in groups if g.members]
    return groups
