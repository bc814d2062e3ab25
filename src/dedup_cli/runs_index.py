"""A per-user list of runs that acted (run id -> database), so ``dedup undo`` works anywhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dedup_cli.config import state_dir

INDEX_NAME = "runs.jsonl"


def record_run(run_id: str, database: Path) -> None:
    """Append a run; failures to write the index never fail the run (the DB has the journal)."""
    try:
        folder = state_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / INDEX_NAME, "a", encoding="utf-8") as handle:
            handle.write(
                json.dumps({"run_id": run_id, "database": str(database), "at": time.time()}) + "\n"
            )
    except OSError:
        pass


def find_database(run_id: str | None) -> Path | None:
    """The database of a run, or of the most recent run when ``run_id`` is None."""
    index = state_dir() / INDEX_NAME
    try:
        lines = index.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if run_id is None or entry.get("run_id") == run_id:
            return Path(entry["database"])
    return None
