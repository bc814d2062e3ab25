"""Walk photo folders and list image files with the facts needed for change detection."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dedup_cli.errors import UsageError
from dedup_cli.media.companions import RAW_EXTENSIONS

IMAGE_EXTENSIONS = (
    frozenset(
        {
            ".jpg",
            ".jpeg",
            ".png",
            ".webp",
            ".bmp",
            ".tif",
            ".tiff",
            ".gif",
            ".heic",
            ".heif",
            ".avif",
        }
    )
    | RAW_EXTENSIONS
)  # a RAW is seen through its embedded preview (media.raw)
# The database and SQLite's side files are never scanned, whatever their names.
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """An image file found under a root; ``path`` is relative to the root, POSIX style."""

    root: Path
    path: str
    size: int
    mtime_ns: int

    @property
    def absolute(self) -> Path:
        return self.root / self.path


@dataclass
class ScanResult:
    """The files found, and what was passed over and why (counted, never silent)."""

    files: list[ScannedFile] = field(default_factory=list)
    skipped_symlinks: int = 0
    skipped_hidden: int = 0
    skipped_excluded: int = 0  # files and folders matching an ``--exclude`` pattern
    errors: list[tuple[str, str]] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan(
    roots: Path | Iterable[Path],
    *,
    include_hidden: bool = False,
    exclude: Iterable[Path] = (),
    skip: Sequence[str] = (),
) -> ScanResult:
    """Recursively list image files under each root, sorted by path.

    ``skip``: glob patterns (``--exclude``, as czkawka's ``-e``) matched against each file's
    and folder's path relative to its root and against its name alone: ``backup``,
    ``2020/raw``, ``*.png``, ``*/thumbs/*``. A matching folder is not entered. Counted in
    ``skipped_excluded``.

    Symlinks are never followed (so a link loop cannot trap the walk, and a removal can never
    reach outside the root through one); they are counted in ``skipped_symlinks``. Hidden
    files and folders (a leading dot) are skipped unless ``include_hidden``. Names that are
    not valid UTF-8 cannot be stored in the database: they are reported in ``errors``.
    """
    root_list = [roots] if isinstance(roots, Path) else list(roots)
    excluded = {os.path.realpath(p) for base in exclude for p in _db_family(Path(base))}
    result = ScanResult()
    for root in root_list:
        if not root.is_dir():
            raise UsageError(f"{root} is not a folder")
        _walk(root.resolve(), "", result, include_hidden, excluded, tuple(skip))
    result.files.sort(key=lambda f: (str(f.root), f.path))
    return result


def _db_family(db: Path) -> list[str]:
    return [str(db) + suffix for suffix in DB_SUFFIXES]


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """Whether a relative path (or its last name) matches one of the glob ``patterns``,
    ignoring case: ``-e '*.png'`` means ``IMG.PNG`` too, and ``-e backup`` ``Backup/``
    (leaving out more is the safe side: a file left out is never planned)."""
    path = relative.casefold()
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        wanted = pattern.strip("/").casefold()
        if fnmatch.fnmatchcase(path, wanted) or fnmatch.fnmatchcase(name, wanted):
            return True
    return False


def _walk(
    root: Path,
    rel: str,
    result: ScanResult,
    include_hidden: bool,
    excluded: set[str],
    skip: tuple[str, ...] = (),
) -> None:
    """Depth first, each folder's entries by name, with an explicit stack (no recursion: a
    tree thousands of folders deep must not exhaust Python's recursion limit). The order in
    which files and errors are found is that of the recursive walk it replaces."""
    stack: list[Iterator[os.DirEntry[str]]] = []
    rels: list[str] = []
    entries = _list_folder(root, rel, result)
    if entries is None:
        return
    stack.append(entries)
    rels.append(rel)
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            rels.pop()
            continue
        parent = rels[-1]
        name = entry.name
        child = f"{parent}/{name}" if parent else name
        if name.startswith(".") and not include_hidden:
            result.skipped_hidden += 1
            continue
        if skip and matches(child, skip):
            result.skipped_excluded += 1
            continue
        try:
            if entry.is_symlink():
                if is_image_name(name) or _leads_to_folder(entry):
                    result.skipped_symlinks += 1
                continue
            is_folder = entry.is_dir(follow_symlinks=False)
            if not _is_utf8(name):
                # Paths are stored as UTF-8 text: report such a name (escaped), leave it alone.
                if is_folder or is_image_name(name):
                    result.errors.append((_printable(child), "name is not valid UTF-8"))
                continue
            if is_folder:
                inner = _list_folder(root, child, result)
                if inner is not None:
                    stack.append(inner)
                    rels.append(child)
                continue
            if not is_image_name(name) or entry.path in excluded:
                continue
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            result.errors.append((_printable(child), exc.strerror or str(exc)))
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        result.files.append(ScannedFile(root, child, info.st_size, info.st_mtime_ns))


def _list_folder(root: Path, rel: str, result: ScanResult) -> Iterator[os.DirEntry[str]] | None:
    """The entries of ``root/rel`` sorted by name, or None (and an error counted) when the
    folder vanished or cannot be read."""
    folder = root / rel if rel else root
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError as exc:  # vanished or unreadable folder: count it, go on
        result.errors.append((rel or ".", exc.strerror or str(exc)))
        return None
    return iter(sorted(entries, key=lambda e: e.name))


def _leads_to_folder(link: os.DirEntry[str]) -> bool:
    """Whether a symlink points to a folder; a dangling link or a loop leads nowhere (asking
    must not turn a loop into an error: the link is skipped either way)."""
    try:
        return link.is_dir()
    except OSError:
        return False


def _is_utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (Python carries them as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    """``path`` with undecodable bytes escaped (``caf\\xe9.jpg``), safe to print and store."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
