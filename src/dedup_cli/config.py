"""Defaults and environment variables, in one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "effnet"
DEFAULT_KEEP = "largest"
DEFAULT_BATCH_SIZE = 32


def state_dir() -> Path:
    """Where the index of runs lives (``DEDUP_STATE_DIR``, else the XDG state folder)."""
    override = os.environ.get("DEDUP_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dedup"
