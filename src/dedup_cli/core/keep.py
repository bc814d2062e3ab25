"""Keep rules, in one table: which file of a group stays.

Every job ranks the files of a group with one of these and keeps the smallest rank. A rule
sees a file's facts and where it stands: its side (``cross``: 0 for folder A, 1 for B; 0
elsewhere) and whether it carries the base name (``filename-clean``). Each job accepts the
rules that make sense for it (``FIND_RULES``, ``CROSS_RULES``, ``NAME_RULES``), and the one
check of a rule's name lives here, so a Python caller gets the same error as the CLI. Ties
always fall back to the path, so the choice is the same on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from dedup_cli.core.files import FileInfo
from dedup_cli.errors import UsageError


@dataclass(frozen=True)
class Standing:
    """Where a file stands in its job: which folder, and whether it has the base name."""

    side: int = 0
    is_base: bool = False


@total_ordering
class _Descending:
    """Orders strings backwards (a rule that prefers the larger path on a tie)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.text == other.text

    def __lt__(self, other: _Descending) -> bool:
        return self.text > other.text

    def __hash__(self) -> int:
        return hash(self.text)


def _pixels(f: FileInfo) -> int:
    return (f.width or 0) * (f.height or 0)


Rank = Callable[[FileInfo, Standing], tuple[Any, ...]]

KEEP_RULES: dict[str, Rank] = {
    # The original tool's rule: the biggest file, assuming bigger means better.
    "largest": lambda f, s: (-f.size, -_pixels(f), s.side, f.path),
    "resolution": lambda f, s: (-_pixels(f), -f.size, f.path),
    "oldest": lambda f, s: (f.mtime_ns, f.path),
    "newest": lambda f, s: (-f.mtime_ns, f.path),
    "shortest-path": lambda f, s: (len(f.path), f.path),
    # cross: one folder is never touched; the largest of the rest decides among equals.
    "db1": lambda f, s: (s.side, -f.size, -_pixels(f), f.path),
    "db2": lambda f, s: (1 - s.side, -f.size, -_pixels(f), f.path),
    # filename-clean: the file without a copy mark stays.
    "base": lambda f, s: (not s.is_base, f.path),
    # filename-clean's "largest": the biggest file; the base name wins a tie.
    "largest-name": lambda f, s: (-f.size, not s.is_base, _Descending(f.path)),
}
FIND_RULES = ("largest", "resolution", "oldest", "newest", "shortest-path")
CROSS_RULES = ("largest", "db1", "db2")
NAME_RULES = ("base", "largest")
_NAME_ALIASES = {"largest": "largest-name"}


def check_keep(rule: str, allowed: Sequence[str]) -> str:
    """``rule`` if this job accepts it; the one place a keep rule is validated."""
    if rule not in allowed:
        raise UsageError(f"--keep must be one of {', '.join(allowed)}, not {rule!r}")
    return rule


def keeper_rank(
    rule: str,
    files: Sequence[FileInfo],
    standing: Callable[[int], Standing] | None = None,
    allowed: Sequence[str] = FIND_RULES,
) -> Callable[[int], Hashable]:
    """A sort key over positions in ``files`` for ``rule``; the smallest is kept."""
    key = KEEP_RULES[check_keep(rule, allowed)]
    where = standing or (lambda _i: Standing())
    return lambda i: key(files[i], where(i))


def name_rule(rule: str) -> str:
    """The table entry behind a ``filename-clean`` rule name."""
    return _NAME_ALIASES.get(check_keep(rule, NAME_RULES), rule)
