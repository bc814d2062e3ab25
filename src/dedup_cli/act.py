"""Carry out a plan safely: trash, move (quarantine) or delete; journal everything; undo moves.

Before touching a file, it is checked again: still inside the root (symlinks resolved), not a
symlink, the same size, mtime and content hash as planned, and its keeper still there and
unchanged. A file that fails a check is skipped with the reason. Each action is written to the
journal as ``pending`` before the filesystem changes and marked ``done`` or ``failed`` after,
so an interrupted run leaves an honest record.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedup_cli.errors import NothingToUndoError, UsageError
from dedup_cli.imageio import content_hash
from dedup_cli.plan import FileInfo, Plan
from dedup_cli.store import Store

ACTIONS = ("trash", "move", "delete")
MANIFEST_FOLDER = ".dedup-runs"


@dataclass
class ActionReport:
    """The outcome of carrying out a plan."""

    run_id: str
    action: str
    manifest: str
    done: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C: stopped between two files, the rest untouched

    @property
    def bytes_freed(self) -> int:
        return sum(int(d["size"]) for d in self.done)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "action": self.action,
            "manifest": self.manifest,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes_freed": self.bytes_freed,
            "interrupted": self.interrupted,
        }


@dataclass
class UndoReport:
    run_id: str
    restored: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C: stopped between two files; undo again for the rest

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "restored": self.restored,
            "skipped": self.skipped,
            "interrupted": self.interrupted,
        }


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def is_inside(path: Path, root: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies inside ``root`` (symlinks resolved)."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    real_root = root.resolve()
    return resolved != real_root and resolved.is_relative_to(real_root)


def check_before_action(file: FileInfo, keeper: FileInfo, root: Path) -> str | None:
    """Why ``file`` must not be touched now, or None when every check passes."""
    for candidate, role in ((file, "file"), (keeper, "keeper")):
        if os.path.islink(candidate.absolute):
            return f"{role} is a symlink"
        if not is_inside(candidate.absolute, candidate.root or root):
            return f"{role} is missing or outside the root"
    try:
        info = file.absolute.stat()
        keeper_info = keeper.absolute.stat()
    except OSError as exc:
        return f"cannot stat ({exc.strerror or exc})"
    if (keeper_info.st_size, keeper_info.st_mtime_ns) != (keeper.size, keeper.mtime_ns):
        return "keeper changed since planning"
    if (info.st_dev, info.st_ino) == (keeper_info.st_dev, keeper_info.st_ino):
        return "same file as the keeper (hard link)"
    if (info.st_size, info.st_mtime_ns) != (file.size, file.mtime_ns):
        return "file changed since planning"
    if file.content_hash is not None:
        try:
            current = content_hash(file.absolute.read_bytes())
        except OSError as exc:
            return f"cannot read ({exc.strerror or exc})"
        if current != file.content_hash:
            return "file content changed since planning"
    return None


def execute_plan(
    plan: Plan, store: Store, action: str, *, move_to: Path | None = None, run_id: str | None = None
) -> ActionReport:
    """Apply ``action`` to every planned removal; keepers are never touched."""
    if action not in ACTIONS:
        raise UsageError(f"--action must be one of {', '.join(ACTIONS)}, not {action!r}")
    root = plan.root.resolve()
    if action == "move":
        if move_to is None:
            raise UsageError("--action move needs --to DIR")
        move_to = move_to.expanduser().resolve()
        roots = {root} | {
            f.root.resolve()
            for g in plan.groups
            for f in (g.keep, *(r.file for r in g.remove))
            if f.root
        }
        if any(move_to == r or move_to.is_relative_to(r) for r in roots):
            raise UsageError(
                f"--to {move_to} is inside a scanned folder; choose a folder outside it"
            )
    run_id = run_id or new_run_id()
    manifest = store.path.parent / MANIFEST_FOLDER / f"{run_id}.json"
    report = ActionReport(run_id=run_id, action=action, manifest=str(manifest))
    store.start_run(run_id, str(root), action, plan.model, plan.threshold, str(manifest))
    try:
        with _DeferredInterrupt() as interrupt:
            for group in plan.groups:
                for removal in group.remove:
                    if interrupt.requested:
                        report.interrupted = True
                        return report
                    _act_on_one(removal.file, group.keep, root, action, move_to, store, report)
            report.interrupted = interrupt.requested
    finally:
        _write_manifest(manifest, plan, report)
    return report


class _DeferredInterrupt:
    """Ctrl-C (SIGINT) during an action only asks to stop: the file being handled is
    finished and journaled first, so no action is ever left half done (a move across file
    systems is a copy and a delete). Only possible in the main thread; elsewhere, and on a
    second Ctrl-C, the interrupt is immediate."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


def _act_on_one(
    file: FileInfo,
    keeper: FileInfo,
    root: Path,
    action: str,
    move_to: Path | None,
    store: Store,
    report: ActionReport,
) -> None:
    entry: dict[str, Any] = {
        "path": str(file.absolute),
        "keeper": str(keeper.absolute),
        "action": action,
        "destination": None,
        "size": file.size,
        "mtime_ns": file.mtime_ns,
        "content_hash": file.content_hash,
    }
    reason = check_before_action(file, keeper, root)
    if reason is not None:
        store.journal(report.run_id, {**entry, "status": "skipped", "reason": reason})
        report.skipped.append({**entry, "reason": reason})
        return
    if action == "move":
        assert move_to is not None
        entry["destination"] = str(_free_destination(move_to / file.path))
    action_id = store.journal(report.run_id, {**entry, "status": "pending", "reason": None})
    try:
        if action == "trash":
            from send2trash import send2trash

            send2trash(str(file.absolute))
        elif action == "move":
            destination = Path(entry["destination"])
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(file.absolute), str(destination))
        else:
            file.absolute.unlink()
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, the run goes on
        store.set_action_status(action_id, "failed", str(exc))
        report.failed.append({**entry, "reason": str(exc)})
        return
    store.set_action_status(action_id, "done")
    report.done.append(entry)


def _free_destination(path: Path) -> Path:
    """``path`` or ``name (2).ext`` … so a quarantined file never overwrites another."""
    if not path.exists():
        return path
    for n in range(2, 100_000):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
    raise UsageError(f"cannot find a free name for {path}")


def _write_manifest(manifest: Path, plan: Plan, report: ActionReport) -> None:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    document = {"plan": plan.as_dict(), "result": report.as_dict()}
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2), encoding="utf-8")
    os.replace(tmp, manifest)


def undo_run(store: Store, run_id: str | None = None) -> UndoReport:
    """Put the files of a ``move`` run back where they were, byte for byte."""
    run_id = run_id or store.last_run_id()
    if run_id is None:
        raise NothingToUndoError(f"no run to undo in {store.path}")
    run = store.run(run_id)
    if run is None:
        raise NothingToUndoError(f"no run {run_id!r} in {store.path}")
    if run["undone_at"] is not None:
        raise NothingToUndoError(f"run {run_id} was already undone")
    report = UndoReport(run_id=run_id)
    with _DeferredInterrupt() as interrupt:
        for action in store.run_actions(run_id):
            if interrupt.requested:
                report.interrupted = True
                return report  # files restored so far are marked; undo again for the rest
            _undo_one(action, store, report)
        if interrupt.requested:
            report.interrupted = True
            return report
    store.mark_run_undone(run_id)
    return report


def _undo_one(action: dict[str, Any], store: Store, report: UndoReport) -> None:
    """Move one quarantined file back, or say why it cannot be.

    A ``pending`` move is one whose process was killed mid-action: if its file reached the
    quarantine (and is gone from its place) the move happened, so it is restored too."""
    if action["status"] not in ("done", "pending"):
        return
    original = Path(action["path"])
    if action["status"] == "pending":
        destination = Path(action["destination"] or "")
        moved = action["action"] == "move" and destination.is_file() and not original.exists()
        if not moved:
            return  # it never happened (or cannot have: trash and delete are not undoable)
    if action["action"] != "move" or not action["destination"]:
        why = (
            "sent to the system trash: restore it from there"
            if action["action"] == "trash"
            else "deleted: cannot be restored"
        )
        report.skipped.append({"path": str(original), "reason": why})
        return
    destination = Path(action["destination"])
    if original.exists():
        report.skipped.append({"path": str(original), "reason": "a file is back at that path"})
        return
    if not destination.exists():
        report.skipped.append(
            {"path": str(original), "reason": f"quarantined copy {destination} is gone"}
        )
        return
    original.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(destination), str(original))
    store.set_action_status(action["id"], "undone")
    report.restored.append(str(original))
