"""Numbered schema migrations, recorded in SQLite's ``PRAGMA user_version``.

Each migration takes a connection and moves the schema one version up; a database written
by a newer release (a higher version than we know) is refused rather than damaged.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from dedup_cli.errors import StoreError
from dedup_cli.store.schema import Base


def _m001_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


def _m002_not_duplicates(conn: Connection) -> None:
    from dedup_cli.store.schema import NotDuplicateRecord

    NotDuplicateRecord.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]


def _m003_embedding_sequence(conn: Connection) -> None:
    """A write sequence number per embedding, and the counters table that hands them out."""
    from dedup_cli.store.schema import CounterRecord

    columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(embeddings)")}
    if "seq" not in columns:
        conn.exec_driver_sql("ALTER TABLE embeddings ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_embeddings_seq ON embeddings (seq)")
    CounterRecord.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]


def _m004_run_lifecycle(conn: Connection) -> None:
    """When a run finished acting (NULL: still acting, or killed), and its quarantine.

    Runs written before this version finished long ago: they count as finished."""
    columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(runs)")}
    if "finished_at" not in columns:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN finished_at FLOAT")
        conn.exec_driver_sql("UPDATE runs SET finished_at = created_at")
    if "quarantine" not in columns:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN quarantine TEXT")


def _m005_review_decisions(conn: Connection) -> None:
    """The browser reviewer's decisions, one row per group."""
    from dedup_cli.store.schema import ReviewDecisionRecord

    ReviewDecisionRecord.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]


def _m006_merge_journal(conn: Connection) -> None:
    """The content hash a ``merge`` action left (``--merge-metadata``)."""
    columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(actions)")}
    if "after_hash" not in columns:
        conn.exec_driver_sql("ALTER TABLE actions ADD COLUMN after_hash VARCHAR(32)")


def _m007_regions(conn: Connection) -> None:
    """Pictures inside each picture (``media.regions``); NULL for files hashed before."""
    columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(files)")}
    if "regions" not in columns:
        conn.exec_driver_sql("ALTER TABLE files ADD COLUMN regions BLOB")


MIGRATIONS: list[Callable[[Connection], None]] = [
    _m001_initial,
    _m002_not_duplicates,
    _m003_embedding_sequence,
    _m004_run_lifecycle,
    _m005_review_decisions,
    _m006_merge_journal,
    _m007_regions,
]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)


def migrate(conn: Connection) -> int:
    """Apply the migrations this database lacks; return the resulting version."""
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this dedup supports "
            f"({SCHEMA_VERSION}); upgrade dedup"
        )
    if version == SCHEMA_VERSION:
        return version
    # Two processes may open a new database at once: take the write lock (waiting for the
    # other one's migration, up to the busy timeout) and look at the version again.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    version = current_version(conn)
    for number in range(version, SCHEMA_VERSION):
        MIGRATIONS[number](conn)
        conn.execute(text(f"PRAGMA user_version = {number + 1}"))
    return SCHEMA_VERSION
