"""The library raises only these; the CLI turns them into one message line and an exit code."""

from __future__ import annotations


class DedupError(Exception):
    """Something the user must act on: bad input, missing weights, a locked database."""

    exit_code = 1


class UsageError(DedupError):
    """Bad options or arguments (exit code 2, like Click's own usage errors)."""

    exit_code = 2


class ModelLoadError(DedupError):
    """Weights could not be found, downloaded or loaded."""


class UnknownModelError(UsageError):
    """A model name that is not in the registry."""


class StoreError(DedupError):
    """The database cannot be opened, is locked, or has an unknown schema."""


class NothingToUndoError(DedupError):
    """``undo`` was asked for a run that does not exist or has nothing left to undo."""


class IncompleteError(DedupError):
    """An action or an undo carried out the rest but left some files in place (a safety
    check skipped them, or the file system failed them): exit code 3, so a script can tell
    "done, with exceptions" from "did nothing"."""

    exit_code = 3
