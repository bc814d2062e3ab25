"""Carry out a plan safely: trash, move (quarantine) or delete; journal everything; undo moves.

Nothing stored decides a removal. Immediately before a file is removed, under the folder lock
(``locking``), both the file and its keeper are opened folder by folder from the root without
following symlinks (``fsops``), re-read and hashed:

- the file must still be the planned bytes (size, mtime and content hash);
- the keeper must still be the planned file: for an ``exact`` pair its bytes must hash equal
  to the file's *now*; for a near pair it must have the content hash that was proved and
  still decode, and the file must not have more pixels than the keeper unless the sizes the
  plan was made with said so.

Any mismatch skips that file with the reason (counted, and the command exits non-zero). The
removal itself acts in the pinned folder (``dir_fd``), so a folder swapped for a symlink
after the check cannot redirect it. Each action is journaled ``pending`` before the file
system changes and ``done`` or ``failed`` after; the run is marked finished at the end, so
``undo`` can tell a run still acting from one whose process died.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from dedup_cli.act.locking import acting_on, holding_folders, is_held_elsewhere
from dedup_cli.act.runs_index import RecordedRun, find_run, record_run, recorded_runs
from dedup_cli.config import ACTIONS, state_dir
from dedup_cli.core.files import FileInfo
from dedup_cli.core.methods import EXACT
from dedup_cli.core.plan import Plan, Removal, acting_order
from dedup_cli.core.sets import Follower, followers_of
from dedup_cli.errors import DedupError, NothingToUndoError, StoreError, UsageError
from dedup_cli.media.companions import MOVIE, SIDECAR, Companions
from dedup_cli.media.fsops import (
    FileSnapshot,
    Pinned,
    UnsafePathError,
    fit_name,
    free_name,
    open_base,
    same_folder,
    transfer,
    write_atomic,
)
from dedup_cli.media.raw import is_raw
from dedup_cli.store import Store, default_db_path

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
    # Keepers (or their sidecars) given fields only a removed copy had (--merge-metadata).
    merged: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(int(d["size"]) for d in self.done)

    @property
    def complete(self) -> bool:
        """Every planned file was handled: none skipped, failed or left by Ctrl-C."""
        return not (self.skipped or self.failed or self.interrupted)

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
            "merged": self.merged,
        }


@dataclass
class UndoReport:
    run_id: str
    restored: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C: stopped between two files; undo again for the rest
    # Moved files not put back (skipped for a reason that may pass): the run stays open, so
    # ``undo`` can be run again once the reason is gone.
    left_in_quarantine: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "restored": self.restored,
            "skipped": self.skipped,
            "failed": self.failed,
            "interrupted": self.interrupted,
        }


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class _Skip(Exception):
    """A check failed: the file is left alone, with this reason."""


@dataclass
class _Checked:
    """A removal whose checks passed: the pinned file and what was read of it."""

    source: Pinned
    snapshot: FileSnapshot


class _KeeperVerdicts:
    """Whether a keeper's bytes (by content hash) still decode: decoded once per run."""

    def __init__(self) -> None:
        self._decodes: dict[str, bool] = {}

    def decodes(self, pinned: Pinned, digest: str) -> bool:
        if digest not in self._decodes:
            from dedup_cli.media.decode import ImageDecodeError, decode

            try:
                decode(pinned.read_bytes(), 32)
                self._decodes[digest] = True
            except (ImageDecodeError, OSError):
                self._decodes[digest] = False
        return self._decodes[digest]


def _stat_role(pinned: Pinned, role: str) -> os.stat_result:
    try:
        info = pinned.lstat()
    except FileNotFoundError:
        raise _Skip(f"{role} is missing") from None
    if (info.st_mode & 0o170000) == 0o120000:
        raise _Skip(f"{role} is a symlink")
    if (info.st_mode & 0o170000) != 0o100000:
        raise _Skip(f"{role} is not a regular file")
    return info


def _read(pinned: Pinned) -> FileSnapshot:
    try:
        return pinned.snapshot()
    except OSError as exc:
        raise _Skip(f"cannot read ({exc.strerror or exc})") from None


def check_removal(
    removal: Removal, keeper: FileInfo, source: Pinned, kept: Pinned, verdicts: _KeeperVerdicts
) -> FileSnapshot:
    """Re-derive from the files, now, everything the removal rests on; returns what was
    read of the file to remove, or raises ``_Skip`` with the reason."""
    file = removal.file
    keeper_info = _stat_role(kept, "keeper")
    info = _stat_role(source, "file")
    if (keeper_info.st_size, keeper_info.st_mtime_ns) != (keeper.size, keeper.mtime_ns):
        raise _Skip("keeper changed since planning")
    if (info.st_dev, info.st_ino) == (keeper_info.st_dev, keeper_info.st_ino):
        raise _Skip("same file as the keeper (hard link)")
    if (info.st_size, info.st_mtime_ns) != (file.size, file.mtime_ns):
        raise _Skip("file changed since planning")
    if file.content_hash is None:
        raise _Skip("no content hash was recorded for the file")
    file_now = _read(source)
    if file_now.content_hash != file.content_hash:
        raise _Skip("file content changed since planning")
    if removal.method == EXACT:
        # Byte for byte (a 128-bit hash that is not cryptographic can be made to collide);
        # the keeper is hashed only to say why a comparison failed.
        try:
            same = kept.same_bytes(source)
        except OSError as exc:
            raise _Skip(f"cannot read ({exc.strerror or exc})") from None
        if not same:
            if _read(kept).content_hash != file_now.content_hash:
                raise _Skip("keeper no longer has the same bytes (damaged or changed in place)")
            raise _Skip("keeper's bytes differ from the file's (their hashes collide)")
    else:
        keeper_now = _read(kept)
        if keeper.content_hash is None or keeper_now.content_hash != keeper.content_hash:
            raise _Skip(
                "keeper's bytes differ from the ones that were proved (damaged or changed in place)"
            )
        if not verdicts.decodes(kept, keeper_now.content_hash):
            raise _Skip("keeper no longer decodes")
        # The keep rule may have read the sizes in pixels from the database: one that lies
        # about them (an import from elsewhere, a tampered store) would keep the smaller copy.
        file_pixels, keeper_pixels = _pixels_now(source, file.path), _pixels_now(kept, keeper.path)
        if (
            file_pixels is not None
            and keeper_pixels is not None
            and file_pixels > keeper_pixels
            and _stored_pixels(file) <= _stored_pixels(keeper)
        ):
            raise _Skip("file has more pixels than its keeper, unlike what the plan was made with")
    return file_now


def _stored_pixels(info: FileInfo) -> int:
    """The size in pixels a plan read (0 where none was recorded)."""
    return (info.width or 0) * (info.height or 0)


def _pixels_now(pinned: Pinned, path: str) -> int | None:
    """The file's size in pixels now, from its header read through the pinned folder (a
    RAW's from the preview it was embedded from); None when it cannot be read as an image."""
    from dedup_cli.media.decode import ImageDecodeError
    from dedup_cli.media.provenance import upright_size
    from dedup_cli.media.raw import raw_preview

    try:
        raw = is_raw(path)
        source = io.BytesIO(raw_preview(pinned.read_bytes())) if raw else pinned.open_read()
    except (ImageDecodeError, OSError):
        return None
    with source:
        size = upright_size(source)
    return None if size is None else size[0] * size[1]


@dataclass
class Outcome:
    """What ``carry_out`` did: review decisions remembered, and the action's report."""

    not_duplicates_remembered: int = 0
    report: ActionReport | None = None


def check_merge_mode(mode: str) -> str:
    """``file`` or ``sidecar`` (``media.metadata.MERGE_MODES``), with the library there."""
    from dedup_cli.media.metadata import MERGE_MODES, check_available

    if mode not in MERGE_MODES:
        raise UsageError(f"--merge-metadata must be one of {', '.join(MERGE_MODES)}, not {mode!r}")
    check_available()
    return mode


def checked_quarantine(move_to: Path, roots: Iterable[Path]) -> Path:
    """The quarantine folder, resolved; a UsageError when it lies inside one of ``roots``
    (or is one) or is not a folder. The CLI asks before any work, ``carry_out`` again."""
    quarantine = move_to.expanduser().resolve()
    for root in roots:
        scanned = root.expanduser().resolve()
        if quarantine == scanned or quarantine.is_relative_to(scanned):
            raise UsageError(
                f"--to {quarantine} is inside a scanned folder; choose a folder outside it"
            )
    if quarantine.exists() and not quarantine.is_dir():
        raise UsageError(f"--to {quarantine} is not a folder")
    return quarantine


def carry_out(
    plan: Plan,
    store: Store,
    action: str,
    *,
    move_to: Path | None = None,
    confirm: Callable[[Plan], None] | None = None,
    remember_in: Sequence[Store] = (),
    merge_metadata: str | None = None,
) -> Outcome:
    """The end of every acting job, in one call: remember the groups a reviewer marked
    "not duplicates" (in ``store`` and in ``remember_in``, the other databases of the
    plan's folders, so a later run of any of them forgets them too), then (unless ``action``
    is ``report`` or nothing is planned) ask ``confirm`` (which raises to refuse) and
    execute the plan, journaled in ``store``."""
    outcome = Outcome()
    for hashes in plan.not_duplicates:
        outcome.not_duplicates_remembered += store.remember_not_duplicates(hashes)
        for other in remember_in:
            if other is not store:
                other.remember_not_duplicates(hashes)
    if action == "report" or not plan.files_to_remove:
        return outcome
    if confirm is not None:
        confirm(plan)
    outcome.report = execute_plan(
        plan, store, action, move_to=move_to, merge_metadata=merge_metadata
    )
    return outcome


def execute_plan(
    plan: Plan,
    store: Store,
    action: str,
    *,
    move_to: Path | None = None,
    run_id: str | None = None,
    merge_metadata: str | None = None,
) -> ActionReport:
    """Apply ``action`` to every planned removal; keepers are never touched.

    Holds the lock on every root of the plan (``locking.acting_on``) for the whole run, so
    no other dedup acts on these folders meanwhile; the run is recorded in this user's run
    index first, so ``dedup undo`` finds even a run that was killed. The roots and the
    quarantine are opened once: every later step works below those descriptors."""
    if action not in ACTIONS:
        raise UsageError(f"--action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if merge_metadata is not None:
        check_merge_mode(merge_metadata)
    root = plan.root.resolve()
    roots = sorted(
        {root}
        | {
            f.root.resolve()
            for g in plan.groups
            for f in (g.keep, *(r.file for r in g.remove))
            if f.root
        }
    )
    if action != "move":
        move_to = None  # only a move has a quarantine
    else:
        if move_to is None:
            raise UsageError("--action move needs --to DIR")
        move_to = checked_quarantine(move_to, roots)
    run_id = run_id or new_run_id()
    manifest = store.path.parent / MANIFEST_FOLDER / f"{run_id}.json"
    report = ActionReport(run_id=run_id, action=action, manifest=str(manifest))
    with acting_on(roots), ExitStack() as opened:
        if action == "move":
            assert move_to is not None
            move_to.mkdir(parents=True, exist_ok=True)
            move_to = move_to.resolve()
        run = _Run(
            store,
            report,
            action,
            roots,
            {r: opened.enter_context(_opened(r)) for r in roots},
            move_to,
            None if move_to is None else opened.enter_context(_opened(move_to)),
            merge=merge_metadata,
        )
        try:
            record_run(run_id, store.path, roots=roots, action=action, quarantine=move_to)
        except OSError as exc:
            raise DedupError(
                f"cannot record the run in the run index ({exc.strerror or exc}); nothing was "
                "removed: fix the state folder (DEDUP_STATE_DIR) or its permissions"
            ) from exc
        store.start_run(
            run_id,
            str(root),
            action,
            plan.model,
            plan.threshold,
            str(manifest),
            None if move_to is None else str(move_to),
        )
        # What goes with each file (sidecars, Live Photo movies), read again from the
        # folders now that they are locked: the plan's list is what was shown, not a witness.
        followers, held = followers_of(plan, Companions()) if plan.with_followers else ({}, {})
        try:
            with _DeferredInterrupt() as interrupt:
                for group in plan.groups:
                    for removal in acting_order(group):
                        if interrupt.requested:
                            break
                        path = Path(removal.file.absolute)
                        _act_on_one(
                            run,
                            removal,
                            group.keep,
                            root,
                            followers.get(str(path), ()),
                            held.get(path),
                        )
                report.interrupted = interrupt.requested
        finally:
            try:
                store.finish_run(run_id)
            except StoreError:
                pass  # unfinished in the journal: undo finds no live process and completes it
            _write_manifest(manifest, plan, report)
    return report


@contextmanager
def _opened(folder: Path) -> Iterator[int]:
    fd = open_base(folder)
    try:
        yield fd
    finally:
        os.close(fd)


@dataclass
class _Run:
    """What every removal of one run shares."""

    store: Store
    report: ActionReport
    action: str
    roots: list[Path]
    bases: dict[Path, int]  # each root, open
    move_to: Path | None
    quarantine: int | None  # move_to, open
    verdicts: _KeeperVerdicts = field(default_factory=lambda: _KeeperVerdicts())
    merge: str | None = None  # --merge-metadata: "file", "sidecar" or None
    # Keepers this run rewrote (a merge), as they are now: later checks expect these bytes.
    rewritten: dict[Path, FileSnapshot] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)  # files this run removed (absolute)

    def now(self, keeper: FileInfo) -> FileInfo:
        """The keeper as this run expects it: as planned, or as a merge of this run left it."""
        after = self.rewritten.get(Path(keeper.absolute))
        if after is None:
            return keeper
        return replace(
            keeper, size=after.size, mtime_ns=after.mtime_ns, content_hash=after.content_hash
        )


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


JOURNALED = ("path", "keeper", "action", "destination", "size", "mtime_ns", "content_hash")


def _entry(
    run: _Run, path: Path, keeper: Path, size: int, mtime_ns: int, digest: str | None
) -> dict[str, Any]:
    return {
        "path": str(path),
        "keeper": str(keeper),
        "action": run.action,
        "destination": None,
        "size": size,
        "mtime_ns": mtime_ns,
        "content_hash": digest,
    }


def _act_on_one(
    run: _Run,
    removal: Removal,
    keeper: FileInfo,
    root: Path,
    followers: Sequence[Follower] = (),
    held: str | None = None,
) -> None:
    """Check and act on one file, then on the files that go with it (``followers``, each
    checked with it); whatever happens to them, the run goes on. ``held``: a policy's reason
    to leave the file, found when acting."""
    file, keeper = removal.file, run.now(keeper)
    entry = _entry(run, file.absolute, keeper.absolute, file.size, file.mtime_ns, file.content_hash)
    file_root = file.root.resolve() if file.root else root
    keeper_root = keeper.root.resolve() if keeper.root else root
    checked: list[tuple[Pinned, FileSnapshot, str, Path]] = []
    with ExitStack() as pinned:

        def act_on_file() -> None:
            if held is not None:
                raise _Skip(held)
            source = pinned.enter_context(Pinned(run.bases[file_root], file.path))
            kept = pinned.enter_context(Pinned(run.bases[keeper_root], keeper.path))
            pinned.enter_context(holding_folders([source.fd, kept.fd]))
            snapshot = check_removal(removal, keeper, source, kept, run.verdicts)
            for follower in followers:
                checked.append(
                    _check_follower(
                        run, follower, file_root, file.path, keeper, keeper_root, pinned
                    )
                )
            if run.merge is not None and removal.method != EXACT:
                _merge_metadata(run, source, kept, keeper, keeper_root, file, pinned)
            _carry(run, source, snapshot, file_root, file.path, entry)

        if not _recorded(run, entry, act_on_file):
            return
        run.removed.add(str(file.absolute))
        for (source, snapshot, relative, stands_for), follower in zip(checked, followers):
            follows = _entry(
                run,
                file_root / relative,
                stands_for,
                snapshot.size,
                snapshot.mtime_ns,
                snapshot.content_hash,
            )
            follows["follows"] = str(file.absolute)
            staying = [o for o in follower.others if o not in run.removed]
            if staying:
                reason = f"stays with {Path(staying[0]).name}, which was not removed"
                run.store.journal(
                    run.report.run_id,
                    {**_journaled(follows), "status": "skipped", "reason": reason},
                )
                run.report.skipped.append({**follows, "reason": reason})
                continue
            _recorded(
                run,
                follows,
                lambda s=source, n=snapshot, r=relative, e=follows: _carry(  # type: ignore[misc]
                    run, s, n, file_root, r, e
                ),
            )


def _merge_metadata(
    run: _Run,
    source: Pinned,
    kept: Pinned,
    keeper: FileInfo,
    keeper_root: Path,
    file: FileInfo,
    pinned: ExitStack,
) -> None:
    """Give the keeper (or its XMP sidecar) the fields only the copy has, before the copy
    goes; the earlier bytes are kept in this user's state folder and the change journaled,
    so ``undo`` restores them byte for byte. A copy whose fields cannot be merged stays."""
    from dedup_cli.media import metadata
    from dedup_cli.media.decode import content_hash

    copy, keeper_bytes = source.read_bytes(), kept.read_bytes()
    if content_hash(keeper_bytes) != keeper.content_hash:
        raise _Skip("keeper changed at the moment of merging its metadata")
    try:
        if run.merge == "file":
            if is_raw(keeper.path):
                raise _Skip(
                    "a RAW keeper is never rewritten: use --merge-metadata sidecar to keep "
                    "the copy's metadata"
                )
            before: bytes | None = keeper_bytes
            merged = metadata.merged_into_file(keeper_bytes, copy)
            target, target_path = kept, keeper.absolute
        else:
            name = _sidecar_name(keeper)
            relative = (PurePosixPath(keeper.path).parent / name).as_posix()
            target = pinned.enter_context(Pinned(run.bases[keeper_root], relative))
            target_path = keeper.absolute.parent / name
            before = target.read_bytes() if target.exists() else None
            merged = metadata.merged_into_sidecar(before, keeper_bytes, copy)
    except metadata.MetadataError as exc:
        raise _Skip(f"its metadata could not be merged into the keeper: {exc}") from None
    if merged is None:
        return  # the keeper lacks nothing the copy has
    # The file as it is now must be the bytes the merge was made from: else it changed
    # meanwhile, and the merge would drop that change.
    was = _read(target) if before is not None else None
    if was is not None and was.content_hash != content_hash(before or b""):
        raise _Skip("keeper changed at the moment of merging its metadata")
    info = target.lstat() if was is not None else None
    backup = None if before is None else _backup(run, before, target.name)
    witnessed = {
        "path": str(target_path),
        "destination": None if backup is None else str(backup),
        "mtime_ns": 0 if was is None else was.mtime_ns,
        "content_hash": None if was is None else was.content_hash,
        "after_hash": content_hash(merged.data),
    }
    _witness_merge(run.report.run_id, witnessed)
    row = run.store.journal(
        run.report.run_id,
        {
            **witnessed,
            "keeper": str(file.absolute),
            "action": "merge",
            "size": 0 if was is None else was.size,
            "status": "pending",
            "reason": None,
        },
    )
    if was is not None and not target.is_same(was):
        run.store.set_action_status(row, "skipped", "changed at the moment of merging")
        raise _Skip("keeper changed at the moment of merging its metadata")
    if was is None and target.exists():
        run.store.set_action_status(row, "skipped", "a sidecar appeared at the moment of merging")
        raise _Skip("a sidecar appeared beside the keeper at the moment of merging")
    try:
        after = target.replace_with(merged.data, like=info)
    except OSError as exc:
        reason = f"its metadata could not be merged into the keeper: {exc.strerror or exc}"
        run.store.set_action_status(row, "failed", reason)
        raise _Skip(reason) from None
    run.store.set_action_status(row, "done")
    if run.merge == "file":
        run.rewritten[Path(keeper.absolute)] = after
    run.report.merged.append(
        {"path": str(target_path), "from": str(file.absolute), "fields": merged.fields}
    )


def _sidecar_name(keeper: FileInfo) -> str:
    """The keeper's XMP sidecar: the one it has (its own, then its stem's), or a new
    ``name.ext.xmp``."""
    for path, what in Companions().followers(Path(keeper.absolute)):
        if what == SIDECAR and path.suffix.lower() == ".xmp":
            return path.name
    return Path(keeper.path).name + ".xmp"


def backups_folder(run_id: str) -> Path:
    """Where a run keeps the bytes its merges replaced: this user's state folder, never a
    folder that came with the photos."""
    return state_dir() / "keeper-backups" / run_id


MERGES_RECORD = "merges.jsonl"  # in a run's backup folder: what undo may do for its merges


def _witness_merge(run_id: str, merge: dict[str, Any]) -> None:
    """Record a merge in this user's state folder, synced, before it happens: undo trusts
    this record, never a database row alone (a database can be edited to name any file)."""
    folder = backups_folder(run_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / MERGES_RECORD, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(merge, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _witnessed_merges(run_id: str) -> list[dict[str, Any]]:
    try:
        lines = (backups_folder(run_id) / MERGES_RECORD).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    merges = []
    for line in lines:
        with contextlib.suppress(ValueError):
            merges.append(json.loads(line))
    return merges


def _backup(run: _Run, data: bytes, name: str) -> Path:
    """Keep the bytes a merge replaces in this run's backup folder; returns where."""
    folder = backups_folder(run.report.run_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = fit_name(f"{secrets.token_hex(6)}-{name}")
    write_atomic(folder, name, data)
    return folder / name


def _check_follower(
    run: _Run,
    follower: Follower,
    file_root: Path,
    relative: str,
    keeper: FileInfo,
    keeper_root: Path,
    pinned: ExitStack,
) -> tuple[Pinned, FileSnapshot, str, Path]:
    """Pin and read a file that goes with ``relative``; one that would be lost with no
    identical file beside the keeper (a movie, or a sidecar to delete) stops the removal."""
    mine = (PurePosixPath(relative).parent / follower.name).as_posix()
    source = pinned.enter_context(Pinned(run.bases[file_root], mine))
    what = f"its {follower.what} {follower.name}"
    _stat_role(source, what)
    snapshot = _read(source)
    stands_for = keeper.absolute
    if follower.what == MOVIE or run.action == "delete":
        if follower.counterpart is None:
            raise _Skip(
                f"{what} would be deleted and its keeper has no identical one "
                "(use --action move or trash)"
            )
        theirs = (PurePosixPath(keeper.path).parent / follower.counterpart).as_posix()
        if (keeper_root, theirs) == (file_root, mine):
            raise _Skip(f"{what} would be deleted and its keeper has no other one")
        kept = pinned.enter_context(Pinned(run.bases[keeper_root], theirs))
        _stat_role(kept, f"its keeper's {follower.what} {follower.counterpart}")
        try:
            same = kept.same_bytes(source)
        except OSError as exc:
            raise _Skip(f"cannot read ({exc.strerror or exc})") from None
        if not same:
            raise _Skip(f"{what} differs from its keeper's {follower.counterpart}")
        stands_for = keeper.absolute.parent / follower.counterpart
    return source, snapshot, mine, stands_for


def _carry(
    run: _Run,
    source: Pinned,
    snapshot: FileSnapshot,
    file_root: Path,
    relative: str,
    entry: dict[str, Any],
) -> None:
    """Move, delete or trash one checked file, journaled ``pending`` first (its row id in
    ``entry["_id"]``)."""
    if run.action == "move":
        _move(run, source, snapshot, relative, entry)
        return
    entry["_id"] = run.store.journal(
        run.report.run_id, {**_journaled(entry), "status": "pending", "reason": None}
    )
    if not source.is_same(snapshot):
        raise OSError("the file changed at the moment of acting")
    if run.action == "delete":
        source.unlink()
    else:
        # send2trash works by path: act only if the path still leads to the pinned folder
        # and the very file that was checked.
        if not same_folder(source.fd, (file_root / relative).parent):
            raise OSError("its folder was replaced at the moment of acting")
        from send2trash import send2trash

        send2trash(str(file_root / relative))


def _journaled(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in JOURNALED}


def _recorded(run: _Run, entry: dict[str, Any], act: Callable[[], None]) -> bool:
    """Run ``act`` on ``entry``'s file and journal and report what came of it: done,
    skipped (a check failed) or failed. True when done."""
    store, report = run.store, run.report
    try:
        act()
    except (_Skip, UnsafePathError) as why:
        action_id = entry.pop("_id", None)
        reason = str(why) if isinstance(why, _Skip) else f"not acted on: {why.strerror or why}"
        if action_id is not None:
            store.set_action_status(action_id, "skipped", reason)
        else:
            store.journal(
                report.run_id, {**_journaled(entry), "status": "skipped", "reason": reason}
            )
        report.skipped.append({**entry, "reason": reason})
        return False
    except StoreError:
        raise  # the journal cannot be written: stop acting (one line from the CLI)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, the run goes on
        action_id = entry.pop("_id", None)
        reason = str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)
        if action_id is not None:
            store.set_action_status(action_id, "failed", reason)
        else:
            store.journal(
                report.run_id, {**_journaled(entry), "status": "failed", "reason": reason}
            )
        report.failed.append({**entry, "reason": reason})
        return False
    action_id = entry.pop("_id")
    report.done.append(entry)  # done on disk, whatever the journal says next
    store.set_action_status(action_id, "done")
    return True


def _move(
    run: _Run, source: Pinned, snapshot: FileSnapshot, relative: str, entry: dict[str, Any]
) -> None:
    """Quarantine one checked file under ``move_to`` at its relative path, never over
    another file and never back inside a scanned folder."""
    assert run.move_to is not None and run.quarantine is not None
    target = run.move_to / relative
    if any(target == r or target.is_relative_to(r) for r in run.roots):
        raise _Skip(f"its quarantine path {target} lies inside a scanned folder")
    with Pinned(run.quarantine, relative, create=True) as folder:
        name = free_name(folder, folder.name)
        destination = target.with_name(name)
        entry["destination"] = str(destination)
        entry["_id"] = run.store.journal(
            run.report.run_id, {**_journaled(entry), "status": "pending", "reason": None}
        )
        transfer(source, folder.fd, name, snapshot)


def _write_manifest(manifest: Path, plan: Plan, report: ActionReport) -> None:
    document = {"plan": plan.as_dict(), "result": report.as_dict()}
    data = json.dumps(document, indent=2).encode("utf-8")
    try:
        write_atomic(manifest.parent.parent.resolve(), f"{MANIFEST_FOLDER}/{manifest.name}", data)
    except OSError as exc:  # the journal in the database has it all: say so, go on
        report.manifest = f"(not written: {exc.strerror or exc}; the database has the journal)"


def _recorded_for(store: Store, run_id: str | None) -> RecordedRun:
    """The run to undo as this user's run index recorded it for this database: never a
    run that only the database claims."""
    if run_id is not None:
        recorded = find_run(run_id, store.path)
        if recorded is None:
            raise NothingToUndoError(
                f"run {run_id} was not recorded by your dedup for {store.path}; dedup only "
                "undoes runs it recorded itself (a database can carry forged runs)"
            )
        return recorded
    real = os.path.realpath(store.path)
    for recorded in reversed(recorded_runs()):
        if os.path.realpath(recorded.database) != real:
            continue
        run = store.run(recorded.run_id)
        if run is not None and run["undone_at"] is None:
            return recorded
    raise NothingToUndoError(f"no run to undo in {store.path}")


def database_to_undo(folder: Path) -> Path | None:
    """The database a plain ``dedup undo`` run in ``folder`` means: the database of the
    newest recorded run on this folder (or on a folder holding it), or else the folder's
    own database. Never the last run anywhere: a run on another collection is undone only
    by its id or its ``--db``."""
    here = folder.resolve()
    # The newest recorded run on this folder first: a run over several folders
    # (``find A B``) is journaled in the first one's database, also for the others.
    for recorded in reversed(recorded_runs()):
        if any(here == r or here.is_relative_to(r) for r in recorded.roots):
            if recorded.database.exists():
                return recorded.database
    own = default_db_path(here)
    return own if own.exists() else None


def _undone_at(database: Path, run_id: str) -> tuple[Any, ...] | None:
    """``(undone_at,)`` of a run, ``()`` when the database has no such run, None when it
    cannot be read. Read-only (``mode=ro``): listing runs never creates, migrates or
    changes the journal mode of a database, whatever file now sits at its path."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
        ) as connection:
            row = connection.execute(
                "SELECT undone_at FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
    except (sqlite3.Error, OSError, ValueError):
        return None
    return () if row is None else (row[0],)


def list_runs() -> list[dict[str, Any]]:
    """This user's recorded runs, newest first, each with what ``undo`` can do with it."""
    listed = []
    for recorded in reversed(recorded_runs()):
        state = "database gone"
        if recorded.database.exists():
            found = _undone_at(recorded.database, recorded.run_id)
            if found is None:
                state = "database unreadable"
            elif not found:
                state = "not in its database"
            elif found[0] is not None:
                state = "undone"
            elif recorded.action == "move":
                state = "can be undone"
            else:
                state = "cannot be undone (not a move)"
        listed.append(
            {
                "run_id": recorded.run_id,
                "action": recorded.action,
                "roots": [str(r) for r in recorded.roots],
                "quarantine": None if recorded.quarantine is None else str(recorded.quarantine),
                "database": str(recorded.database),
                "state": state,
            }
        )
    return listed


def undo_run(store: Store, run_id: str | None = None) -> UndoReport:
    """Put the files of a ``move`` run back where they were, byte for byte.

    Only runs in this user's run index, only inside the folder and quarantine recorded
    there, and only files whose bytes still hash as journaled. Each entry is handled on its
    own: one that cannot be restored is reported and the rest go on. A run still acting in
    another process is refused; one whose process died is completed."""
    recorded = _recorded_for(store, run_id)
    run_id = recorded.run_id
    run = store.run(run_id)
    if run is None:
        raise NothingToUndoError(f"no run {run_id!r} in {store.path}")
    if run["undone_at"] is not None:
        raise NothingToUndoError(f"run {run_id} was already undone")
    if recorded.root is None:
        raise NothingToUndoError(
            f"run {run_id} was recorded by an older dedup without its folders; restore its "
            f"files by hand from the manifest {run['manifest']}"
        )
    if run.get("finished_at") is None and any(is_held_elsewhere(r) for r in recorded.roots):
        raise NothingToUndoError(
            f"run {run_id} is still acting in another process; undo it when it has finished"
        )
    report = UndoReport(run_id=run_id)
    actions = store.run_actions(run_id)
    # Merges last and newest first: each puts back the bytes the one before it left.
    ordered = [a for a in actions if a["action"] != "merge"]
    ordered += [a for a in reversed(actions) if a["action"] == "merge"]
    with acting_on(recorded.roots), _DeferredInterrupt() as interrupt:
        for action in ordered:
            if interrupt.requested:
                report.interrupted = True
                return report  # files restored so far are marked; undo again for the rest
            try:
                _undo_one(action, recorded, store, report)
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - one entry never stops the others
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                report.failed.append({"path": str(action["path"]), "reason": why})
        if interrupt.requested:
            report.interrupted = True
            return report
    if not report.failed and not report.left_in_quarantine:
        store.mark_run_undone(run_id)  # only when nothing of it is left to put back
    return report


def _inside(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder``, lexically (no ``..``), or None when outside."""
    if not path.is_absolute() or ".." in path.parts:
        return None
    try:
        relative = path.relative_to(folder)
    except ValueError:
        return None
    return None if str(relative) == "." else relative.as_posix()


def _undo_one(
    action: dict[str, Any], recorded: RecordedRun, store: Store, report: UndoReport
) -> None:
    """Move one quarantined file back, or say why it cannot be.

    A ``pending`` move is one whose process was killed mid-action: if its file reached the
    quarantine (and is gone from its place) the move happened, so it is restored too."""
    if action["status"] not in ("done", "pending"):
        return
    original = Path(action["path"])
    if action["action"] == "merge":
        _undo_merge(action, recorded, store, report)
        return
    if action["action"] != "move" or not action["destination"]:
        if action["status"] == "done":
            why = (
                "sent to the system trash: restore it from there"
                if action["action"] == "trash"
                else "deleted: cannot be restored"
            )
            report.skipped.append({"path": str(original), "reason": why})
        return
    destination = Path(action["destination"])
    home = next((r for r in recorded.roots if _inside(original, r)), None)
    back = None if home is None else _inside(original, home)
    kept = None if recorded.quarantine is None else _inside(destination, recorded.quarantine)
    if back is None or kept is None or recorded.quarantine is None or home is None:
        report.left_in_quarantine += 1
        report.skipped.append(
            {
                "path": str(original),
                "reason": "journal row points outside the run's folder or quarantine: not restored",
            }
        )
        return
    with (
        Pinned(recorded.quarantine, kept) as source,
        Pinned(home, back, create=True) as target,
        holding_folders([source.fd, target.fd]),
    ):
        there = source.exists()
        if action["status"] == "pending" and there and target.exists():
            _drop_half_done_move(action, source, target, store, report)
            return
        if action["status"] == "pending" and not there:
            return  # the move never happened (killed before it): nothing to put back
        report.left_in_quarantine += 1  # until it is restored below
        if target.exists():
            report.skipped.append({"path": str(original), "reason": "a file is back at that path"})
            return
        if not there:
            report.skipped.append(
                {"path": str(original), "reason": f"quarantined copy {destination} is gone"}
            )
            return
        snapshot = source.snapshot()
        if action["content_hash"] is None or snapshot.content_hash != action["content_hash"]:
            report.skipped.append(
                {
                    "path": str(original),
                    "reason": f"quarantined file {destination} is not the file that was moved "
                    "(its content differs): left where it is",
                }
            )
            return
        transfer(source, target.fd, target.name, snapshot)
    report.left_in_quarantine -= 1
    store.set_action_status(action["id"], "undone")
    report.restored.append(str(original))


def _undo_merge(
    action: dict[str, Any], recorded: RecordedRun, store: Store, report: UndoReport
) -> None:
    """Put back the bytes a metadata merge replaced (from this user's backup of them), or
    remove the sidecar it created: only over the very bytes the merge wrote."""
    from dedup_cli.media.decode import content_hash

    path = Path(action["path"])
    home = next((r for r in recorded.roots if _inside(path, r)), None)
    back = None if home is None else _inside(path, home)
    backup = None if action["destination"] is None else Path(action["destination"])
    if (
        home is None
        or back is None
        or (backup is not None and _inside(backup, backups_folder(recorded.run_id)) is None)
    ):
        report.skipped.append(
            {
                "path": str(path),
                "reason": "journal row points outside the run's folder: not restored",
            }
        )
        return
    facts = ("path", "destination", "mtime_ns", "content_hash", "after_hash")
    if {k: action[k] for k in facts} not in _witnessed_merges(recorded.run_id):
        report.skipped.append(
            {
                "path": str(path),
                "reason": "a merge your dedup did not record for this run: not restored "
                "(a database can carry forged rows)",
            }
        )
        return
    with Pinned(home, back) as target, holding_folders([target.fd]):
        now = target.snapshot() if target.exists() else None
        current = None if now is None else now.content_hash
        if current == action["content_hash"]:
            store.set_action_status(action["id"], "undone")  # the merge never landed
            return
        if current != action["after_hash"]:
            kept = "" if backup is None else f"; its earlier bytes are in {backup}"
            report.skipped.append(
                {"path": str(path), "reason": f"changed since its metadata was merged{kept}"}
            )
            return
        assert now is not None
        if backup is None:  # a sidecar the merge created
            if not target.is_same(now):
                raise OSError(errno.EAGAIN, "the file changed at the moment of acting")
            target.unlink()
        else:
            data = backup.read_bytes()
            if content_hash(data) != action["content_hash"]:
                report.skipped.append(
                    {"path": str(path), "reason": f"its backup {backup} is not the earlier file"}
                )
                return
            if not target.is_same(now):
                raise OSError(errno.EAGAIN, "the file changed at the moment of acting")
            target.replace_with(data, like=target.lstat(), mtime_ns=action["mtime_ns"])
    store.set_action_status(action["id"], "undone")
    report.restored.append(str(path))


def _drop_half_done_move(
    action: dict[str, Any], source: Pinned, target: Pinned, store: Store, report: UndoReport
) -> None:
    """A move killed between its link (or copy) and the unlink left the file in both places.
    The quarantined name goes only when both hold exactly the journaled bytes, so the file at
    home is the one that was moved; otherwise both stay and the user is told."""
    original = str(Path(action["path"]))
    home, away = target.snapshot(), source.snapshot()
    if not (action["content_hash"] == home.content_hash == away.content_hash) or not (
        (home.device, home.inode) == (away.device, away.inode) or target.same_bytes(source)
    ):
        at_home = (
            "the file at home is intact but the quarantined copy differs (a copy cut short?)"
            if home.content_hash == action["content_hash"]
            else "the file at home is not the one that was moved"
        )
        report.left_in_quarantine += 1
        report.skipped.append(
            {
                "path": original,
                "reason": f"its move was interrupted and {at_home}: "
                f"{action['destination']} is left where it is",
            }
        )
        return
    # Both entries once more, at the last moment: a hard link shares its inode, so if the
    # home name went meanwhile, the quarantined one is the last and must stay.
    if not (source.is_same(away) and target.is_same(home)):
        raise OSError(errno.EAGAIN, "the file changed at the moment of acting")
    source.unlink()
    store.set_action_status(action["id"], "undone")
    report.restored.append(original)
