"""Keep rules, in one table: which file of a group stays, and why.

Every job ranks the files of a group with one rule and keeps the best. A rule is a list of
criteria, each a reason a file wins ("more pixels") and the key that orders files by it;
the first criterion on which the keeper beats its closest rival is the reason the plan
gives. A rule sees a file's facts and where it stands: its side (``cross``: 0 for folder A,
1 for B; 0 elsewhere) and whether it carries the base name (``filename-clean``). Each job
accepts the rules that make sense for it (``FIND_RULES``, ``CROSS_RULES``, ``NAME_RULES``),
and the one check of a rule's name lives here, so a Python caller gets the same error as the
CLI. Ties always fall back to the path, so the choice is the same on every run.

``quality`` (the default everywhere) keeps the best copy the files can show: the most
pixels; then not a conversion or re-encode of another member (``media.provenance``: a PNG
holding a JPEG's pixels, a JPEG re-saved from another); then the richer metadata (capture
time, camera, GPS); then, with ``--prefer``, the preferred format; then the larger file;
then the name without a copy mark (``(1)``,
`` copy``, ``-2``); then the shallower path; then the older file. ``largest`` is the
original tool's rule, unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import total_ordering
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from dedup_cli.core.files import FileInfo
from dedup_cli.errors import UsageError
from dedup_cli.media.borders import content_box
from dedup_cli.media.decode import ImageDecodeError, decode_for_display
from dedup_cli.media.filenames import base_stems
from dedup_cli.media.provenance import Encoding, encoding_of, made_from
from dedup_cli.media.raw import is_raw

# The ``quality`` rule compares members' files pairwise for conversions only among the
# members that tie on the most pixels, and among at most this many of them.
MAX_PROVENANCE_MEMBERS = 6
PADDING_SIDE = 256  # pixels a member is decoded at to see whether it is padded with bars
PADDING_TOLERANCE = 0.03  # pictures inside bars this close in pixels count as the same size


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


@dataclass(frozen=True)
class Seen:
    """What a criterion may look at: the file, where it stands, and (read on first use)
    how it is stored."""

    file: FileInfo
    standing: Standing
    encoding: Callable[[], Encoding]


def _pixels(f: FileInfo) -> int:
    return (f.width or 0) * (f.height or 0)


def has_copy_mark(path: str) -> bool:
    """Whether a file's name carries a copy mark: ``name (1)``, ``name copy``, ``name-2``."""
    stem = os.path.splitext(PurePosixPath(path).name)[0]
    return bool(base_stems(stem))


def _depth(path: str) -> int:
    return len(PurePosixPath(path).parts)


@dataclass(frozen=True)
class Criterion:
    """One reason a file is kept over another, and the key that orders files by it."""

    reason: str
    key: Callable[[Seen], Any]


MORE_PIXELS = Criterion("more pixels", lambda s: -_pixels(s.file))
LARGER_FILE = Criterion("the larger file", lambda s: -s.file.size)
# Marks the place in ``quality`` of the group-wide test (``KeeperRank.best``).
NOT_MADE_FROM_ANOTHER = Criterion("the others were made from it", lambda s: 0)

KEEP_RULES: dict[str, tuple[Criterion, ...]] = {
    "quality": (
        MORE_PIXELS,
        NOT_MADE_FROM_ANOTHER,
        Criterion(
            "richer metadata (capture time, camera, GPS)", lambda s: -len(s.encoding().metadata)
        ),
        LARGER_FILE,
        Criterion(
            "the name without a copy mark",
            lambda s: not s.standing.is_base and has_copy_mark(s.file.path),
        ),
        Criterion("the shallower path", lambda s: _depth(s.file.path)),
        Criterion("the older file", lambda s: s.file.mtime_ns),
    ),
    # The original tool's rule: the biggest file, assuming bigger means better.
    "largest": (
        LARGER_FILE,
        MORE_PIXELS,
        Criterion("in the first folder", lambda s: s.standing.side),
    ),
    "resolution": (MORE_PIXELS, LARGER_FILE),
    "oldest": (Criterion("the older file", lambda s: s.file.mtime_ns),),
    "newest": (Criterion("the newer file", lambda s: -s.file.mtime_ns),),
    "shortest-path": (Criterion("the shorter path", lambda s: len(s.file.path)),),
    # cross: one folder is never touched; the largest of the rest decides among equals.
    "db1": (Criterion("in the first folder", lambda s: s.standing.side), LARGER_FILE, MORE_PIXELS),
    "db2": (
        Criterion("in the second folder", lambda s: 1 - s.standing.side),
        LARGER_FILE,
        MORE_PIXELS,
    ),
    # filename-clean: the file without a copy mark stays.
    "base": (Criterion("the name without a copy mark", lambda s: not s.standing.is_base),),
    # filename-clean's "largest": the biggest file; the base name wins a tie.
    "largest-name": (
        LARGER_FILE,
        Criterion("the name without a copy mark", lambda s: not s.standing.is_base),
        Criterion("the later path", lambda s: _Descending(s.file.path)),
    ),
}
FIND_RULES = ("quality", "largest", "resolution", "oldest", "newest", "shortest-path")
CROSS_RULES = ("quality", "largest", "db1", "db2")
NAME_RULES = ("quality", "base", "largest")
_NAME_ALIASES = {"largest": "largest-name"}
BY_PATH = "first by path (they tie on everything else)"


# Formats ``--prefer`` can order (``quality`` consults the order before bytes).
FORMATS = ("raw", "heic", "jpeg", "png", "webp", "avif", "tiff", "gif", "bmp")
_PILLOW_FORMATS = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "HEIF": "heic",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
    "TIFF": "tiff",
    "GIF": "gif",
    "BMP": "bmp",
}


def format_of(seen: Seen) -> str | None:
    """A file's format as ``--prefer`` names it: RAW by its extension (Pillow reads no RAW),
    the others by what the header says."""
    if is_raw(seen.file.path):
        return "raw"
    return _PILLOW_FORMATS.get(seen.encoding().format or "")


def check_prefer(prefer: Sequence[str], rule: str) -> tuple[str, ...]:
    """The ``--prefer`` order, checked: known formats, each once, with ``quality``."""
    order = tuple(p.strip().lower() for p in prefer if p.strip())
    unknown = [p for p in order if p not in FORMATS]
    if unknown:
        raise UsageError(f"--prefer takes formats among {', '.join(FORMATS)}, not {unknown[0]!r}")
    if len(set(order)) != len(order):
        raise UsageError("--prefer names each format once")
    if order and rule != "quality":
        raise UsageError("--prefer orders formats for --keep quality only")
    return order


def preferring(order: Sequence[str]) -> Criterion:
    """The criterion ``--prefer`` adds to ``quality``, before the file size: a format
    earlier in ``order`` wins; formats not named come after every named one."""
    rank = {name: k for k, name in enumerate(order)}
    return Criterion(
        f"the preferred format ({' > '.join(order)})",
        lambda s: rank.get(format_of(s) or "", len(order)),
    )


def check_keep(rule: str, allowed: Sequence[str]) -> str:
    """``rule`` if this job accepts it; the one place a keep rule is validated."""
    if rule not in allowed:
        raise UsageError(f"--keep must be one of {', '.join(allowed)}, not {rule!r}")
    return rule


class KeeperRank:
    """Orders the files of a job by a keep rule: ``rank(i)`` is a sort key (the smallest is
    kept), ``best(members)`` the keeper of a group, ``why(keeper, others)`` the reason.

    ``best`` is where ``quality`` looks across the group: among the members with the most
    pixels, one made from another (``media.provenance.made_from``) is not kept while its
    source is there. Formats and metadata are read from the files once, when first needed."""

    def __init__(
        self,
        rule: str,
        files: Sequence[FileInfo],
        standing: Callable[[int], Standing] | None = None,
        prefer: Sequence[str] = (),
    ) -> None:
        self.rule = rule
        self.criteria = KEEP_RULES[rule]
        order = check_prefer(prefer, rule)
        if order:
            at = self.criteria.index(LARGER_FILE)
            self.criteria = (*self.criteria[:at], preferring(order), *self.criteria[at:])
        self.files = files
        self.standing = standing or (lambda _i: Standing())
        self._keys: dict[int, tuple[Any, ...]] = {}
        self._encodings: dict[int | str, Encoding] = {}
        self._made_from: dict[tuple[int, int], str | None] = {}
        self._content: dict[int, int] = {}
        # Files the proof found padded with uniform bars (``Confirmation.padded``).
        self.padded: set[str] = set()

    def __call__(self, i: int) -> tuple[Any, ...]:
        key = self._keys.get(i)
        if key is None:
            seen = Seen(self.files[i], self.standing(i), lambda: self._encoding(i))
            key = self._keys[i] = (*(c.key(seen) for c in self.criteria), self.files[i].path)
        return key

    def _encoding(self, i: int) -> Encoding:
        """Read once per content: 30,000 byte-identical files are one header read."""
        f = self.files[i]
        key: int | str = f.content_hash or i
        if key not in self._encodings:
            self._encodings[key] = encoding_of(f.absolute)
        return self._encodings[key]

    def best(self, members: Sequence[int]) -> int:
        """The keeper among ``members``."""
        ranked = sorted(members, key=self._order)
        if len(ranked) > 1 and MORE_PIXELS in self.criteria and self._padded_first(ranked):
            # The most pixels were bars: compare the pictures inside them, and among those
            # as large (measured through a small decode: within PADDING_TOLERANCE) keep one
            # without bars, in the rule's order.
            most = max(self._content_pixels(i) for i in ranked)
            large = [i for i in ranked if self._content_pixels(i) >= (1 - PADDING_TOLERANCE) * most]
            unpadded = [i for i in large if str(self.files[i].absolute) not in self.padded]
            return (unpadded or large)[0]
        if NOT_MADE_FROM_ANOTHER not in self.criteria or len(ranked) < 2:
            return ranked[0]
        most = _pixels(self.files[ranked[0]])
        top = [i for i in ranked if _pixels(self.files[i]) == most][:MAX_PROVENANCE_MEMBERS]
        for candidate in top:
            if not any(other != candidate and self._derived(candidate, other) for other in top):
                return candidate
        return ranked[0]  # each made from another: no source among them

    def _order(self, i: int) -> tuple[Any, ...]:
        return (self(i), i)

    def _padded_first(self, ranked: Sequence[int]) -> bool:
        """Whether the file ranked first was proved another's picture padded with bars
        (``padded``, from the proof), so its pixel count is partly bars."""
        first = self.files[ranked[0]]
        if str(first.absolute) not in self.padded:
            return False
        return self._content_pixels(ranked[0]) < 0.98 * _pixels(first)

    def _content_pixels(self, i: int) -> int:
        """The file's pixels inside its uniform black or white borders (``media.borders``),
        read from a small decode once per file."""
        if i not in self._content:
            f = self.files[i]
            self._content[i] = _pixels(f)
            try:
                shown = np.asarray(decode_for_display(f.absolute, PADDING_SIDE).convert("RGB"))
            except (OSError, ValueError, ImageDecodeError):
                return self._content[i]
            box = content_box(shown)
            if box is not None:
                share = (box[2] - box[0]) * (box[3] - box[1]) / (shown.shape[0] * shown.shape[1])
                self._content[i] = int(_pixels(f) * share)
        return self._content[i]

    def _derived(self, copy: int, source: int) -> bool:
        a, b = self.files[copy], self.files[source]
        if a.content_hash is not None and a.content_hash == b.content_hash:
            return False
        if (copy, source) not in self._made_from:
            self._made_from[(copy, source)] = made_from(a.absolute, b.absolute)
        return self._made_from[(copy, source)] is not None

    def why(self, keeper: int, others: Sequence[int]) -> str:
        """Why ``keeper`` won over ``others``: the first criterion on which it beats the
        closest of them."""
        if not others:
            return ""
        rival = min(others, key=self._order)
        if rival in self._content and self._content[rival] < _pixels(self.files[rival]):
            name = PurePosixPath(self.files[rival].path).name
            return f"more pixels inside its borders ({name} is padded with bars)"
        if self._order(rival) < self._order(keeper):  # passed over: made from another copy
            how = next((h for (c, _), h in self._made_from.items() if c == rival and h), None)
            name = PurePosixPath(self.files[rival].path).name
            return f"{name} was made from another copy" + (f" ({how})" if how else "")
        mine, theirs = self._order(keeper)[0], self._order(rival)[0]
        for criterion, a, b in zip(self.criteria, mine, theirs):
            if a != b:
                return criterion.reason
        return BY_PATH


def keeper_rank(
    rule: str,
    files: Sequence[FileInfo],
    standing: Callable[[int], Standing] | None = None,
    allowed: Sequence[str] = FIND_RULES,
    prefer: Sequence[str] = (),
) -> KeeperRank:
    """The ranking of ``files`` by ``rule`` (checked against the job's ``allowed`` rules);
    ``prefer``: an order of formats ``quality`` consults before the file size."""
    return KeeperRank(check_keep(rule, allowed), files, standing, prefer)


def best_of(rank: Callable[[int], Hashable], members: Sequence[int]) -> int:
    """The keeper among ``members``: ``rank.best`` for a ``KeeperRank``, else the smallest
    rank (a plain sort key, as tests pass)."""
    if isinstance(rank, KeeperRank):
        return rank.best(members)
    return min(members, key=lambda i: (rank(i), i))  # type: ignore[arg-type,return-value,unused-ignore]


def name_rule(rule: str) -> str:
    """The table entry behind a ``filename-clean`` rule name."""
    return _NAME_ALIASES.get(check_keep(rule, NAME_RULES), rule)
