"""The order keypoint checks run in: each file read once while it is in use."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from dedup_cli.confirm.cascade import _cache_order


def reads(order: list[int], lefts: list[int], rights: list[int], capacity: int) -> int:
    """Files read by a least-recently-used cache of ``capacity`` pictures."""
    cache: OrderedDict[int, None] = OrderedDict()
    count = 0
    for k in order:
        for f in (lefts[k], rights[k]):
            if f in cache:
                cache.move_to_end(f)
                continue
            count += 1
            cache[f] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return count


def clusters(seed: int) -> tuple[list[int], list[int]]:
    """60 clusters of 8 look-alikes, files numbered at random, every pair in a cluster."""
    rng = np.random.default_rng(seed)
    label = rng.permutation(480)
    lefts, rights = [], []
    for c in range(60):
        members = [int(label[8 * c + m]) for m in range(8)]
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                lefts.append(min(a, b))
                rights.append(max(a, b))
    return lefts, rights


def test_checks_are_reordered_not_lost() -> None:
    lefts, rights = clusters(0)
    checks = list(range(len(lefts)))[::-1]
    assert sorted(_cache_order(checks, lefts, rights, 0)) == sorted(checks)
    assert sorted(_cache_order(checks, lefts, rights, 1000)) == sorted(checks)


def test_each_file_is_read_once_where_sorting_by_the_left_file_reads_it_again() -> None:
    lefts, rights = clusters(1)
    checks = list(range(len(lefts)))
    by_left = sorted(checks, key=lambda k: (lefts[k], rights[k]))
    assert reads(by_left, lefts, rights, capacity=32) > 600  # 480 files, read again and again
    assert reads(_cache_order(checks, lefts, rights, 0), lefts, rights, capacity=32) == 480


def test_two_collections_are_numbered_apart() -> None:
    """In ``cross`` left file 3 and right file 3 are different files."""
    lefts, rights = [3, 3, 5], [3, 5, 3]
    order = _cache_order([0, 1, 2], lefts, rights, 10)
    assert sorted(order) == [0, 1, 2]
