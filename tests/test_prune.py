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


def prune_refused(*args: str) -> str:
    """``prune-db`` that must refuse: exit 1 and one error line; returns that line."""
    result = runner.invoke(app, ["prune-db", *args])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to prune"), result.stderr
    return lines[0]


def test_an_emptied_root_is_never_taken_for_all_files_deleted(hashed: Path, tmp_path: Path) -> None:
    # The drive is unmounted / the photos were moved away: the root is there, but empty.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for photo in hashed.glob("*.png"):
        photo.rename(elsewhere / photo.name)
    before = (hashed / "image_database.db").read_bytes()
    line = prune_refused(str(hashed))
    assert "no image files" in line and "4 rows" in line and "--force" in line
    # Even a share limit of 100% does not make an empty root look like deleted files.
    prune_refused(str(hashed), "--max-forget", "1")
    assert count(hashed, "files") == 4 and count(hashed, "embeddings") == 4
    assert (hashed / "image_database.db").read_bytes() == before
    # A dry run changes nothing either way, and says what a real run would do.
    report = run("prune-db", str(hashed), "--dry-run")
    assert len(report["removed"]) == 4 and "no image files" in report["refusal"]
    assert count(hashed, "files") == 4
    # Back in place: nothing was lost, nothing is embedded again.
    for photo in elsewhere.iterdir():
        photo.rename(hashed / photo.name)
    assert run("hash", str(hashed), "--workers", "0")["embedded"] == 0


def test_an_emptied_root_with_a_single_row_is_refused_too(tmp_path: Path) -> None:
    root = tmp_path / "one"
    root.mkdir()
    (root / "only.png").write_bytes(encode(random_image(5, (80, 60)), "PNG"))
    run("hash", str(root), "--workers", "0")
    (root / "only.png").unlink()
    prune_refused(str(root), "--max-forget", "1")
    assert count(root, "files") == 1


def test_a_missing_root_changes_nothing(hashed: Path, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    (hashed / "image_database.db").rename(db)
    before = db.read_bytes()
    gone = tmp_path / "unmounted"
    result = runner.invoke(app, ["prune-db", str(gone), "--db", str(db)])
    assert result.exit_code != 0 and "does not exist" in result.stderr
    assert db.read_bytes() == before and not gone.exists()


def test_forgetting_more_than_the_allowed_share_is_refused(hashed: Path) -> None:
    for i in (0, 1, 2):
        (hashed / f"p{i}.png").unlink()
    line = prune_refused(str(hashed))
    assert "3 of 4 rows" in line and "--max-forget" in line and "--force" in line
    assert count(hashed, "files") == 4 and count(hashed, "embeddings") == 4
    prune_refused(str(hashed), "--max-forget", "0.7")
    report = run("prune-db", str(hashed), "--max-forget", "0.75")
    assert report["removed"] == ["p0.png", "p1.png", "p2.png"]
    assert count(hashed, "files") == 1


def test_force_prunes_over_the_share_and_an_empty_root(hashed: Path) -> None:
    for i in (0, 1, 2):
        (hashed / f"p{i}.png").unlink()
    report = run("prune-db", str(hashed), "--force")
    assert report["removed"] == ["p0.png", "p1.png", "p2.png"] and report["refusal"] is None
    assert count(hashed, "files") == 1 and count(hashed, "embeddings") == 1
    (hashed / "p3.png").unlink()
    report = run("prune-db", str(hashed), "--force")
    assert report["removed"] == ["p3.png"]
    assert count(hashed, "files") == 0 and count(hashed, "embeddings") == 0


def test_a_normal_prune_of_a_few_deleted_files_is_not_refused(hashed: Path) -> None:
    (hashed / "p0.png").unlink()
    (hashed / "p1.png").unlink()  # half the rows: at the limit, not over it
    report = run("prune-db", str(hashed))
    assert report["removed"] == ["p0.png", "p1.png"] and report["refusal"] is None
    assert count(hashed, "files") == 2
    human = runner.invoke(app, ["prune-db", str(hashed)])
    assert human.exit_code == 0 and "refusing" not in human.stderr


def test_compacting_reports_the_real_size_not_the_database_twice(tmp_path: Path) -> None:
    """In WAL mode VACUUM writes the compacted database into the WAL: counted with the file
    it replaces, the database seemed to double. After prune-db the WAL is folded back, and
    the size reported is what the folder holds."""
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(40):
        (root / f"p{i}.png").write_bytes(encode(random_image(i, (80, 60)), "PNG"))
    run("hash", str(root), "--workers", "0")
    for i in range(30):
        (root / f"p{i}.png").unlink()
    report = run("prune-db", str(root), "--force")
    db = root / "image_database.db"
    wal = Path(f"{db}-wal")
    on_disk = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    assert report["bytes_after"] == on_disk
    assert report["bytes_after"] < report["bytes_before"]
