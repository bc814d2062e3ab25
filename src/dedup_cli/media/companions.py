"""Files that belong together on disk: a RAW and the JPEG or HEIC of the same shot, a Live
Photo's still and its movie.

Cameras and phones write such a *set* into one folder under one stem: ``IMG_0001.CR2`` and
``IMG_0001.JPG``, ``IMG_0001.HEIC`` and ``IMG_0001.MOV``. The members are different files of
one moment, not copies of each other, and removing one breaks the set (a RAW without its
developed JPEG, a Live Photo without its motion). Only stills of different *kinds* make a
set: ``photo.jpg`` beside ``photo.png`` is a conversion, which ``find`` is there to find.

Some files exist only for a picture's sake and are not pictures themselves: its *followers*.
An XMP sidecar (``IMG_0001.CR2.xmp`` for that file, ``IMG_0001.xmp`` for every picture of
the stem), an Apple edit file (``IMG_0001.AAE``) and a Live Photo's movie (``IMG_0001.MOV``
beside ``IMG_0001.HEIC``). When their picture goes, they go with it, or the picture stays.
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
    ".xmp": "sidecar",
    ".aae": "sidecar",
}
STILLS = frozenset({"raw", "jpeg", "heic"})  # the kinds that make a set with each other
LIVE_STILLS = frozenset({"jpeg", "heic"})  # the stills a Live Photo's movie belongs to
SIDECAR, MOVIE = "sidecar", "movie"  # what a follower is to its picture


def kind_of(name: str) -> str | None:
    """``raw``, ``jpeg``, ``heic``, ``video`` or ``sidecar``: a file that can be part of a
    set or follow a picture."""
    return KINDS.get(os.path.splitext(name)[1].lower())


def _folded(name: str) -> str:
    """A name as names compare on disks that ignore case and Unicode form."""
    return unicodedata.normalize("NFC", name).casefold()


def _stem(name: str) -> str:
    return _folded(os.path.splitext(name)[0])


class Companions:
    """The set and the followers of each file, read from its folder's listing once per
    folder."""

    def __init__(self) -> None:
        self._listings: dict[Path, dict[str, list[str]]] = {}

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        """Every name in ``folder`` by its stem (case-folded)."""
        if folder not in self._listings:
            by_stem: dict[str, list[str]] = {}
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            for name in names:
                by_stem.setdefault(_stem(name), []).append(name)
            self._listings[folder] = by_stem
        return self._listings[folder]

    def of(self, path: Path) -> list[Path]:
        """The other stills of ``path``'s set (empty: it stands alone). A set needs stills
        of two kinds or more; same-kind files under one stem (``a.jpg``, ``a.JPG``) are not
        a set."""
        mine = kind_of(path.name)
        if mine not in STILLS:
            return []
        names = self._listing(path.parent).get(_stem(path.name), [])
        others = [n for n in names if kind_of(n) in STILLS and kind_of(n) != mine]
        return [path.parent / n for n in sorted(others)]

    def followers(self, path: Path) -> list[tuple[Path, str]]:
        """The files that exist for ``path``'s sake, each with what it is (``SIDECAR`` or
        ``MOVIE``): its own sidecar (``name.ext.xmp``), the sidecars of its stem, and, for a
        JPEG or HEIC still, the movie of its Live Photo. Only files ``owners`` names
        ``path`` among; a stem's files may be shared with other files of that stem."""
        listing = self._listing(path.parent)
        own = _folded(path.name)
        found = [(n, SIDECAR) for n in listing.get(own, []) if kind_of(n) == "sidecar"]
        for name in listing.get(_stem(path.name), []):
            kind = kind_of(name)
            if kind == "sidecar":
                found.append((name, SIDECAR))
            elif kind == "video" and kind_of(path.name) in LIVE_STILLS:
                found.append((name, MOVIE))
        return [
            (path.parent / name, what)
            for name, what in sorted(set(found))
            if path in self.owners(path.parent / name, what)
        ]

    def owners(self, follower: Path, what: str) -> list[Path]:
        """The files ``follower`` exists for: every file of the name it carries before its
        extension (``name.ext.xmp``: ``name.ext``, in any case or Unicode form); else every
        file of its stem that is not itself a sidecar or movie, in a format dedup reads or
        not (a ``.CRW`` keeps its ``.xmp``); a movie's are the JPEG and HEIC stills."""
        listing = self._listing(follower.parent)
        inner = os.path.splitext(follower.name)[0]
        if what == SIDECAR:
            named = [n for n in listing.get(_stem(inner), []) if _folded(n) == _folded(inner)]
            if named:
                return [follower.parent / n for n in sorted(named)]
        names = listing.get(_stem(follower.name), [])
        if what == MOVIE:
            owners = [n for n in names if kind_of(n) in LIVE_STILLS]
        else:
            owners = [n for n in names if kind_of(n) not in ("sidecar", "video")]
        return [follower.parent / n for n in sorted(owners)]
