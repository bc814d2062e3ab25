"""The facts of one file at planning time, shared by planning, proof and action."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class FileInfo:
    """The facts of a file at planning time; an action checks them again before acting."""

    path: str  # relative to the root
    absolute: Path
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    # The folder this file belongs to when a plan spans two (``cross``); None: the plan's root.
    root: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.absolute),
            "relative_path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "content_hash": self.content_hash,
            "width": self.width,
            "height": self.height,
        }
