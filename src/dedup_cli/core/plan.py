"""Keep strategies and the plan: which file stays in each group, which go, and why."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedup_cli.core.files import FileInfo
from dedup_cli.core.group import Group
from dedup_cli.core.methods import EXACT


@dataclass(frozen=True)
class Removal:
    file: FileInfo
    similarity: float
    method: str  # "exact" (same bytes) or "embedding"


@dataclass(frozen=True)
class PlannedGroup:
    keep: FileInfo
    remove: tuple[Removal, ...]
    why: str = ""  # why the keep rule chose this file over the others (``KeeperRank.why``)


def acting_order(group: PlannedGroup) -> list[Removal]:
    """The order a group's removals are carried out in: byte copies first (a metadata merge
    may rewrite the keeper, and they are compared with it byte for byte)."""
    return sorted(group.remove, key=lambda r: r.method != EXACT)


@dataclass
class Plan:
    """What ``find`` proposes; nothing is removed until an action carries it out."""

    root: Path
    model: str
    threshold: float
    keep_strategy: str
    groups: list[PlannedGroup] = field(default_factory=list)
    # Content hashes of the groups a reviewer marked "not duplicates": remembered by
    # ``act.carry_out`` so that no job proposes them again (not part of the JSON plan).
    not_duplicates: list[list[str]] = field(default_factory=list)
    # Pairs where one picture is an edit of the other (an overlay, a caption) or shares its
    # frame: shown to the user wherever the plan is (listing, report, reviewers), never
    # planned. Each ``{"a", "b", "similarity", "reason"}`` (absolute paths).
    related: list[dict[str, Any]] = field(default_factory=list)
    # Every folder the plan spans (``find A B``, ``cross``); the journal lives in the first's
    # database. Empty: ``root`` alone.
    roots: list[Path] = field(default_factory=list)
    # Planned removals a policy took back (``core.sets``: a file kept with its RAW or Live
    # Photo set), each ``{"path", "reason"}``: shown, never acted on.
    held_back: list[dict[str, str]] = field(default_factory=list)
    # Files that go with a removal (``core.sets.keep_companions``: its XMP sidecar, a Live
    # Photo's movie), by the removal's absolute path; each has ``name``, ``what`` and
    # ``counterpart``. ``with_followers``: they are re-derived and carried out when acting.
    followers: dict[str, list[Any]] = field(default_factory=dict)
    with_followers: bool = False

    def hold_back(self, held: dict[Path, str]) -> None:
        """Take these planned removals back (a policy's, with its reason for each): their
        groups lose them, a group left with nothing to remove goes, and each is listed in
        ``held_back``. Never adds a removal."""
        if not held:
            return
        groups = []
        for group in self.groups:
            remove = tuple(r for r in group.remove if Path(r.file.absolute) not in held)
            if remove:
                groups.append(PlannedGroup(group.keep, remove, group.why))
        self.groups = groups
        self.held_back += [{"path": str(p), "reason": why} for p, why in sorted(held.items())]

    def shown(self, file: FileInfo) -> str:
        """How a file is named to the user: relative to the folder, or in full when the plan
        spans several (the same relative path may be in each)."""
        return str(file.absolute) if len(self.roots) > 1 else file.path

    @property
    def files_to_remove(self) -> int:
        return sum(len(g.remove) for g in self.groups)

    @property
    def bytes_to_free(self) -> int:
        return sum(r.file.size for g in self.groups for r in g.remove)

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "roots": [str(r) for r in self.roots or [self.root]],
            "model": self.model,
            "threshold": self.threshold,
            "keep_strategy": self.keep_strategy,
            "summary": {
                "groups": len(self.groups),
                "files_to_remove": self.files_to_remove,
                "bytes_to_free": self.bytes_to_free,
            },
            "held_back": self.held_back,
            "groups": [
                {
                    "keep": str(g.keep.absolute),
                    "keep_reason": g.why,
                    "remove": [str(r.file.absolute) for r in g.remove],
                    "keep_file": g.keep.as_dict(),
                    "remove_files": [
                        {
                            **r.file.as_dict(),
                            "similarity": round(r.similarity, 6),
                            "method": r.method,
                            "followers": [
                                {
                                    "path": str(Path(r.file.absolute).parent / f.name),
                                    "what": f.what,
                                }
                                for f in self.followers.get(str(Path(r.file.absolute)), [])
                            ],
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
    why: Callable[[int, Sequence[int]], str] | None = None,
) -> Plan:
    """Turn index groups into a plan over file facts, largest savings first; ``why`` says
    why each keeper won (``KeeperRank.why``)."""
    planned = [
        PlannedGroup(
            keep=files[g.keeper],
            remove=tuple(Removal(files[m], g.similarity[m], g.method[m]) for m in g.members),
            why=why(g.keeper, g.members) if why is not None else "",
        )
        for g in groups
    ]
    planned.sort(key=lambda g: (-sum(r.file.size for r in g.remove), g.keep.path))
    return Plan(root=root, model=model, threshold=threshold, keep_strategy=strategy, groups=planned)
