"""Repository functions over the SQLite database (SQLAlchemy Core for the bulk paths).

Embeddings are loaded straight into one contiguous float32 matrix; rows are written batch by
batch in their own transactions, so an interrupted run keeps everything finished before it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from dedup_cli.errors import StoreError
from dedup_cli.store.migrations import migrate

DEFAULT_DB_NAME = "image_database.db"
# How long a second dedup process waits for a lock before giving up with a message
# (``DEDUP_LOCK_TIMEOUT`` seconds overrides it).
BUSY_TIMEOUT_MS = 10_000


def busy_timeout_ms() -> int:
    try:
        return int(float(os.environ["DEDUP_LOCK_TIMEOUT"]) * 1000)
    except (KeyError, ValueError):
        return BUSY_TIMEOUT_MS


def default_db_path(root: Path) -> Path:
    """``image_database.db`` in the photo folder, as the original tool did."""
    return root / DEFAULT_DB_NAME


@dataclass(frozen=True, slots=True)
class FileState:
    """What the database knows of one file, for change detection."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    error: str | None
    has_embedding: bool


@dataclass(frozen=True, slots=True)
class FileFacts:
    """A file's facts after decoding, ready to be written."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    error: str | None
    thumbnail: bytes | None
    regions: bytes | None = None  # ``media.regions.pack``; None: not looked for


@dataclass(frozen=True)
class StoredCollection:
    """A model's vectors and the facts of their files, column by column (row k: one file)."""

    paths: list[str]
    content_hashes: list[str | None]
    ids: np.ndarray  # file ids, int64
    sizes: np.ndarray  # int64
    mtimes_ns: np.ndarray  # int64
    widths: np.ndarray  # int32, -1 unknown
    heights: np.ndarray  # int32, -1 unknown
    seqs: np.ndarray  # int64: the write sequence number of each vector
    matrix: np.ndarray  # N x dimension


EMBEDDING_SEQ = "embedding_seq"


def _next_embedding_seq(conn: Any) -> int:
    """The next write sequence number; called inside the batch's write transaction."""
    row = conn.execute(
        text(
            "INSERT INTO counters (name, value) VALUES (:n, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value"
        ),
        {"n": EMBEDDING_SEQ},
    ).first()
    return int(row.value)


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    # Nothing stored in a database may run as a side effect of our own statements: SQL
    # functions in views, triggers and defaults are refused (``refuse_foreign_schema`` also
    # refuses any trigger or view before the first statement that could fire one).
    cursor.execute("PRAGMA trusted_schema = OFF")
    cursor.close()


_INTERNAL_TABLES = (
    "sqlite_sequence",
    "sqlite_stat1",
    "sqlite_stat2",
    "sqlite_stat3",
    "sqlite_stat4",
)
# Clauses that make SQLite act on its own when a row is written: a CHECK that fails our
# journal write half-way through, an ON CONFLICT that silently replaces rows.
_ACTIVE_CLAUSES = re.compile(r"\b(CHECK\s*\(|ON\s+CONFLICT|GENERATED\s+ALWAYS|AS\s*\()", re.I)


def _describe(raw: sqlite3.Connection, tables: Iterable[str]) -> dict[str, Any]:
    """What each table does, as SQLite reports it: columns with their defaults and hidden
    (generated) flags, foreign keys with their actions, indexes with their columns."""
    described: dict[str, Any] = {}
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        columns = {
            r[1]: (str(r[4]).strip("'\"") if r[4] is not None else None, r[3], r[6])
            for r in raw.execute(f"PRAGMA table_xinfo({quoted})")
        }
        keys = {
            (r[2], r[3], r[4], r[5], r[6])
            for r in raw.execute(f"PRAGMA foreign_key_list({quoted})")
        }
        indexes = set()
        for r in raw.execute(f"PRAGMA index_list({quoted})"):
            name_quoted = '"' + str(r[1]).replace('"', '""') + '"'
            parts = tuple((c[1], c[2]) for c in raw.execute(f"PRAGMA index_info({name_quoted})"))
            indexes.add((bool(r[2]), bool(r[4]), parts))  # unique, partial, (cid, column)...
        described[table] = {"columns": columns, "keys": keys, "indexes": indexes}
    return described


_expected: dict[str, Any] | None = None


def _expected_schema() -> dict[str, Any]:
    """The schema this version creates, described the same way (built once, in memory)."""
    global _expected
    if _expected is None:
        from dedup_cli.store.schema import Base

        engine = create_engine("sqlite://")
        Base.metadata.create_all(engine)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            _expected = _describe(raw, Base.metadata.tables)
        engine.dispose()
    return _expected


def refuse_foreign_schema(conn: Any, path: Path) -> None:
    """A database is a cache that may come from anyone. Anything in its schema that acts by
    itself when dedup reads or writes (a trigger, a view, a CHECK constraint, a foreign key
    that cascades where ours do not, a generated column, a default that forges a value, an
    index that makes a journal write fail) could rewrite or drop journal rows or stop a run
    half-way. Such a database is refused, before anything else runs on it; only tables,
    columns, keys and indexes that this version of dedup creates are accepted (a subset:
    an older schema is migrated afterwards)."""
    rows = conn.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    ).fetchall()
    expected = _expected_schema()
    problems = [f"{kind} {name!r}" for kind, name, *_ in rows if kind in ("trigger", "view")]
    tables = [name for kind, name, *_ in rows if kind == "table" and name not in _INTERNAL_TABLES]
    problems += [f"table {name!r}" for name in tables if name not in expected]
    known = [name for name in tables if name in expected]
    for kind, name, _table, sql in rows:
        if kind == "table" and name in expected and sql and _ACTIVE_CLAUSES.search(sql):
            problems.append(f"a constraint or generated column in table {name!r}")
    raw = conn.connection.driver_connection
    for table, found in _describe(raw, known).items():
        want = expected[table]
        odd_columns = [
            c for c, facts in found["columns"].items() if want["columns"].get(c) != facts
        ]
        if odd_columns:
            problems.append(f"column(s) {', '.join(odd_columns)} of table {table!r}")
        if not found["keys"] <= want["keys"]:
            problems.append(f"a foreign key of table {table!r}")
        if not found["indexes"] <= want["indexes"]:
            problems.append(f"an index on table {table!r}")
    if problems:
        found_text = ", ".join(problems[:3]) + (" …" if len(problems) > 3 else "")
        raise StoreError(
            f"database {path} contains {found_text}, which dedup never creates; refusing to "
            "use it (it may have been tampered with): use another --db"
        )


class Store:
    """One database file: the files under a root, their embeddings per model, the journal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the database folder {path.parent}: {exc}") from exc
        self.engine: Engine = create_engine(f"sqlite:///{path}", future=True)
        event.listen(self.engine, "connect", _on_connect)
        try:
            with self.engine.begin() as conn:
                refuse_foreign_schema(conn, path)
                migrate(conn)
        except OperationalError as exc:
            raise StoreError(_explain(exc, path)) from exc
        except SQLAlchemyError as exc:  # pragma: no cover - unusual driver errors
            raise StoreError(f"cannot open database {path}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- models ---------------------------------------------------------------------------

    def ensure_model(self, name: str, dimension: int, preprocessing: str) -> int:
        """The model's id, registering it on first use; a dimension change is an error."""
        with self.transaction(write=True) as conn:
            row = conn.execute(
                text("SELECT id, dimension FROM models WHERE name = :n"), {"n": name}
            ).first()
            if row is not None:
                if row.dimension != dimension:
                    raise StoreError(
                        f"model {name!r} is stored with dimension {row.dimension} in {self.path}, "
                        f"but these weights give {dimension}; use another --db or the original weights"
                    )
                return int(row.id)
            result = conn.execute(
                text("INSERT INTO models (name, dimension, preprocessing) VALUES (:n, :d, :p)"),
                {"n": name, "d": dimension, "p": preprocessing},
            )
            return int(result.lastrowid)  # type: ignore[arg-type,unused-ignore]

    def model_id(self, name: str) -> tuple[int, int] | None:
        """(id, dimension) of a stored model, or None."""
        with self.transaction() as conn:
            row = conn.execute(
                text("SELECT id, dimension FROM models WHERE name = :n"), {"n": name}
            ).first()
        return None if row is None else (int(row.id), int(row.dimension))

    def model_names(self) -> list[str]:
        with self.transaction() as conn:
            return [r[0] for r in conn.execute(text("SELECT name FROM models ORDER BY id"))]

    # -- files ----------------------------------------------------------------------------

    def file_states(self, model_id: int | None) -> dict[str, FileState]:
        """Every known file, with whether it has an embedding for the model; one query.

        A vector blob of the wrong length (a damaged or foreign database) does not count,
        so the next ``hash`` embeds that file again and overwrites it."""
        sql = (
            "SELECT f.id, f.path, f.size, f.mtime_ns, f.content_hash, f.error, "
            "e.file_id IS NOT NULL AS has_embedding FROM files f "
            "LEFT JOIN embeddings e ON e.file_id = f.id AND e.model_id = :m "
            "AND length(e.vector) = (SELECT dimension * 4 FROM models WHERE id = :m)"
        )
        with self.transaction() as conn:
            rows = conn.execute(text(sql), {"m": model_id if model_id is not None else -1})
            return {
                r.path: FileState(
                    r.id, r.path, r.size, r.mtime_ns, r.content_hash, r.error, bool(r.has_embedding)
                )
                for r in rows
            }

    def write_batch(
        self, model_id: int, facts: Sequence[FileFacts], vectors: dict[str, np.ndarray]
    ) -> None:
        """Upsert file facts and their embeddings in one transaction.

        A file whose content hash changed loses its embeddings for every model, so a stale
        vector can never be compared again.
        """
        now = time.time()
        with self.transaction(write=True) as conn:
            seq = _next_embedding_seq(conn) if vectors else 0
            for f in facts:
                old = conn.execute(
                    text("SELECT id, content_hash FROM files WHERE path = :p"), {"p": f.path}
                ).first()
                params = {
                    "p": f.path,
                    "s": f.size,
                    "m": f.mtime_ns,
                    "h": f.content_hash,
                    "w": f.width,
                    "hh": f.height,
                    "e": f.error,
                    "t": f.thumbnail,
                    "r": f.regions,
                    "u": now,
                }
                if old is None:
                    file_id = conn.execute(
                        text(
                            "INSERT INTO files (path, size, mtime_ns, content_hash, width, height, "
                            "error, thumbnail, regions, updated_at) "
                            "VALUES (:p, :s, :m, :h, :w, :hh, :e, :t, :r, :u)"
                        ),
                        params,
                    ).lastrowid
                else:
                    file_id = old.id
                    if old.content_hash != f.content_hash:
                        conn.execute(
                            text("DELETE FROM embeddings WHERE file_id = :i"), {"i": file_id}
                        )
                    conn.execute(
                        text(
                            "UPDATE files SET size = :s, mtime_ns = :m, content_hash = :h, width = :w, "
                            "height = :hh, error = :e, thumbnail = :t, regions = :r, updated_at = :u "
                            "WHERE id = :i"
                        ),
                        {**params, "i": file_id},
                    )
                vector = vectors.get(f.path)
                if vector is not None:
                    conn.execute(
                        text(
                            "INSERT OR REPLACE INTO embeddings (file_id, model_id, vector, seq) "
                            "VALUES (:f, :m, :v, :q)"
                        ),
                        {
                            "f": file_id,
                            "m": model_id,
                            "v": vector.astype("<f4").tobytes(),
                            "q": seq,
                        },
                    )

    def file_rows(self, paths: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Facts of the given files (size, mtime, hash, resolution, error) keyed by path.

        One pass over the table, filtered in Python: cheaper than chunked ``IN`` queries when
        most files are wanted, as in ``find``. Thumbnails are left out (see ``thumbnails``).
        """
        wanted = set(paths)
        sql = "SELECT id, path, size, mtime_ns, content_hash, width, height, error FROM files"
        with self.transaction() as conn:
            return {r.path: dict(r._mapping) for r in conn.execute(text(sql)) if r.path in wanted}

    def files_without_regions(self) -> dict[str, tuple[str | None, bytes | None]]:
        """Readable files hashed by a version that did not look for pictures inside them
        (``regions`` NULL), by path: their content hash and stored thumbnail."""
        sql = (
            "SELECT path, content_hash, thumbnail FROM files "
            "WHERE regions IS NULL AND error IS NULL"
        )
        with self.transaction() as conn:
            return {
                r.path: (r.content_hash, r.thumbnail if isinstance(r.thumbnail, bytes) else None)
                for r in conn.execute(text(sql))
            }

    def write_regions(self, found: Sequence[tuple[str, str | None, bytes]]) -> int:
        """Store ``(path, content hash, regions)`` where the file still has that content hash
        and no regions yet (a file hashed again meanwhile keeps what its hashing found);
        returns how many were written."""
        written = 0
        with self.transaction(write=True) as conn:
            for path, content_hash, regions in found:
                written += conn.execute(
                    text(
                        "UPDATE files SET regions = :r WHERE path = :p AND regions IS NULL "
                        "AND content_hash IS :h"
                    ),
                    {"r": regions, "p": path, "h": content_hash},
                ).rowcount
        return written

    def regions(self, batch: int = 10_000) -> Iterator[list[tuple[str, bytes]]]:
        """The stored pictures-inside of every file that shows any (few do: screenshots,
        pages with figures), ``(path, value)``, ``batch`` files at a time. A value of
        another type (a database that lies) is none."""
        sql = (
            "SELECT id, path, regions FROM files WHERE id > :after "
            "AND typeof(regions) = 'blob' AND length(regions) > 0 ORDER BY id LIMIT :n"
        )
        after = -1
        while True:
            with self.transaction() as conn:
                rows = conn.execute(text(sql), {"after": after, "n": batch}).fetchall()
            if not rows:
                return
            after = int(rows[-1].id)
            yield [(r.path, bytes(r.regions)) for r in rows]

    def thumbnails(self, paths: Iterable[str]) -> dict[str, bytes | None]:
        """The stored grayscale thumbnails of a few files (those in candidate pairs)."""
        wanted = sorted(set(paths))
        out: dict[str, bytes | None] = {}
        with self.transaction() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join(f":p{i}" for i in range(len(chunk)))
                rows = conn.execute(
                    text(f"SELECT path, thumbnail FROM files WHERE path IN ({marks})"),
                    {f"p{i}": p for i, p in enumerate(chunk)},
                )
                # A value of another type (a database that lies) is no thumbnail.
                out.update(
                    {r.path: r.thumbnail if isinstance(r.thumbnail, bytes) else None for r in rows}
                )
        return out

    def read_collection(
        self, model_id: int, dimension: int, paths: set[str], dtype: Any = np.float32
    ) -> StoredCollection:
        """The readable files among ``paths`` with a vector of the model, as columns, and
        their vectors as one matrix of ``dtype`` (float16 halves the memory of a large
        collection), in path order.

        One pass of the raw sqlite3 cursor: the matrix is sized once from a count and each
        blob is copied into its row, so there is no Python object per value, and the file
        facts go into arrays rather than one object per row.
        """
        sql = (
            "SELECT f.id, f.path, f.size, f.mtime_ns, f.content_hash, f.width, f.height, e.seq, "
            "e.vector FROM embeddings e JOIN files f ON f.id = e.file_id "
            "WHERE e.model_id = ? AND f.error IS NULL ORDER BY f.path"
        )
        with self.transaction() as conn:
            raw = conn.connection.driver_connection
            (count,) = raw.execute(
                "SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (model_id,)
            ).fetchone()
            matrix = np.empty((count, dimension), dtype=dtype)
            numbers = np.empty((count, 6), dtype=np.int64)  # id, size, mtime, w, h, seq
            names: list[str] = []
            hashes: list[str | None] = []
            n = 0
            for file_id, path, size, mtime, digest, w, h, seq, blob in raw.execute(
                sql, (model_id,)
            ):
                if path not in paths:
                    continue
                if not isinstance(blob, bytes) or len(blob) != 4 * dimension:
                    continue  # damaged: never compared (``file_states`` has it re-embedded)
                matrix[n] = np.frombuffer(blob, dtype="<f4")
                numbers[n] = (
                    file_id,
                    size,
                    mtime,
                    -1 if w is None else w,
                    -1 if h is None else h,
                    seq or 0,
                )
                names.append(path)
                hashes.append(digest)
                n += 1
        if n != count:
            matrix, numbers = matrix[:n].copy(), numbers[:n].copy()
        return StoredCollection(
            paths=names,
            content_hashes=hashes,
            ids=numbers[:, 0].copy(),
            sizes=numbers[:, 1].copy(),
            mtimes_ns=numbers[:, 2].copy(),
            widths=numbers[:, 3].astype(np.int32),
            heights=numbers[:, 4].astype(np.int32),
            seqs=numbers[:, 5].copy(),
            matrix=matrix,
        )

    def unreadable(self, paths: set[str]) -> list[tuple[str, str]]:
        """(path, error) of the files among ``paths`` known to be undecodable, sorted."""
        with self.transaction() as conn:
            raw = conn.connection.driver_connection
            rows = raw.execute("SELECT path, error FROM files WHERE error IS NOT NULL")
            return sorted((p, str(e)) for p, e in rows if p in paths)

    def forget_and_follow(
        self, *, gone: list[int], moved: list[tuple[int, str, int]], changed: list[int]
    ) -> None:
        """``prune-db`` in one transaction: rows of files that are gone are dropped (with
        their vectors), renamed or touched files keep their row under the new path and
        mtime, and changed files lose their vectors and facts (the next hash embeds them)."""
        with self.transaction(write=True) as conn:
            for file_id in gone:
                conn.execute(text("DELETE FROM embeddings WHERE file_id = :i"), {"i": file_id})
                conn.execute(text("DELETE FROM files WHERE id = :i"), {"i": file_id})
            for file_id, path, mtime_ns in moved:
                conn.execute(
                    text("UPDATE files SET path = :p, mtime_ns = :m WHERE id = :i"),
                    {"p": path, "m": mtime_ns, "i": file_id},
                )
            for file_id in changed:
                conn.execute(text("DELETE FROM embeddings WHERE file_id = :i"), {"i": file_id})
                conn.execute(
                    text("UPDATE files SET size = -1, error = NULL WHERE id = :i"), {"i": file_id}
                )

    # -- counters -------------------------------------------------------------------------

    def counter(self, name: str) -> int | None:
        with self.transaction() as conn:
            row = conn.execute(
                text("SELECT value FROM counters WHERE name = :n"), {"n": name}
            ).first()
        return None if row is None else int(row.value)

    def set_counter(self, name: str, value: int) -> None:
        self.set_counters({name: value})

    def set_counters(self, values: dict[str, int]) -> None:
        """Set several counters in one transaction."""
        with self.transaction(write=True) as conn:
            for name, value in values.items():
                conn.execute(
                    text(
                        "INSERT INTO counters (name, value) VALUES (:n, :v) "
                        "ON CONFLICT(name) DO UPDATE SET value = excluded.value"
                    ),
                    {"n": name, "v": value},
                )

    def embedding_seq(self) -> int:
        """The sequence number of the last batch of vectors written (0: none yet)."""
        return self.counter(EMBEDDING_SEQ) or 0

    def load_embeddings(
        self, model_id: int, dimension: int, paths: set[str] | None = None
    ) -> tuple[list[str], np.ndarray]:
        """(paths, float32 matrix N x dimension) for the model, optionally only these paths.

        Each blob is copied straight into a matrix sized once from a count, through the raw
        sqlite3 cursor, so memory is the matrix itself, not a Python object per value.
        """
        sql = (
            "SELECT f.path, e.vector FROM embeddings e JOIN files f ON f.id = e.file_id "
            "WHERE e.model_id = ? AND f.error IS NULL ORDER BY f.path"
        )
        names: list[str] = []
        with self.transaction() as conn:
            raw = conn.connection.driver_connection  # the sqlite3 connection: no Row objects
            (count,) = raw.execute(
                "SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (model_id,)
            ).fetchone()
            matrix = np.empty((count, dimension), dtype=np.float32)
            for path, blob in raw.execute(sql, (model_id,)):
                if paths is not None and path not in paths:
                    continue
                if not isinstance(blob, bytes) or len(blob) != 4 * dimension:
                    continue  # damaged: never compared (``file_states`` has it re-embedded)
                matrix[len(names)] = np.frombuffer(blob, dtype="<f4")
                names.append(path)
        return names, matrix if len(names) == count else matrix[: len(names)].copy()

    # -- review decisions -----------------------------------------------------------------

    def remember_not_duplicates(self, content_hashes: Iterable[str]) -> int:
        """Remember every pair among these contents as "not duplicates"; returns pairs added."""
        unique = sorted(set(content_hashes))
        pairs = [(a, b) for k, a in enumerate(unique) for b in unique[k + 1 :]]
        with self.transaction(write=True) as conn:
            for a, b in pairs:
                conn.execute(
                    text(
                        "INSERT OR IGNORE INTO not_duplicates (hash_a, hash_b, at) VALUES (:a, :b, :t)"
                    ),
                    {"a": a, "b": b, "t": time.time()},
                )
        return len(pairs)

    def forget_not_duplicates(self, content_hashes: Iterable[str]) -> int:
        """Forget every remembered pair among these contents (a reviewer took the mark
        back); returns pairs forgotten."""
        unique = sorted(set(content_hashes))
        pairs = [(a, b) for k, a in enumerate(unique) for b in unique[k + 1 :]]
        forgotten = 0
        with self.transaction(write=True) as conn:
            for a, b in pairs:
                forgotten += conn.execute(
                    text("DELETE FROM not_duplicates WHERE hash_a = :a AND hash_b = :b"),
                    {"a": a, "b": b},
                ).rowcount
        return forgotten

    def not_duplicate_pairs(self) -> set[tuple[str, str]]:
        """Remembered pairs (sorted hash tuples)."""
        with self.transaction() as conn:
            return {
                (r.hash_a, r.hash_b)
                for r in conn.execute(text("SELECT hash_a, hash_b FROM not_duplicates"))
            }

    def removed_contents(self) -> dict[str, dict[str, Any]]:
        """Tombstones: the content hash of every file a run of this database removed and no
        undo put back, with the newest removal of each (path, run, action, when) and every
        keeper a removal of it was made for (a byte copy's keeper holds the same content and
        did not come back). Read from the journal itself, so nothing else has to be kept in
        step with it."""
        found: dict[str, dict[str, Any]] = {}
        with self.transaction() as conn:
            rows = conn.execute(
                text(
                    "SELECT content_hash, path, keeper, run_id, action, at FROM actions "
                    "WHERE status = 'done' AND content_hash IS NOT NULL ORDER BY at"
                )
            )
            for row in rows:
                keepers = found.get(row.content_hash, {}).get("keepers", set())
                found[row.content_hash] = {
                    "path": row.path,
                    "run_id": row.run_id,
                    "action": row.action,
                    "at": row.at,
                    "keepers": keepers | {row.keeper},
                }
        return found

    def save_review_decision(self, group_key: str, decision: dict[str, Any]) -> None:
        """Save (replace) what a reviewer decided for one group."""
        with self.transaction(write=True) as conn:
            conn.execute(
                text(
                    "INSERT INTO review_decisions (group_key, decision, at) VALUES (:k, :d, :t) "
                    "ON CONFLICT(group_key) DO UPDATE SET decision = excluded.decision, "
                    "at = excluded.at"
                ),
                {"k": group_key, "d": json.dumps(decision), "t": time.time()},
            )

    def review_decisions(self, group_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The saved decisions of these groups (those never decided are absent); a row that
        is not a JSON object is ignored (the database is a cache, not a witness)."""
        wanted = sorted(set(group_keys))
        found: dict[str, dict[str, Any]] = {}
        with self.transaction() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join(f":k{i}" for i in range(len(chunk)))
                rows = conn.execute(
                    text(
                        "SELECT group_key, decision FROM review_decisions "
                        f"WHERE group_key IN ({marks})"
                    ),
                    {f"k{i}": k for i, k in enumerate(chunk)},
                )
                for row in rows:
                    try:
                        decision = json.loads(row.decision)
                    except (TypeError, ValueError):
                        continue
                    if isinstance(decision, dict):
                        found[row.group_key] = decision
        return found

    # -- journal --------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        root: str,
        action: str,
        model: str,
        threshold: float,
        manifest: str | None,
        quarantine: str | None = None,
    ) -> None:
        with self.transaction(write=True) as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (id, created_at, root, action, model, threshold, manifest, "
                    "quarantine) VALUES (:i, :c, :r, :a, :m, :t, :mf, :q)"
                ),
                {
                    "i": run_id,
                    "c": time.time(),
                    "r": root,
                    "a": action,
                    "m": model,
                    "t": threshold,
                    "mf": manifest,
                    "q": quarantine,
                },
            )

    def finish_run(self, run_id: str) -> None:
        """The run stopped acting (done, or stopped by Ctrl-C between two files)."""
        with self.transaction(write=True) as conn:
            conn.execute(
                text("UPDATE runs SET finished_at = :t WHERE id = :i"),
                {"t": time.time(), "i": run_id},
            )

    def journal(self, run_id: str, entry: dict[str, Any]) -> int:
        """Record one action; written before and updated after the filesystem change."""
        with self.transaction(write=True) as conn:
            return int(
                conn.execute(
                    text(
                        "INSERT INTO actions (run_id, path, keeper, action, destination, size, "
                        "mtime_ns, content_hash, status, reason, at, after_hash) VALUES (:run, "
                        ":path, :keeper, :action, :destination, :size, :mtime_ns, :content_hash, "
                        ":status, :reason, :at, :after_hash)"
                    ),
                    {"run": run_id, "at": time.time(), "after_hash": None, **entry},
                ).lastrowid  # type: ignore[arg-type,unused-ignore]
            )

    def set_action_status(self, action_id: int, status: str, reason: str | None = None) -> None:
        with self.transaction(write=True) as conn:
            conn.execute(
                text("UPDATE actions SET status = :s, reason = :r, at = :a WHERE id = :i"),
                {"s": status, "r": reason, "a": time.time(), "i": action_id},
            )

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.transaction() as conn:
            row = conn.execute(text("SELECT * FROM runs WHERE id = :i"), {"i": run_id}).first()
        return None if row is None else dict(row._mapping)

    def run_actions(self, run_id: str) -> list[dict[str, Any]]:
        with self.transaction() as conn:
            rows = conn.execute(
                text("SELECT * FROM actions WHERE run_id = :i ORDER BY id"), {"i": run_id}
            )
            return [dict(r._mapping) for r in rows]

    def mark_run_undone(self, run_id: str) -> None:
        with self.transaction(write=True) as conn:
            conn.execute(
                text("UPDATE runs SET undone_at = :t WHERE id = :i"),
                {"t": time.time(), "i": run_id},
            )

    # -- helpers --------------------------------------------------------------------------

    def transaction(self, write: bool = False) -> Any:
        """``with store.transaction() as conn``: one transaction; lock, read-only and disk-full
        errors become a StoreError with one clear line. ``write=True`` takes the write lock
        at the start (waiting up to the busy timeout), so a read-then-write cannot race
        another dedup process writing the same rows."""
        return _Transaction(self, write)

    def compact(self) -> None:
        """Checkpoint the WAL and VACUUM, so removed rows give their space back; then
        checkpoint again: in WAL mode VACUUM writes the whole compacted database into the
        WAL, and until that is copied back the folder holds it twice."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.exec_driver_sql("VACUUM")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except OperationalError as exc:
            raise StoreError(_explain(exc, self.path)) from exc


class _Transaction:
    """``engine.begin()`` that turns lock and disk errors into one clear StoreError."""

    def __init__(self, store: Store, write: bool = False) -> None:
        self.store = store
        self.write = write
        self.ctx: Any = None

    def __enter__(self) -> Any:
        try:
            self.ctx = self.store.engine.begin()
            conn = self.ctx.__enter__()
            if self.write:
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    self.ctx.__exit__(*sys.exc_info())
                    raise
            return conn
        except OperationalError as exc:
            raise StoreError(_explain(exc, self.store.path)) from exc

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.ctx.__exit__(exc_type, exc, tb)
        except OperationalError as err:
            raise StoreError(_explain(err, self.store.path)) from err
        if isinstance(exc, OperationalError):
            raise StoreError(_explain(exc, self.store.path)) from exc


def _explain(exc: OperationalError, path: Path) -> str:
    message = str(exc.orig) if exc.orig is not None else str(exc)
    if "locked" in message or "busy" in message:
        return (
            f"database {path} is in use by another dedup process (waited "
            f"{busy_timeout_ms() / 1000:g} s); try again when it has finished"
        )
    if "readonly" in message or "read-only" in message:
        return f"database {path} is read-only; pass --db PATH to a writable location"
    if "disk" in message and "full" in message:
        return f"no space left for database {path}; free some space and run again"
    return f"database error in {path}: {message}"
