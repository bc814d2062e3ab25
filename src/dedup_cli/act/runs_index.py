"""A per-user list of runs that acted: run id -> database, folder, quarantine.

This file, written by the user's own dedup, is what ``undo`` trusts; a database can come
with a folder from anyone and may carry forged runs. ``undo`` acts only on runs listed here,
and only inside the folder and quarantine recorded here.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from dedup_cli.config import state_dir

INDEX_NAME = "runs.jsonl"


@dataclass(frozen=True)
class RecordedRun:
    """One acting run as this user's dedup recorded it."""

    run_id: str
    database: Path
    root: Path | None  # None: recorded by a dedup before 0.2 (no folders known)
    roots: tuple[Path, ...]
    quarantine: Path | None
    action: str | None


def record_run(
    run_id: str,
    database: Path,
    *,
    roots: list[Path] | None = None,
    action: str | None = None,
    quarantine: Path | None = None,
) -> None:
    """Append a run, synced, before it acts. A run that cannot be recorded must not act:
    the error propagates (``OSError``)."""
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "run_id": run_id,
            "database": os.path.realpath(database),
            "roots": [os.path.realpath(r) for r in roots or []],
            "action": action,
            "quarantine": None if quarantine is None else os.path.realpath(quarantine),
            "at": time.time(),
        }
    )
    with open(folder / INDEX_NAME, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def recorded_runs() -> list[RecordedRun]:
    """Every run in the index, oldest first; lines that do not parse are left out."""
    index = state_dir() / INDEX_NAME
    try:
        lines = index.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    runs = []
    for line in lines:
        try:
            entry = json.loads(line)
            roots = tuple(Path(r) for r in entry.get("roots") or [])
            quarantine = entry.get("quarantine")
            runs.append(
                RecordedRun(
                    run_id=str(entry["run_id"]),
                    database=Path(entry["database"]),
                    root=roots[0] if roots else None,
                    roots=roots,
                    quarantine=None if quarantine is None else Path(quarantine),
                    action=entry.get("action"),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return runs


def find_run(run_id: str | None, database: Path | None = None) -> RecordedRun | None:
    """The recorded run ``run_id`` (of ``database`` when given), or the most recent run
    (of ``database`` when given) when ``run_id`` is None."""
    wanted_db = None if database is None else os.path.realpath(database)
    for run in reversed(recorded_runs()):
        if wanted_db is not None and os.path.realpath(run.database) != wanted_db:
            continue
        if run_id is None or run.run_id == run_id:
            return run
    return None


def find_database(run_id: str | None) -> Path | None:
    """The database of a run, or of the most recent run when ``run_id`` is None."""
    run = find_run(run_id)
    return None if run is None else run.database
