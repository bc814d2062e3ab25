from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from dedup_cli.errors import StoreError
from dedup_cli.store import Store
from dedup_cli.store.database import FileFacts
from dedup_cli.store.migrations import SCHEMA_VERSION


def facts(path: str, h: str = "h") -> FileFacts:
    return FileFacts(path, 10, 1, h, 4, 3, None, b"\0" * 1024)


def test_schema_version_wal_and_tables(tmp_path: Path) -> None:
    db = tmp_path / "image_database.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"files", "models", "embeddings", "runs", "actions"} <= tables


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(db)


def test_vectors_are_raw_little_endian_float32(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with Store(db) as store:
        model = store.ensure_model("m", 3, "{}")
        vector = np.array([0.6, 0.8, 0.0], dtype=np.float32)
        store.write_batch(model, [facts("a.jpg")], {"a.jpg": vector})
        names, matrix = store.load_embeddings(model, 3)
    blob = sqlite3.connect(db).execute("SELECT vector FROM embeddings").fetchone()[0]
    assert blob == vector.astype("<f4").tobytes()
    assert names == ["a.jpg"] and matrix.flags.writeable
    np.testing.assert_array_equal(matrix[0], vector)


def test_models_live_side_by_side(tmp_path: Path) -> None:
    with Store(tmp_path / "x.db") as store:
        a = store.ensure_model("a", 2, "{}")
        b = store.ensure_model("b", 3, "{}")
        store.write_batch(a, [facts("p.jpg")], {"p.jpg": np.ones(2, np.float32)})
        store.write_batch(b, [facts("p.jpg")], {"p.jpg": np.ones(3, np.float32)})
        assert store.load_embeddings(a, 2)[1].shape == (1, 2)
        assert store.load_embeddings(b, 3)[1].shape == (1, 3)
        assert store.file_states(a)["p.jpg"].has_embedding
        with pytest.raises(StoreError, match="dimension"):
            store.ensure_model("a", 5, "{}")


def test_changed_content_drops_stale_embeddings_for_every_model(tmp_path: Path) -> None:
    with Store(tmp_path / "x.db") as store:
        a = store.ensure_model("a", 2, "{}")
        b = store.ensure_model("b", 2, "{}")
        store.write_batch(a, [facts("p.jpg", "old")], {"p.jpg": np.ones(2, np.float32)})
        store.write_batch(b, [facts("p.jpg", "old")], {"p.jpg": np.ones(2, np.float32)})
        store.write_batch(a, [facts("p.jpg", "new")], {"p.jpg": np.ones(2, np.float32)})
        assert store.file_states(a)["p.jpg"].has_embedding
        assert not store.file_states(b)["p.jpg"].has_embedding


def test_many_embeddings_load_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 8)).astype(np.float32)
    with Store(tmp_path / "x.db") as store:
        m = store.ensure_model("m", 8, "{}")
        names = [f"{i:05d}.jpg" for i in range(3000)]
        store.write_batch(m, [facts(n) for n in names], dict(zip(names, vectors)))
        loaded, matrix = store.load_embeddings(m, 8, set(names[::2]))
    assert loaded == names[::2]
    np.testing.assert_array_equal(matrix, vectors[::2])


def test_unwritable_location_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        Store(blocker / "sub" / "x.db")


def test_every_batch_of_vectors_gets_a_newer_sequence_number(tmp_path: Path) -> None:
    """``find --new-only`` takes vectors written after the last search by this number; a
    re-embedded file must count as new even when its row was the newest one."""
    with Store(tmp_path / "x.db") as store:
        m = store.ensure_model("m", 2, "{}")
        assert store.embedding_seq() == 0
        store.write_batch(m, [facts("a.jpg", "1")], {"a.jpg": np.ones(2, np.float32)})
        store.write_batch(m, [facts("b.jpg", "2")], {"b.jpg": np.ones(2, np.float32)})
        store.write_batch(m, [facts("bad.jpg", None)], {})  # no vector: no number used
        assert store.embedding_seq() == 2
        store.write_batch(m, [facts("b.jpg", "3")], {"b.jpg": np.zeros(2, np.float32)})
        stored = store.read_collection(m, 2, {"a.jpg", "b.jpg"})
    assert stored.paths == ["a.jpg", "b.jpg"] and stored.seqs.tolist() == [1, 3]
    assert stored.matrix.tolist() == [[1.0, 1.0], [0.0, 0.0]]  # the re-embedded vector


def test_collection_loads_as_columns_and_half_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    names = [f"{i:03d}.jpg" for i in range(50)]
    with Store(tmp_path / "x.db") as store:
        m = store.ensure_model("m", 8, "{}")
        store.write_batch(m, [facts(n, f"h{n}") for n in names], dict(zip(names, vectors)))
        store.write_batch(m, [FileFacts("x.jpg", 1, 1, None, None, None, "broken", None)], {})
        sqlite_db = sqlite3.connect(tmp_path / "x.db")
        sqlite_db.execute("UPDATE embeddings SET vector = x'00' WHERE file_id = 3")  # damaged
        sqlite_db.commit()
        wanted = set(names[:10]) | {"x.jpg", "not-scanned.jpg"}
        full = store.read_collection(m, 8, wanted)
        half = store.read_collection(m, 8, wanted, np.float16)
        assert store.unreadable(wanted) == [("x.jpg", "broken")]
    expected = [n for n in names[:10] if n != "002.jpg"]
    assert full.paths == expected == half.paths
    assert full.content_hashes == [f"h{n}" for n in expected]
    rows = [names.index(n) for n in expected]
    np.testing.assert_array_equal(full.matrix, vectors[rows])
    assert half.matrix.dtype == np.float16
    np.testing.assert_allclose(half.matrix, vectors[rows], rtol=1e-3, atol=1e-3)
    assert full.sizes.tolist() == [10] * 9 and full.widths.tolist() == [4] * 9


def test_a_version_2_database_gains_sequence_numbers(tmp_path: Path) -> None:
    """Databases written before schema 3 open, keep their vectors (as sequence 0) and
    number every vector written afterwards."""
    db = tmp_path / "x.db"
    with Store(db) as store:
        m = store.ensure_model("m", 2, "{}")
        store.write_batch(m, [facts("old.jpg", "1")], {"old.jpg": np.ones(2, np.float32)})
    conn = sqlite3.connect(db)
    conn.executescript(
        "DROP INDEX ix_embeddings_seq; ALTER TABLE embeddings DROP COLUMN seq; "
        "DROP TABLE counters; PRAGMA user_version = 2;"
    )
    conn.close()
    with Store(db) as store:
        store.write_batch(m, [facts("new.jpg", "2")], {"new.jpg": np.ones(2, np.float32)})
        stored = store.read_collection(m, 2, {"old.jpg", "new.jpg"})
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert dict(zip(stored.paths, stored.seqs.tolist())) == {"new.jpg": 1, "old.jpg": 0}


def test_a_version_5_journal_gains_the_merge_column_and_keeps_its_rows(tmp_path: Path) -> None:
    """Schema 6 adds ``actions.after_hash`` (``--merge-metadata``); earlier rows stay."""
    db = tmp_path / "x.db"
    with Store(db) as store:
        store.start_run("r1", str(tmp_path), "move", "m", 0.9, "manifest", None)
        store.journal(
            "r1",
            {
                "path": "/p/a.jpg",
                "keeper": "/p/b.jpg",
                "action": "move",
                "destination": "/q/a.jpg",
                "size": 1,
                "mtime_ns": 2,
                "content_hash": "h",
                "status": "done",
                "reason": None,
            },
        )
    conn = sqlite3.connect(db)
    conn.executescript("ALTER TABLE actions DROP COLUMN after_hash; PRAGMA user_version = 5;")
    conn.close()
    with Store(db) as store:
        [row] = store.run_actions("r1")
    assert row["path"] == "/p/a.jpg" and row["after_hash"] is None
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
