"""Copies by name: ``name (1).jpg``, ``name-001.jpg``, ``Copy of name.jpg`` … beside ``name.jpg``.

A name pattern only proposes a pair, and only when the base file exists in the same folder:
``IMG_0001.jpg`` and ``IMG_0002.jpg`` are never paired, because neither is the other's base
(and ``_N``/``-N`` suffixes of four or more digits, camera counters, are not copy marks).
Names are compared after Unicode NFC normalisation, so a name typed on macOS (NFD) matches
the same name typed elsewhere.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

# Each pattern matches a copy's stem and captures its base stem in the group "base".
COPY_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(?P<base>.+?) ?\(\d{1,3}\)$",  # name (1), name(2)
        r"^(?P<base>.+?)[-_]\d{1,3}$",  # name-001, name_1 (not IMG_0001: 4 digits)
        r"^(?P<base>.+?) - copy(?: \(\d{1,3}\))?$",  # name - Copy, name - Copy (2)
        r"^(?P<base>.+?) copy(?: \d{1,3})?$",  # name copy, name copy 2
        r"^copy (?:\(\d{1,3}\) )?of (?P<base>.+)$",  # Copy of name, Copy (2) of name
    )
)


@dataclass(frozen=True)
class NamePair:
    """``copy`` looks like a copy of ``base`` by name (paths relative to the root)."""

    base: str
    copy: str
    pattern: str  # "numbered", "copy-of", "extension-case", …


def _norm(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def base_stems(stem: str) -> list[str]:
    """The stems ``stem`` would be a copy of under each pattern (outermost mark first)."""
    out: list[str] = []
    for pattern in COPY_PATTERNS:
        match = pattern.match(stem)
        if match and match.group("base").strip():
            out.append(match.group("base"))
    return out


def _root_base(
    name: str, keepers: dict[tuple[str, str], str], seen: frozenset[str] = frozenset()
) -> str | None:
    """Follow copy marks down to the first name with no base: name - Copy (2) -> name."""
    stem, ext = os.path.splitext(name)
    for base in base_stems(stem):
        found = keepers.get((_norm(base), ext.lower()))
        if found is not None and found not in seen and found != name:
            return _root_base(found, keepers, seen | {name}) or found
    return None


def name_pairs(paths: Iterable[str]) -> list[NamePair]:
    """Pairs of files in the same folder where one name is a copy mark on the other's."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        folder, _, name = path.rpartition("/")
        by_folder[folder].append(name)
    pairs: list[NamePair] = []
    for folder, names in sorted(by_folder.items()):
        prefix = f"{folder}/" if folder else ""
        index: dict[tuple[str, str], list[str]] = defaultdict(list)
        for name in sorted(names):
            stem, ext = os.path.splitext(name)
            index[(_norm(stem), ext.lower())].append(name)
        keepers: dict[tuple[str, str], str] = {}
        for key, same in index.items():
            # The same name with another case of extension: name.jpg beside name.JPG; the
            # lower-case extension is the base.
            keeper = min(
                same, key=lambda n: (os.path.splitext(n)[1] != os.path.splitext(n)[1].lower(), n)
            )
            keepers[key] = keeper
            pairs.extend(
                NamePair(prefix + keeper, prefix + n, "extension-case") for n in same if n != keeper
            )

        for name in sorted(names):
            if (
                keepers[(_norm(os.path.splitext(name)[0]), os.path.splitext(name)[1].lower())]
                != name
            ):
                continue  # an extension-case twin, already paired
            base = _root_base(name, keepers)
            if base is not None:
                pairs.append(NamePair(prefix + base, prefix + name, "copy-name"))
    return pairs
