"""The cells of the approximate search, kept beside the database and brought up to date
instead of recomputed.

Training the cells of a million vectors (k-means on a 256,000-row sample) is half a minute
of a 2-core CPU, and assigning every row to its cell another; both would be repeated on every
``find`` although only a few files changed. The centroids and the cell of every file (by
file id) are saved next to the database (``image_database.db.<model>.ann.npz``). The next
search loads them and brings them up to date: files whose vectors were written since (new or
re-embedded, found by their write sequence number) and files it lacks are assigned, files
gone are dropped. The centroids are trained anew when the collection has grown (or shrunk)
four-fold since.

The database records the sequence number the file covers, the rows it was trained on and
the file's size and mtime. A file that does not match (replaced, half written, from another
database) or cannot be read is rebuilt, never trusted; one that cannot be written is
reported and the search goes on.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.search.cells import DEFAULT_NPROBE, nearest_cells, new_only_probes, train_cells
from dedup_cli.store import Store

REBUILD_GROWTH = 4  # retrain once the collection is 4x larger or smaller than trained for


@dataclass
class IndexReport:
    """What happened to the kept cells in this search, for the JSON document."""

    path: str
    status: str = "built"  # built | updated | rebuilt
    reason: str | None = None  # why it was (re)built, or why it could not be saved
    assigned: int = 0  # rows whose cells were computed in this run
    removed: int = 0  # kept files no longer in the collection
    saved: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "assigned": self.assigned,
            "removed": self.removed,
            "saved": self.saved,
        }


@dataclass
class Cells:
    """Where each row of the collection lives, and what the queries probe."""

    centroids: np.ndarray  # nlist x dim, float32
    cells: np.ndarray  # int32 per row of the collection: its nearest cell
    query_rows: np.ndarray  # the rows searched (all, or the new ones)
    probes: np.ndarray  # int32 len(query_rows) x nprobe: cells each query row looks in
    report: IndexReport


def index_path(db_path: Path, model_key: str) -> Path:
    """``<database>.<model>.ann.npz`` beside the database."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model_key)
    return db_path.with_name(f"{db_path.name}.{safe}.ann.npz")


def _keys(model_id: int) -> dict[str, str]:
    return {k: f"ann:{model_id}:{k}" for k in ("seq", "trained", "size", "mtime_ns")}


def _load(
    store: Store, model_id: int, path: Path, dimension: int
) -> tuple[dict[str, np.ndarray] | None, int, int, str]:
    """(kept arrays or None, seq they cover, rows trained on, why they are not usable)."""
    recorded = {k: store.counter(name) for k, name in _keys(model_id).items()}
    if not path.exists():
        return None, 0, 0, "no index yet"
    if None in recorded.values():
        return None, 0, 0, "the database has no record of the index file"
    info = path.stat()
    if (info.st_size, info.st_mtime_ns) != (recorded["size"], recorded["mtime_ns"]):
        return None, 0, 0, "the index file is not the one this database saved"
    try:
        with np.load(path, allow_pickle=False) as data:
            kept = {k: data[k] for k in ("centroids", "ids", "cells")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return None, 0, 0, f"the index file cannot be read ({exc})"
    centroids, ids, cells = kept["centroids"], kept["ids"], kept["cells"]
    if (
        centroids.ndim != 2
        or centroids.shape[1] != dimension
        or ids.shape != cells.shape
        or (len(cells) and not 0 <= int(cells.min()) <= int(cells.max()) < len(centroids))
    ):
        return None, 0, 0, "the index file is for other vectors"
    return kept, int(recorded["seq"] or 0), int(recorded["trained"] or 0), ""


def _save(
    store: Store,
    model_id: int,
    path: Path,
    arrays: dict[str, np.ndarray],
    seq: int,
    trained: int,
) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as out:
            np.savez(out, centroids=arrays["centroids"], ids=arrays["ids"], cells=arrays["cells"])
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    info = path.stat()
    keys = _keys(model_id)
    store.set_counters(
        {
            keys["seq"]: seq,
            keys["trained"]: trained,
            keys["size"]: info.st_size,
            keys["mtime_ns"]: info.st_mtime_ns,
        }
    )


def current_cells(
    store: Store,
    model_id: int,
    model_key: str,
    ids: np.ndarray,
    seqs: np.ndarray,
    matrix: np.ndarray,
    query_rows: np.ndarray | None = None,
    *,
    nprobe: int = DEFAULT_NPROBE,
) -> Cells:
    """The cells of these files (row k: file ``ids[k]``, vector ``matrix[k]`` written at
    ``seqs[k]``) from the kept ones, brought up to date and saved again, or trained anew;
    with the probes of ``query_rows`` (None: every row)."""
    path = index_path(store.path, model_key)
    report = IndexReport(path=str(path))
    n = len(ids)
    kept, seq, trained, reason = _load(store, model_id, path, matrix.shape[1])
    if kept is not None and not (trained / REBUILD_GROWTH <= n <= trained * REBUILD_GROWTH):
        kept, reason = None, f"the collection changed size ({trained} -> {n} files)"
    cells = np.full(n, -1, dtype=np.int32)
    if kept is None:
        centroids = train_cells(matrix)
        trained = n
        report.status = "built" if reason == "no index yet" else "rebuilt"
        report.reason = reason
    else:
        centroids = kept["centroids"]
        report.status = "updated"
        position = rows_of_ids(kept["ids"], ids)  # where each current file was kept
        known = (position >= 0) & (seqs <= seq)  # re-embedded files are assigned again
        cells[known] = kept["cells"][position[known]]
        report.removed = len(kept["ids"]) - int((position >= 0).sum())
    queries = np.arange(n, dtype=np.int64) if query_rows is None else query_rows
    if query_rows is None:
        probes = nearest_cells(centroids, matrix, nprobe)
    else:
        wide = max(nprobe, new_only_probes(len(queries), n, len(centroids)))
        probes = nearest_cells(centroids, matrix[queries], wide)
    moved = not np.array_equal(cells[queries], probes[:, 0])  # new, re-embedded or retrained
    cells[queries] = probes[:, 0]
    todo = np.flatnonzero(cells < 0)
    if len(todo):
        cells[todo] = nearest_cells(centroids, matrix[todo], 1)[:, 0]
    report.assigned = len(queries) + len(todo)
    covered = int(seqs.max()) if n else seq
    if kept is None or moved or len(todo) or report.removed or covered != seq:
        arrays = {"centroids": centroids, "ids": ids, "cells": cells}
        try:
            _save(store, model_id, path, arrays, covered, trained)
            report.saved = True
        except OSError as exc:
            report.reason = f"index not saved: {exc}"
    else:
        report.saved = True  # nothing changed: the file on disk is current
    return Cells(centroids, cells, queries, probes, report)


def rows_of_ids(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The row of each wanted id in ``ids``, -1 where it is not there."""
    if len(ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    position = np.minimum(np.searchsorted(ordered, wanted), len(ids) - 1)
    hit = ordered[position] == wanted
    return np.where(hit, order[position], -1).astype(np.int64)
