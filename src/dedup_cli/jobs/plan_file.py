"""A plan written by ``find --json``, read back for review (``dedup review --plan FILE``).

A plan file is a claim, like a database row: it may be old, edited, or from someone else.
Nothing in it decides a removal. Every file it names must lie inside a folder given on the
command line and is read again (size, mtime and content hash from the file, through its
pinned folder); every (keeper, copy) pair is proved again from the files, as ``find``
proves its candidates; what no longer holds is dropped and counted, never shown as a copy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.core.bursts import hold_back_other_shots
from dedup_cli.core.files import FileInfo
from dedup_cli.core.pairs import Pairs
from dedup_cli.core.plan import Plan, PlannedGroup, Removal
from dedup_cli.core.sets import keep_companions
from dedup_cli.errors import UsageError
from dedup_cli.jobs.find import Folder
from dedup_cli.jobs.workflow import prove
from dedup_cli.media.fsops import Pinned
from dedup_cli.media.provenance import capture_moment, pixel_size


@dataclass
class PlanFromFile:
    """The plan as it still holds, and what was dropped from it, with why."""

    plan: Plan
    dropped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}


def _document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--plan {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError):
        raise UsageError(f"--plan {path} is not a JSON plan written by dedup find --json") from None
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise UsageError(f"--plan {path} is not a JSON plan written by dedup find --json")
    return document


def _fresh(path: str, roots: Sequence[Path]) -> FileInfo:
    """The file as it is now, read through its pinned folder; raises ``LookupError`` (with
    the reason) when it is outside every folder or cannot be read."""
    absolute = Path(path)
    if not absolute.is_absolute():
        raise LookupError("not an absolute path")
    root = next((r for r in roots if absolute.is_relative_to(r)), None)
    if root is None:
        raise LookupError("outside the folders given")
    relative = absolute.relative_to(root).as_posix()
    try:
        with Pinned(root, relative) as pinned:
            now = pinned.snapshot()
    except OSError as exc:
        raise LookupError(f"cannot be read ({exc.strerror or exc})") from None
    width, height = pixel_size(absolute) or (None, None)
    return FileInfo(
        relative, absolute, now.size, now.mtime_ns, now.content_hash, width, height, root
    )


def plan_from_file(
    path: Path, folders: Sequence[Folder], *, geometric: bool = True
) -> PlanFromFile:
    """Read ``path`` (``find --json``) and keep of it only what the files still prove."""
    document = _document(path)
    roots = [f.root.resolve() for f in folders]
    files: list[FileInfo] = []
    index: dict[Path, int] = {}
    dropped: list[dict[str, str]] = []
    wanted: list[tuple[int, list[tuple[int, float]]]] = []

    def known(name: object) -> int | None:
        if not isinstance(name, str):
            return None
        try:
            info = _fresh(name, roots)
        except LookupError as exc:
            dropped.append({"path": name, "reason": str(exc)})
            return None
        if info.absolute not in index:
            index[info.absolute] = len(files)
            files.append(info)
        return index[info.absolute]

    for group in document["groups"]:
        if not isinstance(group, dict):
            continue
        keeper = known(group.get("keep"))
        if keeper is None:
            continue
        similarity = {
            f.get("path"): f.get("similarity")
            for f in group.get("remove_files") or []
            if isinstance(f, dict)
        }
        members = []
        for name in group.get("remove") or []:
            member = known(name)
            if member is not None and member != keeper:
                score = similarity.get(name)
                score = float(score) if isinstance(score, (int, float)) else 1.0
                members.append((member, min(max(score, 0.0), 1.0)))
        if members:
            wanted.append((keeper, members))
    pairs = [(k, m, s) for k, members in wanted for m, s in members]
    left = np.array([k for k, _, _ in pairs], dtype=np.int64)
    right = np.array([m for _, m, _ in pairs], dtype=np.int64)
    scores = np.array([s for _, _, s in pairs], dtype=np.float32)
    stores = {root: folder.store for root, folder in zip(roots, folders)}
    proved = prove(Pairs(left, right, scores), files, files, stores, geometric=geometric)
    found = proved.confirmation
    held = {
        (int(a), int(b)): (float(s), found.methods[k])
        for k, (a, b, s) in enumerate(
            zip(found.pairs.left, found.pairs.right, found.pairs.similarity)
        )
    }
    plan = Plan(
        roots[0],
        str(document.get("model", "")),
        float(document.get("threshold") or 0.0),
        f"{document.get('keep_strategy', '')} (from {path.name})",
        roots=roots,
    )
    for keeper, members in wanted:
        removals = []
        for member, _ in members:
            proof = held.get((keeper, member))
            if proof is None:
                dropped.append(
                    {
                        "path": str(files[member].absolute),
                        "reason": "not proved a copy of its keeper",
                    }
                )
                continue
            removals.append(Removal(files[member], proof[0], proof[1]))
        if removals:
            plan.groups.append(
                PlannedGroup(files[keeper], tuple(removals), "kept in the plan file")
            )
    plan.related = found.related
    # The same policies as a fresh plan: sets kept whole, other shots of a burst kept.
    keep_companions(plan, moment_of=capture_moment)
    hold_back_other_shots(plan, capture_moment)
    return PlanFromFile(plan, dropped)
