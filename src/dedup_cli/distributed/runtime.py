"""Connecting to Ray, sizing the work to the cluster, and checking that every node sees the
files: what each distributed stage needs before it starts.

Ray is an optional extra (``pip install 'dedup-cli[ray]'``) and is imported only here and in
the stages that run on it, so ``--engine local`` never loads it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dedup_cli.errors import DedupError, UsageError

NEEDS_RAY = "--engine ray needs Ray: pip install 'dedup-cli[ray]'"
SHARED_SAMPLE = 8  # files each node is asked to stat before any work is sent


class SharedStorageError(DedupError):
    """A worker node cannot see the files at the paths the driver scanned."""


def ray_module() -> Any:
    """The ``ray`` package, or one clear error naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise UsageError(NEEDS_RAY) from exc
    return ray


def connect(address: str | None = None) -> Any:
    """Ray, connected: to a running session if this process has one, else to ``address``
    (``auto``: the cluster this machine belongs to; ``HOST:PORT``; None: a new local one).
    Quiet: no dashboard, no progress bars, warnings only."""
    ray = ray_module()
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = address or "a new local cluster"
            raise UsageError(f"cannot connect to Ray at {where}: {exc}") from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # Ray Data sets its loggers up again when it starts: quiet them once connected.
    logging.getLogger("ray.data").setLevel(os.environ.get("RAY_DATA_LOG_LEVEL", "ERROR"))
    return ray


@dataclass(frozen=True)
class ClusterSize:
    """What the cluster offers the embedding actors."""

    cpus: int
    gpus: int


def cluster_size() -> ClusterSize:
    """The CPUs and GPUs of the connected cluster."""
    resources = ray_module().cluster_resources()
    return ClusterSize(cpus=int(resources.get("CPU", 0)), gpus=int(resources.get("GPU", 0)))


def _visible(paths: Sequence[str]) -> list[tuple[str, tuple[int, int] | None]]:
    """Each path's (size, modification time) as this process sees it (None: not there)."""
    seen: list[tuple[str, tuple[int, int] | None]] = []
    for path in paths:
        try:
            found = os.stat(path)
            seen.append((path, (found.st_size, found.st_mtime_ns)))
        except OSError:
            seen.append((path, None))
    return seen


def _seen_here(paths: Sequence[str]) -> list[tuple[str, tuple[int, int] | None]]:
    """What the driver sees: the answer every node must give."""
    return _visible(paths)


def check_shared_storage(paths: Sequence[Path | str]) -> None:
    """Every live node sees a sample of the files (absolute paths) at the same path with the
    size and time this process sees; else one error that says workers need shared storage.
    The sample is the first and last few files, so a share mounted only in part is caught
    too."""
    if not paths:
        return
    ray = ray_module()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    sample = [str(p) for p in [*paths[: SHARED_SAMPLE // 2], *paths[-(SHARED_SAMPLE // 2) :]]]
    expected = dict(_seen_here(sample))
    probe = ray.remote(num_cpus=0)(_visible)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    answers = ray.get(
        [
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(list(expected))
            for n in nodes
        ]
    )
    for node, answer in zip(nodes, answers):
        for path, facts in answer:
            if facts != expected[path]:
                seen = "does not see" if facts is None else "sees another file (size or time) at"
                raise SharedStorageError(
                    f"Ray node {node.get('NodeManagerAddress', node['NodeID'])} {seen} "
                    f"{path}: --engine ray needs the files at the same path on every node "
                    "(shared storage such as NFS or SMB, mounted at the same place)"
                )
