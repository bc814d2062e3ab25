"""Defaults and environment variables, in one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "effnet"
DEFAULT_KEEP = "quality"
DEFAULT_BATCH_SIZE = 32

# Every choice a command offers, named once (the library checks them; the CLI shows them).
INDEXES = ("auto", "exact", "ann")  # how candidate pairs are searched (search.candidates)
ACTIONS = ("trash", "move", "delete")  # what happens to planned copies (act.execute)
REVIEWS = ("auto", "terminal", "gui", "web", "html", "none")  # how a plan is looked at (cli.acting)
DEVICES = ("auto", "cpu", "cuda", "mps")  # where a model runs (models)
ENGINES = ("local", "ray")  # where hashing, search and proof run (distributed for ray)
PAIRS = ("keep", "ignore")  # RAW+JPEG and Live Photo sets: kept whole, or planned alone (core.sets)
BURSTS = ("list", "remove-all-but-best")  # what find does with bursts (core.bursts)
MERGE_MODES = ("file", "sidecar")  # where --merge-metadata writes (media.metadata)
# Options that may be given without their value: ``--bursts`` alone is ``--bursts list``
# (``cli.common.OptionalValues``).
OPTIONAL_VALUES = {"--bursts": BURSTS, "--merge-metadata": MERGE_MODES}


def choices(names: tuple[str, ...]) -> str:
    """``[a|b|c]``: how help shows a choice."""
    return "[" + "|".join(names) + "]"


# `prune-db` refuses (without --force) to forget more than this share of the database's
# rows in one run: a root that is unmounted, renamed or mostly empty is far more likely than
# half a photo collection deleted on purpose. Override with --max-forget.
DEFAULT_PRUNE_MAX_FORGET = 0.5


def state_dir() -> Path:
    """Where the index of runs lives (``DEDUP_STATE_DIR``, else the XDG state folder)."""
    override = os.environ.get("DEDUP_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dedup"
