"""Files that belong together on disk: a RAW and the JPEG or HEIC of the same shot, a Live
Photo's still and its movie.

Cameras and phones write such a *set* into one folder under one stem: ``IMG_0001.CR2`` and
``IMG_0001.JPG``, ``IMG_0001.HEIC`` and ``IMG_0001.MOV``. The members are different files of
one moment, not copies of each other, and removing one breaks the set (a RAW without its
developed JPEG, a Live Photo without its motion). Only files of different *kinds* make a
set: ``photo.jpg`` beside ``photo.png`` is a conversion, which ``find`` is there to find.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw", ".nrw"}
)
# The kind of each extension that can be part of a set.
KINDS: dict[str, str] = {
    **{extension: "raw" for extension in RAW_EXTENSIONS},
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".heic": "heic",
    ".heif": "heic",
    ".mov": "video",
    ".mp4": "video",
}


def kind_of(name: str) -> str | None:
    """``raw``, ``jpeg``, ``heic`` or ``video`` for a file that can belong to a set."""
    return KINDS.get(os.path.splitext(name)[1].lower())


def _stem(name: str) -> str:
    return unicodedata.normalize("NFC", os.path.splitext(name)[0]).casefold()


class Companions:
    """The set each file belongs to, read from its folder's listing once per folder."""

    def __init__(self) -> None:
        self._listings: dict[Path, dict[str, list[str]]] = {}

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._listings:
            by_stem: dict[str, list[str]] = {}
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            for name in names:
                if kind_of(name) is not None:
                    by_stem.setdefault(_stem(name), []).append(name)
            self._listings[folder] = by_stem
        return self._listings[folder]

    def of(self, path: Path) -> list[Path]:
        """The other members of ``path``'s set (empty: it stands alone). A set needs
        members of two kinds or more; same-kind files under one stem (``a.jpg``, ``a.JPG``)
        are not a set."""
        mine = kind_of(path.name)
        if mine is None:
            return []
        names = self._listing(path.parent).get(_stem(path.name), [])
        others = [n for n in names if n != path.name and kind_of(n) != mine]
        return [path.parent / n for n in sorted(others)]
