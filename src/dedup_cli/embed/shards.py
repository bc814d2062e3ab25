"""Parquet shards of hashed files: what ``hash --engine ray --export DIR`` writes from the
workers, and what ``dedup import DIR`` merges into a folder's database.

For a collection whose vectors the driver should not stream through one process, the
workers write (path, facts, vector) rows straight to shared storage; the import then writes
them to SQLite in batches, as ``hash`` would have. Shards are input from elsewhere, so every
row is checked before it is written: its path must name a file inside the root that still
has the size and modification time the shard recorded (a file changed since is left for
``hash``), and its vector must be finite and of the model's dimension.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from dedup_cli.errors import UsageError
from dedup_cli.store import Store
from dedup_cli.store.database import FileFacts

MANIFEST = "dedup-export.json"  # beside the shards: the model, the root, the format
FORMAT = 1
IMPORT_BATCH = 1024  # rows written per transaction
NEEDS_PYARROW = "reading and writing shards needs pyarrow: pip install 'dedup-cli[ray]'"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise UsageError(NEEDS_PYARROW) from exc
    return pyarrow


def as_table(batch: dict[str, np.ndarray]) -> Any:
    """One batch of the embedding actors' output (``distributed.embedding.rows_of``) as an
    Arrow table of plain types: nullable facts, the vector a fixed-size list of float32
    (null where the file did not decode). Files a worker could not find are left out: no
    fact about them is known."""
    pa = _pyarrow()
    keep = ~np.asarray(batch["missing"], dtype=bool)
    vectors = np.asarray(batch["vector"], dtype=np.float32)[keep]
    has_vector = np.asarray(batch["has_vector"], dtype=bool)[keep]
    dimension = vectors.shape[1] if vectors.ndim == 2 else 0

    def text(key: str) -> Any:
        return pa.array([str(v) or None for v in batch[key][keep]], pa.string())

    def blob(key: str) -> Any:
        given = np.asarray(batch[f"has_{key}"], dtype=bool)[keep]
        values = [bytes(v) if g else None for v, g in zip(batch[key][keep], given)]
        return pa.array(values, pa.binary())

    def number(key: str) -> Any:
        values = np.asarray(batch[key], dtype=np.int64)[keep]
        return pa.array([int(v) if v >= 0 else None for v in values], pa.int64())

    flat = pa.array(vectors.reshape(-1), pa.float32())
    vector = pa.FixedSizeListArray.from_arrays(flat, dimension)
    vector = pa.array(
        [row if h else None for row, h in zip(vector.to_pylist(), has_vector)],
        pa.list_(pa.float32(), dimension),
    )
    return pa.table(
        {
            "path": text("path"),
            "size": pa.array(np.asarray(batch["size"], np.int64)[keep], pa.int64()),
            "mtime_ns": pa.array(np.asarray(batch["mtime_ns"], np.int64)[keep], pa.int64()),
            "content_hash": text("content_hash"),
            "width": number("width"),
            "height": number("height"),
            "error": text("error"),
            "thumbnail": blob("thumbnail"),
            "regions": blob("regions"),
            "vector": vector,
        }
    )


def write_manifest(folder: Path, root: Path, model: str, preprocessing: str) -> int:
    """Record what the shards in ``folder`` hold, once the workers are done (a folder
    without it is an export that did not finish); returns the rows written."""
    pa = _pyarrow()
    rows, dimension = 0, None
    for shard in sorted(folder.rglob("*.parquet")):
        meta = pa.parquet.ParquetFile(shard)
        rows += meta.metadata.num_rows
        dimension = meta.schema_arrow.field("vector").type.list_size
    document = {
        "format": FORMAT,
        "root": str(root),
        "model": model,
        "dimension": dimension,
        "preprocessing": json.loads(preprocessing),
        "rows": rows,
    }
    (folder / MANIFEST).write_text(json.dumps(document, indent=2) + "\n")
    return rows


@dataclass
class ImportReport:
    """What ``dedup import`` did, for the summary and ``--json``."""

    shards: str
    root: str
    database: str
    model: str
    imported: int = 0  # rows written (with or without a vector: unreadable files too)
    unchanged: int = 0  # already in the database with the same size, time and a vector
    changed: int = 0  # the file is gone or changed since the export: left for ``hash``
    damaged: list[tuple[str, str]] = field(default_factory=list)  # rows refused, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "root": self.root,
            "database": self.database,
            "model": self.model,
            "imported": self.imported,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "damaged": [{"path": p, "why": w} for p, w in self.damaged],
        }


def read_manifest(folder: Path) -> dict[str, Any]:
    """The export's manifest, checked; one clear error where it is missing or foreign."""
    path = folder / MANIFEST
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{folder} has no {MANIFEST}: not a finished export of dedup hash --export"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UsageError(f"{path} is not a dedup export of format {FORMAT}")
    if not isinstance(document.get("model"), str) or not isinstance(document.get("root"), str):
        raise UsageError(f"{path} names no model or root")
    dimension = document.get("dimension")
    if type(dimension) is not int or dimension < 1:
        raise UsageError(f"{path} names no vector dimension (an export with no vectors?)")
    return document


def import_shards(folder: Path, store: Store, root: Path | None = None) -> ImportReport:
    """Merge an export's rows into ``store``, the database of ``root`` (default: the root
    the export was made from). Returns what was written and what was refused."""
    from dedup_cli.models import get_spec

    manifest = read_manifest(folder)
    spec = get_spec(manifest["model"])
    dimension = int(manifest["dimension"])
    if manifest.get("preprocessing") != json.loads(spec.preprocessing.to_json()):
        raise UsageError(
            f"{folder} was exported with another preprocessing than this version's "
            f"{spec.key}: hash again rather than import"
        )
    root = (root or Path(manifest["root"])).resolve()
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder (give the photos' folder with --root)")
    report = ImportReport(str(folder), str(root), str(store.path), spec.key)
    known = store.model_id(spec.key)
    states = store.file_states(known[0] if known else None)
    model_id: int | None = None
    for rows in _rows(folder):
        facts: list[FileFacts] = []
        vectors: dict[str, np.ndarray] = {}
        for row in rows:
            fact, vector, why = _checked(row, root, dimension)
            if why is not None:
                if why == CHANGED:
                    report.changed += 1
                else:
                    report.damaged.append((str(row.get("path")), why))
                continue
            assert fact is not None
            state = states.get(fact.path)
            if (
                state is not None
                and state.size == fact.size
                and state.mtime_ns == fact.mtime_ns
                and (state.has_embedding or state.error is not None)
            ):
                report.unchanged += 1
                continue
            facts.append(fact)
            if vector is not None:
                vectors[fact.path] = vector
        if not facts:
            continue
        if model_id is None:
            model_id = store.ensure_model(spec.key, dimension, spec.preprocessing.to_json())
        store.write_batch(model_id, facts, vectors)
        report.imported += len(facts)
    return report


CHANGED = "changed since the export"
UNIT_TOLERANCE = 1e-3  # float32 rounding of a unit vector, with room to spare
MAX_SIDE = 1 << 20  # pixels a side: far beyond any camera, within SQLite's integers
TYPES = {  # the type of each optional fact; None is allowed for all
    "content_hash": str,
    "width": int,
    "height": int,
    "error": str,
    "thumbnail": bytes,
    "regions": bytes,
}


def _rows(folder: Path) -> Iterator[list[dict[str, Any]]]:
    pa = _pyarrow()
    shards = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    if not shards:
        raise UsageError(f"{folder} holds no .parquet shards")
    for shard in shards:
        try:
            parquet = pa.parquet.ParquetFile(shard)
            for batch in parquet.iter_batches(batch_size=IMPORT_BATCH):
                yield batch.to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"cannot read shard {shard}: {exc}") from None


def _checked(
    row: dict[str, Any], root: Path, dimension: int
) -> tuple[FileFacts | None, np.ndarray | None, str | None]:
    """(facts, vector, None) for a row that may be written, else (None, None, why)."""
    path = row.get("path")
    if not isinstance(path, str) or not path or "\x00" in path:
        return None, None, "no path"
    written = PurePosixPath(path)
    if written.is_absolute() or ".." in written.parts or "\\" in path:
        return None, None, "a path outside the root"
    if written.as_posix() != path or "." in path.split("/"):
        # ``./a``, ``a//b``, ``a/`` name a file the scan names otherwise: a second row for it.
        return None, None, "a path not written as the scan writes it"
    size, mtime = row.get("size"), row.get("mtime_ns")
    if not isinstance(size, int) or not isinstance(mtime, int):
        return None, None, "no size or time"
    if os.path.realpath(root / path) != str(root / path):
        return None, None, "a path through a symbolic link"
    try:
        found = os.stat(root / path, follow_symlinks=False)
    except OSError:
        return None, None, CHANGED
    if not stat.S_ISREG(found.st_mode) or found.st_size != size or found.st_mtime_ns != mtime:
        return None, None, CHANGED
    vector = None
    values = row.get("vector")
    if values is not None:
        if len(values) != dimension or not all(
            isinstance(v, float) and math.isfinite(v) for v in values
        ):
            return None, None, f"not a vector of {dimension} finite numbers"
        with np.errstate(over="ignore"):
            vector = np.asarray(values, dtype=np.float32)
        # Every model's vectors have length 1: a longer one would outrank true neighbours
        # in the bounded search, and one too large for float32 would be infinite.
        length = float(np.linalg.norm(vector.astype(np.float64)))
        if not math.isfinite(length) or abs(length - 1.0) > UNIT_TOLERANCE:
            return None, None, "a vector whose length is not 1"
    error = row.get("error")
    if vector is None and error is None:
        return None, None, "neither a vector nor an error"
    for key, kind in TYPES.items():
        if row.get(key) is not None and type(row[key]) is not kind:
            return None, None, f"a {key} that is not {kind.__name__}"
    for key in ("width", "height"):
        if row.get(key) is not None and not 0 < row[key] <= MAX_SIDE:
            return None, None, f"a {key} of {row[key]} pixels"
    facts = FileFacts(
        path,
        size,
        mtime,
        row.get("content_hash"),
        row.get("width"),
        row.get("height"),
        error,
        row.get("thumbnail"),
        row.get("regions"),
    )
    return facts, vector, None
