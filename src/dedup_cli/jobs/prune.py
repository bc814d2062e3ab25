"""Database maintenance: drop rows of files that are gone, follow renames, flag changes.

A file moved or renamed inside the root keeps its embeddings: a new path whose bytes hash to
the content hash of a vanished row takes that row over, so no model runs after a rename.
Only files whose size matches a vanished row are read, so a prune of a large library reads
almost nothing.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedup_cli.config import DEFAULT_PRUNE_MAX_FORGET
from dedup_cli.errors import DedupError
from dedup_cli.media.decode import content_hash
from dedup_cli.media.scan import ScannedFile, scan
from dedup_cli.store import Store
from dedup_cli.store.database import FileState


class PruneRefusedError(DedupError):
    """The prune would forget the whole collection or too large a share of it (exit 1,
    nothing changed)."""


@dataclass
class PruneReport:
    """What ``prune-db`` found and (unless a dry run) did."""

    root: str
    database: str
    dry_run: bool
    rows_before: int = 0
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0
    # Why a real run would be refused (set on dry runs, which never refuse), or None.
    refusal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "database": self.database,
            "dry_run": self.dry_run,
            "rows_before": self.rows_before,
            "removed": self.removed,
            "renamed": [{"from": a, "to": b} for a, b in self.renamed],
            "changed": self.changed,
            "touched": self.touched,
            "unchanged": self.unchanged,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "seconds": round(self.seconds, 3),
            "refusal": self.refusal,
        }


def _hash_of(file: ScannedFile) -> str | None:
    try:
        return content_hash(file.absolute.read_bytes())
    except OSError:
        return None


def prune_database(
    root: Path,
    store: Store,
    *,
    dry_run: bool = False,
    include_hidden: bool = False,
    max_forget: float = DEFAULT_PRUNE_MAX_FORGET,
    force: bool = False,
) -> PruneReport:
    """Remove ghost rows, keep embeddings across renames, flag changed files, compact.

    Unless ``force``, refuses (``PruneRefusedError``, nothing changed) when the root has no
    image files at all while the database has rows (an unmounted drive, a renamed folder),
    or when more than ``max_forget`` of the rows would be forgotten. A dry run never
    refuses; it reports why a real run would, in ``refusal``.
    """
    started = time.perf_counter()
    root = root.resolve()
    report = PruneReport(root=str(root), database=str(store.path), dry_run=dry_run)
    report.bytes_before = _db_bytes(store.path)
    present = {
        f.path: f for f in scan(root, include_hidden=include_hidden, exclude=[store.path]).files
    }
    states = store.file_states(None)
    report.rows_before = len(states)

    ghosts = {p: s for p, s in states.items() if p not in present}
    new_files = [f for p, f in present.items() if p not in states]
    ghosts_by_size: dict[int, list[FileState]] = defaultdict(list)
    for state in ghosts.values():
        if state.content_hash:
            ghosts_by_size[state.size].append(state)

    renames: list[tuple[FileState, ScannedFile]] = []
    for file in new_files:
        candidates = ghosts_by_size.get(file.size)
        if not candidates:
            continue
        digest = _hash_of(file)
        match = next((g for g in candidates if g.content_hash == digest), None)
        if match is not None:
            candidates.remove(match)
            ghosts.pop(match.path, None)
            renames.append((match, file))
            report.renamed.append((match.path, file.path))

    touched: list[tuple[FileState, ScannedFile]] = []
    changed: list[FileState] = []
    for path, file in present.items():
        known = states.get(path)
        if known is None:
            continue
        if (known.size, known.mtime_ns) == (file.size, file.mtime_ns):
            report.unchanged += 1
        elif (
            known.content_hash is not None
            and known.size == file.size
            and _hash_of(file) == known.content_hash
        ):
            touched.append((known, file))  # same bytes, new mtime: keep the embeddings
            report.touched.append(path)
        else:
            changed.append(known)
            report.changed.append(path)
    report.removed = sorted(ghosts)
    report.renamed.sort()
    report.refusal = None if force else _refusal(root, present, report, max_forget)
    if report.refusal is not None and not dry_run:
        raise PruneRefusedError(report.refusal)

    if not dry_run:
        store.forget_and_follow(
            gone=[state.id for state in ghosts.values()],
            moved=[(state.id, file.path, file.mtime_ns) for state, file in renames + touched],
            changed=[state.id for state in changed],
        )
        store.compact()
    report.bytes_after = _db_bytes(store.path)
    report.seconds = time.perf_counter() - started
    return report


def _refusal(
    root: Path, present: dict[str, ScannedFile], report: PruneReport, max_forget: float
) -> str | None:
    """Why forgetting ``report.removed`` looks like a missing folder, not deleted files."""
    forget, rows = len(report.removed), report.rows_before
    if not forget:
        return None
    if not present:
        return (
            f"refusing to prune: {root} has no image files but the database has {rows} "
            f"rows; all {forget} would be forgotten (is the drive mounted, the folder "
            "renamed?); nothing changed; pass --force if the files really are gone"
        )
    share = forget / rows
    if share > max_forget:
        return (
            f"refusing to prune: {forget} of {rows} rows ({share:.0%}) would be forgotten, "
            f"more than --max-forget {max_forget:g}; nothing changed; check that {root} is "
            "the right, complete folder, or pass --force (or a higher --max-forget)"
        )
    return None


def _db_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(str(path) + suffix)
        except OSError:
            pass
    return total
