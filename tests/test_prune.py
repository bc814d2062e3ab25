"""``dedup prune-db`` through the CLI: ghosts, renames, changes, dry runs, locks."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import encode, random_image
from dedup_cli.cli import app

runner = CliRunner()


def run(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def hashed(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        (root / f"p{i}.png").write_bytes(encode(random_image(i, (80, 60)), "PNG"))
    run("hash", str(root), "--workers", "0")
    return root


def count(root: Path, table: str) -> int:
    return (
        sqlite3.connect(root / "image_database.db")
        .execute(f"SELECT COUNT(*) FROM {table}")
        .fetchone()[0]
    )


def test_unchanged_folder_changes_nothing(hashed: Path) -> None:
    report = run("prune-db", str(hashed))
    assert report["removed"] == [] and report["renamed"] == [] and report["changed"] == []
    assert report["unchanged"] == 4 and count(hashed, "embeddings") == 4


def test_deleted_files_lose_their_rows_and_embeddings(hashed: Path) -> None:
    (hashed / "p1.png").unlink()
    report = run("prune-db", str(hashed))
    assert report["removed"] == ["p1.png"]
    assert count(hashed, "files") == 3 and count(hashed, "embeddings") == 3


def test_renamed_files_keep_their_embeddings(hashed: Path) -> None:
    os.rename(hashed / "p2.png", hashed / "sub" / "renamed.png")
    report = run("prune-db", str(hashed))
    assert report["renamed"] == [{"from": "p2.png", "to": "sub/renamed.png"}]
    assert report["removed"] == [] and count(hashed, "embeddings") == 4
    again = run("hash", str(hashed), "--workers", "0")
    assert again["embedded"] == 0 and again["unchanged"] == 4


def test_changed_files_are_marked_for_re_embedding(hashed: Path) -> None:
    (hashed / "p0.png").write_bytes(encode(random_image(99, (80, 60)), "PNG"))
    os.utime(hashed / "p3.png", ns=(10**18, 10**18))  # touched: same bytes
    report = run("prune-db", str(hashed))
    assert report["changed"] == ["p0.png"] and report["touched"] == ["p3.png"]
    assert count(hashed, "embeddings") == 3
    again = run("hash", str(hashed), "--workers", "0")
    assert again["embedded"] == 1


def test_dry_run_reports_but_changes_nothing(hashed: Path) -> None:
    (hashed / "p1.png").unlink()
    os.rename(hashed / "p2.png", hashed / "moved.png")
    before = (hashed / "image_database.db").read_bytes()
    report = run("prune-db", str(hashed), "--dry-run")
    assert report["dry_run"] and report["removed"] == ["p1.png"]
    assert report["renamed"] == [{"from": "p2.png", "to": "moved.png"}]
    assert count(hashed, "files") == 4
    assert (hashed / "image_database.db").read_bytes() == before


def test_a_locked_database_is_one_clear_error(
    hashed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEDUP_LOCK_TIMEOUT", "0.2")
    (hashed / "p1.png").unlink()
    holder = sqlite3.connect(hashed / "image_database.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = runner.invoke(app, ["prune-db", str(hashed)])
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 1
    assert "in use by another dedup process" in result.stderr
    assert count(hashed, "files") == 4
