"""``find --new-only`` and the approximate index kept beside the database."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import crop_fraction, encode
from dedup_cli.cli import app
from dedup_cli.search.candidates import find_candidates
from dedup_cli.search.kept_cells import current_cells, index_path, rows_of_ids
from dedup_cli.store import Store
from dedup_cli.store.database import FileFacts

runner = CliRunner()


def find(root: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0", *extra])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def removed(document: dict) -> set[str]:  # type: ignore[type-arg]
    return {Path(p).name for g in document["groups"] for p in g["remove"]}


@pytest.mark.parametrize("index", ["exact", "ann"])
def test_new_only_compares_new_files_against_everything(
    library: Path,
    photos: dict,
    index: str,  # type: ignore[type-arg]
) -> None:
    first = find(library, "--index", index)
    assert first["stats"]["new_files"] is None
    assert removed(first) >= {"astronaut_small.jpg", "chelsea_copy.jpg"}
    # Nothing new: nothing compared, nothing planned.
    again = find(library, "--index", index, "--new-only")
    assert again["stats"]["new_files"] == 0 and again["groups"] == []
    # A new copy of an old photo and a new distinct one: only the copy's group comes back.
    (library / "later").mkdir()
    (library / "later" / "coffee_again.png").write_bytes(
        encode(crop_fraction(photos["coffee"], 0.05), "PNG")
    )
    (library / "later" / "moon.png").write_bytes(encode(photos["moon"], "PNG"))
    new = find(library, "--index", index, "--new-only")
    assert new["stats"]["new_files"] == 2
    assert new["stats"]["files_compared"] == first["stats"]["files_compared"] + 2
    assert len(new["groups"]) == 1
    members = {Path(p).name for p in [new["groups"][0]["keep"], *new["groups"][0]["remove"]]}
    assert "coffee_again.png" in members and members <= {
        "coffee.jpg",
        "coffee_q40.jpg",
        "coffee_again.png",
    }
    # A byte copy of an old file is new too, and pairs with it by content hash.
    shutil.copy(library / "camera.png", library / "later" / "camera_copy.png")
    byte_copy = find(library, "--index", index, "--new-only")
    assert byte_copy["stats"]["new_files"] == 1 and removed(byte_copy) == {"camera_copy.png"}
    # A full find still sees everything.
    assert removed(find(library, "--index", index)) >= removed(first) | {"camera_copy.png"}


def test_new_only_on_a_fresh_database_compares_everything(library: Path) -> None:
    assert removed(find(library, "--new-only")) == removed(
        find(library, "--db", str(library.parent / "other.db"))
    )


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def write(store: Store, model: int, names: list[str], vectors: np.ndarray) -> None:
    facts = [FileFacts(n, 1, 1, n, 8, 8, None, None) for n in names]
    store.write_batch(model, facts, dict(zip(names, vectors)))


def load(store: Store, model: int, names: list[str]):  # type: ignore[no-untyped-def]
    return store.read_collection(model, 16, set(names))


def test_kept_cells_are_updated_not_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"{k:04d}.jpg" for k in range(3000)]
    with Store(tmp_path / "image_database.db") as store:
        model = store.ensure_model("m", 16, "{}")
        write(store, model, names, unit(rng, 3000))
        stored = load(store, model, names)
        built = current_cells(store, model, "m", stored.ids, stored.seqs, stored.matrix)
        path = index_path(store.path, "m")
        assert (built.report.status, built.report.assigned, built.report.saved) == (
            "built",
            3000,
            True,
        )
        assert path.name == "image_database.db.m.ann.npz" and path.exists()
        saved_at = path.stat().st_mtime_ns

        again = current_cells(store, model, "m", stored.ids, stored.seqs, stored.matrix)
        assert (again.report.status, again.report.removed) == ("updated", 0)
        np.testing.assert_array_equal(again.centroids, built.centroids)  # not retrained
        np.testing.assert_array_equal(again.cells, built.cells)
        assert path.stat().st_mtime_ns == saved_at  # nothing changed: not written again

        # One file re-embedded (now a copy of row 7), one new copy of row 5, one file gone.
        def near(row: int) -> np.ndarray:
            v = stored.matrix[row] + 0.01 * unit(rng, 1)[0]
            return (v / np.linalg.norm(v))[None]

        write(store, model, ["0001.jpg"], near(7))
        write(store, model, ["new.jpg"], near(5))
        now = [*names[1:2999], "new.jpg", "0000.jpg"]
        current = load(store, model, now)
        fresh = np.flatnonzero(current.seqs > stored.seqs.max())
        assert [current.paths[k] for k in fresh] == ["0001.jpg", "new.jpg"]
        update = current_cells(store, model, "m", current.ids, current.seqs, current.matrix, fresh)
        assert (update.report.status, update.report.assigned, update.report.removed) == (
            "updated",
            2,
            1,
        )
        assert path.stat().st_mtime_ns != saved_at
        # The cell of every file is where its current vector belongs (to bfloat16 rounding).
        scores = current.matrix @ update.centroids.T
        chosen = scores[np.arange(len(scores)), update.cells]
        assert (chosen >= scores.max(axis=1) - 0.02).all()
        kept_rows = [current.paths.index(n) for n in names[2:2999]]
        np.testing.assert_array_equal(update.cells[kept_rows], built.cells[2:2999])
        # Only the new rows are searched, and they find what they copy.
        found = find_candidates(
            store,
            model,
            "m",
            current.ids,
            current.seqs,
            current.matrix,
            0.9,
            index="ann",
            new_only=False,
        )
        pairs = {
            (current.paths[i], current.paths[j])
            for i, j in zip(found.pairs.left, found.pairs.right)
        }
        assert {("0005.jpg", "new.jpg"), ("0001.jpg", "0007.jpg")} <= pairs


def test_a_foreign_or_damaged_index_file_is_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    names = [f"{k:04d}.jpg" for k in range(500)]
    with Store(tmp_path / "image_database.db") as store:
        model = store.ensure_model("m", 16, "{}")
        write(store, model, names, unit(rng, 500))
        stored = load(store, model, names)
        args = (store, model, "m", stored.ids, stored.seqs, stored.matrix)
        current_cells(*args)
        path = index_path(store.path, "m")
        path.write_bytes(b"not an index")
        report = current_cells(*args).report
        assert report.status == "rebuilt" and "not the one this database saved" in str(
            report.reason
        )
        # A file with the recorded size and mtime but garbage inside cannot be read.
        info = path.stat()
        path.write_bytes(b"\0" * info.st_size)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
        report = current_cells(*args).report
        assert report.status == "rebuilt" and "cannot be read" in str(report.reason)
        # Cells for other vectors (another dimension) are not used.
        other = load(store, model, names)
        wider = np.hstack([other.matrix, np.zeros((500, 4), np.float32)])
        report = current_cells(store, model, "m", other.ids, other.seqs, wider).report
        assert report.status == "rebuilt" and "other vectors" in str(report.reason)
        # Four times the rows it was trained on: trained again.
        assert current_cells(*args).report.status == "rebuilt"  # back to 16 dimensions
        more = [f"x{k:04d}.jpg" for k in range(1600)]
        write(store, model, more, unit(rng, 1600))
        grown = load(store, model, set(names) | set(more))
        report = current_cells(store, model, "m", grown.ids, grown.seqs, grown.matrix).report
        assert report.status == "rebuilt" and "changed size" in str(report.reason)


def test_an_index_that_cannot_be_saved_is_reported_and_used(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    names = [f"{k:04d}.jpg" for k in range(400)]
    with Store(tmp_path / "image_database.db") as store:
        model = store.ensure_model("m", 16, "{}")
        write(store, model, names, unit(rng, 400))
        stored = load(store, model, names)
        index_path(store.path, "m").mkdir()  # a folder where the file should go
        kept = current_cells(store, model, "m", stored.ids, stored.seqs, stored.matrix)
    assert not kept.report.saved and "index not saved" in str(kept.report.reason)
    assert len(kept.cells) == 400 and (kept.cells >= 0).all()
    assert not list(tmp_path.glob("*.tmp-*"))


def test_rows_of_ids() -> None:
    ids = np.array([40, 7, 19, 3])
    assert rows_of_ids(ids, np.array([3, 40, 5, 19, 100, 1])).tolist() == [3, 0, -1, 2, -1, -1]
    assert rows_of_ids(np.zeros(0, np.int64), np.array([1])).tolist() == [-1]


def test_a_file_changed_in_place_counts_as_new(library: Path, photos: dict) -> None:  # type: ignore[type-arg]
    find(library)
    # rocket.jpg now holds coffee: it is new content and pairs with the coffee files.
    (library / "rocket.jpg").write_bytes(encode(photos["coffee"], quality=80))
    changed = find(library, "--new-only")
    assert changed["stats"]["new_files"] == 1
    members = {Path(p).name for g in changed["groups"] for p in [g["keep"], *g["remove"]]}
    assert "rocket.jpg" in members and members <= {"rocket.jpg", "coffee.jpg", "coffee_q40.jpg"}


def test_summary_says_what_the_kept_cells_did(library: Path) -> None:
    first = runner.invoke(app, ["find", str(library), "--workers", "0", "--index", "ann"])
    shutil.copy(library / "coffee.jpg", library / "coffee_again.jpg")
    again = runner.invoke(app, ["find", str(library), "--index", "ann", "--new-only"])
    assert first.exit_code == 0 == again.exit_code, first.stderr
    assert "approximate search cells" in first.stdout and "built" in first.stdout
    assert "updated, 1 assigned, 0 removed" in again.stdout
    assert "new since the last find" in again.stdout


def test_a_database_never_searched_compares_everything_even_unnumbered_vectors(
    tmp_path: Path,
) -> None:
    """Vectors written before schema 3 carry sequence number 0; with no search recorded
    they are all new, not all old."""
    rng = np.random.default_rng(3)
    rows = unit(rng, 50)
    rows[49] = rows[0]
    names = [f"{k:02d}.jpg" for k in range(50)]
    with Store(tmp_path / "image_database.db") as store:
        model = store.ensure_model("m", 16, "{}")
        write(store, model, names, rows)
        with store.transaction(write=True) as conn:
            conn.exec_driver_sql("UPDATE embeddings SET seq = 0")
        stored = load(store, model, names)
        found = find_candidates(
            store, model, "m", stored.ids, stored.seqs, stored.matrix, 0.9, new_only=True
        )
    assert found.new_rows is not None and len(found.new_rows) == 50
    assert list(zip(found.pairs.left.tolist(), found.pairs.right.tolist())) == [(0, 49)]


@pytest.mark.parametrize("index", ["exact", "ann"])
def test_new_only_never_proposes_a_pair_of_two_old_files(tmp_path: Path, index: str) -> None:
    """Without byte-identical sets (every row searched), only the new rows are queries: a
    pair of two old files found by an earlier ``find`` is not proposed again."""
    from dedup_cli.search.candidates import mark_searched

    rng = np.random.default_rng(4)
    rows = unit(rng, 41)
    rows[1] = rows[0] + 0.01  # an old near pair
    rows[40] = rows[2] + 0.01  # a new copy of an old file
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    names = [f"{k:02d}.jpg" for k in range(41)]
    with Store(tmp_path / "image_database.db") as store:
        model = store.ensure_model("m", 16, "{}")
        write(store, model, names[:40], rows[:40])
        old = load(store, model, names[:40])
        mark_searched(store, model, old.seqs)
        write(store, model, names[40:], rows[40:])
        stored = load(store, model, names)
        found = find_candidates(
            store,
            model,
            "m",
            stored.ids,
            stored.seqs,
            stored.matrix,
            0.95,
            index=index,
            new_only=True,
        )
    pairs = {
        (stored.paths[i], stored.paths[j]) for i, j in zip(found.pairs.left, found.pairs.right)
    }
    assert pairs == {("02.jpg", "40.jpg")}
