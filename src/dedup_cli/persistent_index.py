"""The approximate index of a collection, kept beside its database and brought up to date
instead of rebuilt.

Building the IVF index of a million vectors (k-means, then adding every row) is a minute of
a 2-core CPU; most of it would be repeated on every ``find`` although only a few files
changed. The index is saved next to the database (``image_database.db.<model>.ivf``) with
file ids as labels; the next search loads it and makes it hold exactly the current files:
vectors written since it was saved (new or re-embedded files, found by their write sequence
number) are replaced, files gone are removed, files it lacks are added. It is trained anew
when the collection has grown (or shrunk) four-fold since its cells were trained.

The database records the sequence number the file covers, the rows it was trained on and
the file's size and mtime. A file that does not match (replaced, half written, from another
database) or cannot be read is rebuilt, never trusted; one that cannot be written is
reported and the search goes on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dedup_cli.ann import _faiss, add_rows, build_index, remove_ids
from dedup_cli.store import Store

REBUILD_GROWTH = 4  # retrain once the collection is 4x larger or smaller than trained for


@dataclass
class IndexReport:
    """What happened to the kept index in this search, for the JSON document."""

    path: str
    status: str = "built"  # built | updated | rebuilt
    reason: str | None = None  # why it was (re)built, or why it could not be saved
    added: int = 0
    removed: int = 0
    saved: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "added": self.added,
            "removed": self.removed,
            "saved": self.saved,
        }


def index_path(db_path: Path, model_key: str) -> Path:
    """``<database>.<model>.ivf`` beside the database."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model_key)
    return db_path.with_name(f"{db_path.name}.{safe}.ivf")


def _keys(model_id: int) -> dict[str, str]:
    return {k: f"ann:{model_id}:{k}" for k in ("seq", "trained", "size", "mtime_ns")}


def stored_ids(index: Any) -> np.ndarray:
    """Every id an IVF index holds (one pass over its inverted lists)."""
    faiss = _faiss()
    lists = index.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(cell), lists.list_size(cell)).copy()
        for cell in range(index.nlist)
        if lists.list_size(cell)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _load(store: Store, model_id: int, path: Path, dimension: int) -> tuple[Any, int, int, str]:
    """(index or None, seq it covers, rows trained on, why it is not usable)."""
    keys = _keys(model_id)
    recorded = {k: store.counter(name) for k, name in keys.items()}
    if not path.exists():
        return None, 0, 0, "no index yet"
    if None in recorded.values():
        return None, 0, 0, "the database has no record of the index file"
    info = path.stat()
    if (info.st_size, info.st_mtime_ns) != (recorded["size"], recorded["mtime_ns"]):
        return None, 0, 0, "the index file is not the one this database saved"
    faiss = _faiss()
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        return None, 0, 0, f"the index file cannot be read ({str(exc).splitlines()[0]})"
    if not isinstance(index, faiss.IndexIVF):
        return None, 0, 0, "the index file holds another kind of index"
    if index.d != dimension or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        return None, 0, 0, "the index file is for other vectors"
    return index, int(recorded["seq"] or 0), int(recorded["trained"] or 0), ""


def _save(store: Store, model_id: int, path: Path, index: Any, seq: int, trained: int) -> None:
    faiss = _faiss()
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        faiss.write_index(index, str(temporary))
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


def current_index(
    store: Store,
    model_id: int,
    model_key: str,
    ids: np.ndarray,
    seqs: np.ndarray,
    matrix: np.ndarray,
) -> tuple[Any, IndexReport]:
    """The kept index, updated to hold exactly these files (row k: file ``ids[k]``, vector
    ``matrix[k]`` written at ``seqs[k]``), or a new one; saved again beside the database."""
    path = index_path(store.path, model_key)
    report = IndexReport(path=str(path))
    n = len(ids)
    index, seq, trained, reason = _load(store, model_id, path, matrix.shape[1])
    if index is not None and not (trained / REBUILD_GROWTH <= n <= trained * REBUILD_GROWTH):
        index, reason = None, f"the collection changed size ({trained} -> {n} files)"
    if index is None:
        index = build_index(matrix, ids)
        trained = n
        report.status = "built" if reason == "no index yet" else "rebuilt"
        report.reason = reason
        report.added = n
    else:
        report.status = "updated"
        held = stored_ids(index)
        changed = seqs > seq
        # Out: files gone, and old vectors of re-embedded files. In: those and missing files.
        gone = ~np.isin(held, ids)
        missing = ~np.isin(ids, held)
        report.removed = remove_ids(index, np.concatenate([held[gone], ids[changed & ~missing]]))
        todo = changed | missing
        add_rows(index, matrix[todo], ids[todo])
        report.added = int(todo.sum())
    covered = int(seqs.max()) if n else seq
    if report.status != "updated" or report.added or report.removed or covered != seq:
        try:
            _save(store, model_id, path, index, covered, trained)
            report.saved = True
        except (OSError, RuntimeError) as exc:
            report.reason = f"index not saved: {str(exc).splitlines()[0]}"
    else:
        report.saved = True  # nothing changed: the file on disk is current
    return index, report
