"""Keep strategies and the plan: which file stays in each group, which go, and why."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedup_cli.errors import UsageError
from dedup_cli.group import Group

KEEP_STRATEGIES = ("largest", "resolution", "oldest", "newest", "shortest-path")


@dataclass(frozen=True, slots=True)
class FileInfo:
    """The facts of a file at planning time; an action checks them again before acting."""

    path: str  # relative to the root
    absolute: Path
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    # The folder this file belongs to when a plan spans two (``cross``); None: the plan's root.
    root: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.absolute),
            "relative_path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "content_hash": self.content_hash,
            "width": self.width,
            "height": self.height,
        }


def keeper_rank(strategy: str, files: Sequence[FileInfo]) -> Callable[[int], Hashable]:
    """A sort key per strategy; the smallest is kept. Ties fall back to the path, so the
    choice is the same on every run."""

    def pixels(f: FileInfo) -> int:
        return (f.width or 0) * (f.height or 0)

    keys: dict[str, Callable[[FileInfo], tuple[Any, ...]]] = {
        "largest": lambda f: (-f.size, -pixels(f), f.path),
        "resolution": lambda f: (-pixels(f), -f.size, f.path),
        "oldest": lambda f: (f.mtime_ns, f.path),
        "newest": lambda f: (-f.mtime_ns, f.path),
        "shortest-path": lambda f: (len(f.path), f.path),
    }
    if strategy not in keys:
        raise UsageError(f"--keep must be one of {', '.join(KEEP_STRATEGIES)}, not {strategy!r}")
    key = keys[strategy]
    return lambda i: key(files[i])


@dataclass(frozen=True)
class Removal:
    file: FileInfo
    similarity: float
    method: str  # "exact" (same bytes) or "embedding"


@dataclass(frozen=True)
class PlannedGroup:
    keep: FileInfo
    remove: tuple[Removal, ...]


@dataclass
class Plan:
    """What ``find`` proposes; nothing is removed until an action carries it out."""

    root: Path
    model: str
    threshold: float
    keep_strategy: str
    groups: list[PlannedGroup] = field(default_factory=list)

    @property
    def files_to_remove(self) -> int:
        return sum(len(g.remove) for g in self.groups)

    @property
    def bytes_to_free(self) -> int:
        return sum(r.file.size for g in self.groups for r in g.remove)

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "model": self.model,
            "threshold": self.threshold,
            "keep_strategy": self.keep_strategy,
            "summary": {
                "groups": len(self.groups),
                "files_to_remove": self.files_to_remove,
                "bytes_to_free": self.bytes_to_free,
            },
            "groups": [
                {
                    "keep": str(g.keep.absolute),
                    "remove": [str(r.file.absolute) for r in g.remove],
                    "keep_file": g.keep.as_dict(),
                    "remove_files": [
                        {
                            **r.file.as_dict(),
                            "similarity": round(r.similarity, 6),
                            "method": r.method,
                        }
                        for r in g.remove
                    ],
                }
                for g in self.groups
            ],
        }


def make_plan(
    root: Path,
    model: str,
    threshold: float,
    strategy: str,
    files: Sequence[FileInfo],
    groups: Sequence[Group],
) -> Plan:
    """Turn index groups into a plan over file facts, largest savings first."""
    planned = [
        PlannedGroup(
            keep=files[g.keeper],
            remove=tuple(Removal(files[m], g.similarity[m], g.method[m]) for m in g.members),
        )
        for g in groups
    ]
    planned.sort(key=lambda g: (-sum(r.file.size for r in g.remove), g.keep.path))
    return Plan(root=root, model=model, threshold=threshold, keep_strategy=strategy, groups=planned)
