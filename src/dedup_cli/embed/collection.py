"""A scanned folder as the database knows it: file facts in columns, vectors in one matrix.

At a million files one Python object per file costs hundreds of megabytes, and a float32
matrix of 1M x 512 two gigabytes. ``FileTable`` keeps the facts as arrays and builds a
``FileInfo`` only when one is asked for (the files of candidate pairs and groups), and a
large collection is held in float16 (inner products of unit rows move by < 0.002).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, overload

import numpy as np

from dedup_cli.core.files import FileInfo
from dedup_cli.media.scan import ScanResult
from dedup_cli.models import ModelSpec
from dedup_cli.store import Store
from dedup_cli.store.database import StoredCollection

# Above this many matrix bytes in float32 the collection is held in float16: 256 MB is about
# 125,000 x 512 or 50,000 x 1280. Below it every similarity is computed from float32.
HALF_PRECISION_ABOVE_BYTES = 256 * 1024 * 1024


def held_in_half(rows: int, dimension: int) -> bool:
    """Whether a collection of ``rows`` vectors is held in float16 (``HALF_PRECISION_ABOVE_
    BYTES``); decided over every folder of a run together, so their matrices stack."""
    return rows * dimension * 4 > HALF_PRECISION_ABOVE_BYTES


class _Rows(Sequence[FileInfo]):
    """A sequence of files that builds each ``FileInfo`` on access (``_row``)."""

    def _row(self, k: int) -> FileInfo:
        raise NotImplementedError

    @overload
    def __getitem__(self, k: int) -> FileInfo: ...

    @overload
    def __getitem__(self, k: slice) -> list[FileInfo]: ...

    def __getitem__(self, k: int | slice) -> FileInfo | list[FileInfo]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        return self._row(k)

    def __iter__(self) -> Iterator[FileInfo]:
        return (self._row(k) for k in range(len(self)))


class FileTable(_Rows):
    """The files of a collection as columns; ``table[k]`` is the ``FileInfo`` of row k."""

    def __init__(self, root: Path, stored: StoredCollection) -> None:
        self.root = root
        self.paths = stored.paths
        self.content_hashes = stored.content_hashes
        self.ids = stored.ids
        self.seqs = stored.seqs
        self._sizes = stored.sizes
        self._mtimes = stored.mtimes_ns
        self._widths = stored.widths
        self._heights = stored.heights

    def __len__(self) -> int:
        return len(self.paths)

    def _row(self, k: int) -> FileInfo:
        path = self.paths[k]
        width, height = int(self._widths[k]), int(self._heights[k])
        return FileInfo(
            path=path,
            absolute=self.root / path,
            size=int(self._sizes[k]),
            mtime_ns=int(self._mtimes[k]),
            content_hash=self.content_hashes[k],
            width=None if width < 0 else width,
            height=None if height < 0 else height,
            root=self.root,
        )


class Collection(NamedTuple):
    """The scanned files of a root as the database knows them."""

    files: FileTable  # readable, with an embedding of the model
    matrix: np.ndarray  # row k is the unit vector of files[k] (float32, or float16 if large)
    unreadable: list[tuple[str, str]]  # (path, error) of every scanned file that cannot be read
    model_id: int | None  # the model's id in the store; None: nothing embedded yet


def empty_stored(dimension: int) -> StoredCollection:
    none = np.zeros(0, dtype=np.int64)
    return StoredCollection(
        [],
        [],
        none,
        none,
        none,
        none.astype(np.int32),
        none.astype(np.int32),
        none,
        np.zeros((0, dimension), dtype=np.float32),
    )


def load_collection(
    root: Path, store: Store, spec: ModelSpec, found: ScanResult, *, half: bool | None = None
) -> Collection:
    """The readable scanned files with an embedding of ``spec``, their vectors, and the
    scanned files known to be unreadable. Only scanned paths are used: database rows are
    untrusted. ``half``: float16 matrix (None: when the float32 one would pass
    ``HALF_PRECISION_ABOVE_BYTES``)."""
    present = {f.path for f in found.files}
    unreadable = store.unreadable(present)
    known = store.model_id(spec.key)
    if known is None:
        nothing = empty_stored(spec.dimension)
        return Collection(FileTable(root, nothing), nothing.matrix, unreadable, None)
    model_id, dimension = known
    if half is None:
        half = held_in_half(len(present), dimension)
    stored = store.read_collection(model_id, dimension, present, np.float16 if half else np.float32)
    return Collection(FileTable(root, stored), stored.matrix, unreadable, model_id)


class JoinedFiles(_Rows):
    """The tables of several folders as one row space (``find A B``): row k of the join is
    row ``k - offset`` of the folder it falls in. Each ``FileInfo`` keeps its own folder
    (``FileInfo.root``) and its path relative to it, so nothing is renamed or moved between
    databases; the content hashes are read through to the tables, which re-derivation
    corrects in place."""

    def __init__(self, tables: Sequence[FileTable]) -> None:
        self.tables = list(tables)
        self.offsets = np.cumsum([0, *(len(t) for t in self.tables)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def content_hashes(self) -> list[str | None]:
        return [digest for table in self.tables for digest in table.content_hashes]

    def part(self, k: int) -> int:
        """The index of the folder row ``k`` belongs to."""
        return int(np.searchsorted(self.offsets, k, side="right")) - 1

    def _row(self, k: int) -> FileInfo:
        part = self.part(k)
        return self.tables[part][k - int(self.offsets[part])]
