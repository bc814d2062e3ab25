"""The proof's file-reading checks as Ray tasks: each task reads its chunk's files through a
picture cache of its own and returns the matches, in order. The driver keeps the cascade
(which pair is checked, in what order, under which budget), so the plan is the one a local
run makes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from dedup_cli.confirm.cascade import CHUNK, Check, CheckRunner, run_check
from dedup_cli.confirm.geometry import GeometricMatch, PictureCache
from dedup_cli.distributed.runtime import check_shared_storage, cluster_size, connect

TASKS_PER_CPU = 2  # chunks in flight per CPU of the cluster: enough to keep every core busy


def _checked_chunk(checks: list[Check]) -> list[GeometricMatch | None]:
    cache = PictureCache(capacity=2 * CHUNK)
    return [run_check(check, cache) for check in checks]


def ray_checks(address: str | None = None) -> CheckRunner:
    """A ``confirm.cascade`` runner that sends chunks of ``CHUNK`` checks (sorted by file
    by the cascade, so a chunk reads each file once) to the cluster, a bounded number at a
    time, and gives back the results in order."""
    ray = connect(address)
    remote: Any = ray.remote(num_cpus=1)(_checked_chunk)
    window = max(1, TASKS_PER_CPU * cluster_size().cpus)

    def run(checks: list[Check]) -> Iterator[GeometricMatch | None]:
        if not checks:
            return
        check_shared_storage(sorted({c.a for c in checks} | {c.b for c in checks}))
        pending: deque[Any] = deque()
        for start in range(0, len(checks), CHUNK):
            pending.append(remote.remote(checks[start : start + CHUNK]))
            if len(pending) >= window:
                yield from ray.get(pending.popleft())
        while pending:
            yield from ray.get(pending.popleft())

    return run
