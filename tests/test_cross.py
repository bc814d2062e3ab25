"""``dedup cross`` through the CLI: only cross pairs, protected folders, untrusted databases."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.store import Store

runner = CliRunner()


@pytest.fixture
def folders(tmp_path: Path, photos) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    (a / "coffee.jpg").write_bytes(encode(photos["coffee"], quality=95))
    (a / "coffee_again.jpg").write_bytes((a / "coffee.jpg").read_bytes())  # a copy within A
    (a / "rocket.jpg").write_bytes(encode(photos["rocket"], quality=80))
    (a / "only_a.jpg").write_bytes(encode(photos["camera"], quality=90))
    (b / "coffee_small.jpg").write_bytes(encode(photos["coffee"].resize((300, 200)), quality=85))
    # The same picture, larger (a crop would not do: the full picture is never removed in
    # favour of a crop of it).
    (b / "rocket_big.png").write_bytes(encode(photos["rocket"].resize((800, 534)), "PNG"))
    (b / "only_b.jpg").write_bytes(encode(photos["chelsea"], quality=90))
    (b / "only_b_too.jpg").write_bytes(encode(photos["chelsea"], quality=92))  # copy within B
    return a, b


def cross(a: Path, b: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["cross", str(a), str(b), "--json", "--workers", "0", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def pairs(doc: dict) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    out = set()
    for g in doc["groups"]:
        for r in g["remove"]:
            out.add((g["keep"], r))
    return out


def test_only_pairs_between_the_folders(folders: tuple[Path, Path]) -> None:
    a, b = folders
    doc = cross(a, b)
    found = pairs(doc)
    assert found, "the coffee and rocket copies across the folders are found"
    for keep, removed in found:
        assert Path(keep).parent != Path(removed).parent  # never two files of one folder
    names = {(Path(k).name, Path(r).name) for k, r in found}
    assert ("rocket_big.png", "rocket.jpg") in names  # largest anywhere: removal from A
    assert not any("only_b" in k or "only_b" in r for k, r in names)
    summary = doc["summary"]
    assert summary["only_in_a"] == 1 and summary["only_in_b"] == 2
    assert summary["in_both_a"] == 3 and summary["in_both_b"] == 2


@pytest.mark.parametrize(("keep", "protected"), [("db1", "A"), ("db2", "B")])
def test_protected_folder_never_loses_a_file(
    folders: tuple[Path, Path], keep: str, protected: str
) -> None:
    a, b = folders
    doc = cross(a, b, "--keep", keep)
    root = a if protected == "A" else b
    assert doc["groups"]
    for _keep, removed in pairs(doc):
        assert not Path(removed).is_relative_to(root.resolve())

    def images() -> list[str]:
        return sorted(p.name for p in root.iterdir() if p.suffix in (".jpg", ".png"))

    before = images()
    doc = cross(a, b, "--keep", keep, "--action", "delete", "--yes")
    assert doc["action"]["done"]
    assert images() == before


def test_no_hash_requires_complete_databases_with_the_same_model(
    folders: tuple[Path, Path],
) -> None:
    a, b = folders
    assert runner.invoke(app, ["hash", str(a), "--workers", "0", "-q"]).exit_code == 0
    result = runner.invoke(app, ["cross", str(a), str(b), "--no-hash"])
    assert result.exit_code == 1 and "database of B" in result.stderr
    assert f"dedup hash {b.resolve()} --model effnet" in result.stderr
    with Store(b / "image_database.db") as store:
        store.ensure_model("clip-b32", 512, "{}")
    result = runner.invoke(app, ["cross", str(a), str(b), "--no-hash"])
    assert result.exit_code == 1 and "has no effnet embeddings (it has: clip-b32)" in result.stderr
    (a / "new.jpg").write_bytes((a / "rocket.jpg").read_bytes()[:-10] + b"0123456789")
    assert runner.invoke(app, ["hash", str(b), "--workers", "0", "-q"]).exit_code == 0
    result = runner.invoke(app, ["cross", str(a), str(b), "--no-hash"])
    assert result.exit_code == 1 and "database of A is incomplete: 1 file(s)" in result.stderr


def test_rows_pointing_outside_their_folder_are_never_used(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = folders
    cross(a, b)  # hashes both
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((a / "coffee.jpg").read_bytes())
    os.symlink(outside, b / "link.jpg")
    db = sqlite3.connect(b / "image_database.db")
    (file_id,) = db.execute("SELECT id FROM files WHERE path = 'coffee_small.jpg'").fetchone()
    row = db.execute(
        "SELECT size, mtime_ns, content_hash, thumbnail FROM files WHERE id = ?", (file_id,)
    ).fetchone()
    vector = db.execute(
        "SELECT model_id, vector FROM embeddings WHERE file_id = ?", (file_id,)
    ).fetchone()
    for evil in ("../outside.jpg", str(outside), "link.jpg"):
        cur = db.execute(
            "INSERT INTO files (path, size, mtime_ns, content_hash, width, height, error, "
            "thumbnail, updated_at) VALUES (?, ?, ?, ?, 1, 1, NULL, ?, 0)",
            (evil, *row),
        )
        db.execute(
            "INSERT INTO embeddings (file_id, model_id, vector) VALUES (?, ?, ?)",
            (cur.lastrowid, *vector),
        )
    db.commit()
    doc = cross(a, b, "--keep", "db1", "--action", "delete", "--yes")
    touched = {d["path"] for d in doc["action"]["done"]} | {r for _k, r in pairs(doc)}
    assert all(Path(p).resolve().is_relative_to(b.resolve()) for p in touched)
    assert outside.exists() and (b / "link.jpg").is_symlink()


@pytest.mark.parametrize("second", ["{a}", "{a}/sub", "{parent}"])
def test_overlapping_folders_are_a_usage_error(folders: tuple[Path, Path], second: str) -> None:
    a, _b = folders
    (a / "sub").mkdir()
    result = runner.invoke(app, ["cross", str(a), second.format(a=a, parent=a.parent)])
    assert result.exit_code == 2 and "overlap" in result.stderr
