"""Faults: SIGKILL while hashing, Ctrl-C during an action, two processes on one database,
a full disk. Nothing the user owns is lost, nothing is left half done, and the database stays
consistent (``PRAGMA integrity_check`` is ``ok``)."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import encode, random_image
from dedup_cli.cli import app

DEDUP = str(Path(sys.executable).with_name("dedup"))
runner = CliRunner()


def make_photos(root: Path, count: int, side: int = 320) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        (root / f"img_{k:03d}.jpg").write_bytes(encode(random_image(k, (side, side)), quality=90))


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def embedding_rows(db: Path) -> tuple[int, int]:
    """(rows, distinct files) of the embeddings table."""
    with sqlite3.connect(db) as connection:
        rows, files = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT file_id) FROM embeddings"
        ).fetchone()
    return int(rows), int(files)


def hash_process(root: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen(
        [DEDUP, "hash", str(root), "--workers", "0", "--batch-size", "4", "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        # A shell starts background jobs with SIGINT ignored and children inherit it: give
        # dedup the default, so that the Ctrl-C test also works when pytest runs in the
        # background.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def embedded_so_far(db: Path) -> int:
    """Embeddings committed so far (read while another process writes: WAL allows it)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def test_sigkill_while_hashing_loses_nothing_and_embeds_each_file_once(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    total = 160
    make_photos(root, total, side=160)
    db = root / "image_database.db"
    rng = random.Random(5)
    kills = []
    for _ in range(4):
        # Kill at a random point of the work: once a random number of further files is saved.
        target = embedded_so_far(db) + rng.randint(4, 30)
        process = hash_process(root)
        while process.poll() is None and embedded_so_far(db) < target:
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills.append(embedded_so_far(db))
        process.wait(timeout=60)
        assert integrity(db) == "ok"
    assert len(kills) == 4, "every kill should land while hashing"
    rows_before, files_before = embedding_rows(db)
    assert rows_before == files_before < total  # the kills interrupted the work
    final = subprocess.run(
        [DEDUP, "hash", str(root), "--workers", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["embedded"] == total - rows_before  # only what the kills left undone
    assert embedding_rows(db) == (total, total)  # every file embedded exactly once
    assert integrity(db) == "ok"


def test_second_process_waits_then_exits_with_a_clear_message(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_photos(root, 6, side=96)
    assert runner.invoke(app, ["hash", str(root), "--workers", "0", "-q"]).exit_code == 0
    (root / "new.jpg").write_bytes(encode(random_image(99, (96, 96)), quality=90))
    db = root / "image_database.db"
    holder = sqlite3.connect(db, timeout=0)
    holder.execute("BEGIN IMMEDIATE")  # another dedup process in the middle of a write
    try:
        started = time.perf_counter()
        result = hash_process(root, env={"DEDUP_LOCK_TIMEOUT": "1"})
        _out, err = result.communicate(timeout=120)
        waited = time.perf_counter() - started
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1
    assert "in use by another dedup process" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert waited >= 1.0
    assert integrity(db) == "ok"
    # Once the other process is done, the same command goes through.
    again = runner.invoke(app, ["hash", str(root), "--workers", "0", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["embedded"] == 1


def test_two_processes_at_once_never_corrupt_the_database(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_photos(root, 40, side=200)
    db = root / "image_database.db"
    first, second = hash_process(root), hash_process(root)
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in (first, second)]
    for code, err in results:
        assert "Traceback" not in err
        assert code == 0 or (code == 1 and "in use by another dedup process" in err), err
    assert integrity(db) == "ok"
    final = runner.invoke(app, ["hash", str(root), "--workers", "0", "--json"])
    assert final.exit_code == 0
    assert embedding_rows(db) == (40, 40)


def test_ctrl_c_during_an_action_finishes_the_current_file_and_stops(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_cli.act.execute as act

    real_move = act.transfer
    moved: list[str] = []

    def move_then_ctrl_c(source: object, *args: object) -> None:
        # Ctrl-C arrives in the middle of the first move: that move still completes.
        os.kill(os.getpid(), signal.SIGINT)
        real_move(source, *args)  # type: ignore[arg-type]
        moved.append(str(source))

    monkeypatch.setattr(act, "transfer", move_then_ctrl_c)
    quarantine = tmp_path / "quarantine"
    result = runner.invoke(
        app,
        [
            "find",
            str(library),
            "--json",
            "--workers",
            "0",
            "--action",
            "move",
            "--to",
            str(quarantine),
            "--yes",
        ],
    )
    assert result.exit_code == 130, result.stderr
    assert "interrupted: 1 file(s) done and journaled, the rest untouched" in result.stderr
    document = json.loads(result.stdout)
    outcome = document["action"]
    assert outcome["interrupted"] is True and len(outcome["done"]) == 1 and moved
    planned = [Path(p) for g in document["groups"] for p in g["remove"]]
    assert len(planned) > 1
    assert sum(not p.exists() for p in planned) == 1  # only the file in flight moved
    with sqlite3.connect(library / "image_database.db") as connection:
        statuses = [r[0] for r in connection.execute("SELECT status FROM actions")]
    assert statuses == ["done"]  # nothing pending: every action happened and is journaled
    # Undo the run, with a Ctrl-C again in the middle of its first move: it stops after
    # that file; a second undo restores the rest.
    moved.clear()
    first = runner.invoke(app, ["undo", outcome["run_id"], "--json"])
    assert first.exit_code == 130 and json.loads(first.stdout)["interrupted"] is True
    assert len(json.loads(first.stdout)["restored"]) == len(moved) == 1
    monkeypatch.setattr(act, "transfer", real_move)
    again = runner.invoke(app, ["undo", outcome["run_id"], "--json"])
    assert again.exit_code == 0, again.stderr
    assert all(p.exists() for p in planned)


def test_full_disk_during_a_move_leaves_the_file_in_place(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_cli.act.execute as act

    def no_space(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(act, "transfer", no_space)
    result = runner.invoke(
        app,
        [
            "find",
            str(library),
            "--json",
            "--workers",
            "0",
            "--action",
            "move",
            "--to",
            str(tmp_path / "q"),
            "--yes",
        ],
    )
    assert result.exit_code == 3, result.stderr  # files that failed: not a clean run
    outcome = json.loads(result.stdout)["action"]
    assert outcome["done"] == [] and len(outcome["failed"]) >= 2
    assert all("No space left" in f["reason"] for f in outcome["failed"])
    assert all(Path(f["path"]).exists() for f in outcome["failed"])


def test_a_partly_failed_action_names_every_failed_file_and_exits_3(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One file of the plan fails, the others are moved: the human output names the failed
    file with its reason, and the exit code (3, documented) tells a script the run was not
    clean though it did the rest."""
    import dedup_cli.act.execute as act

    real_transfer = act.transfer

    def fails_for_one(source, target_fd, name, snapshot):  # type: ignore[no-untyped-def]
        if name == "astronaut_small.jpg":
            raise OSError(errno.EIO, "Input/output error")
        return real_transfer(source, target_fd, name, snapshot)

    monkeypatch.setattr(act, "transfer", fails_for_one)
    args = ["find", str(library), "--workers", "0", "--action", "move", "--to", str(tmp_path / "q")]
    result = runner.invoke(app, [*args, "--yes"])
    assert result.exit_code == 3, result.stderr
    out = " ".join(result.stdout.split())
    assert "failed" in out and "astronaut_small.jpg: Input/output error" in out
    assert "1 failed" in out and "3 file(s)" in out  # the rest was done
    assert "left in place" in result.stderr
    assert (library / "trip" / "astronaut_small.jpg").exists()


def test_full_disk_for_the_database_is_one_clear_line(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's page limit makes the database really full (SQLITE_FULL) mid-run."""
    from dedup_cli.store import database

    real_on_connect = database._on_connect

    def tiny_database(connection: sqlite3.Connection, record: object) -> None:
        real_on_connect(connection, record)
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {max(pages, 1) + 2}")

    assert runner.invoke(app, ["hash", str(library), "--workers", "0", "-q"]).exit_code == 0
    for k in range(12):
        (library / f"new_{k}.jpg").write_bytes(encode(random_image(k, (96, 96)), quality=90))
    monkeypatch.setattr(database, "_on_connect", tiny_database)
    result = runner.invoke(app, ["hash", str(library), "--workers", "0", "--batch-size", "4"])
    assert result.exit_code == 1
    assert "no space left for database" in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setattr(database, "_on_connect", real_on_connect)
    assert integrity(library / "image_database.db") == "ok"
    # With space again, the same command finishes the work.
    again = runner.invoke(app, ["hash", str(library), "--workers", "0", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["embedded"] >= 1


def test_ctrl_c_while_hashing_stops_cleanly_and_the_rerun_resumes(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    total = 120
    make_photos(root, total, side=160)
    db = root / "image_database.db"
    process = hash_process(root)
    while process.poll() is None and embedded_so_far(db) < 8:
        time.sleep(0.005)
    assert process.poll() is None, "Ctrl-C should land while hashing"
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted: finished batches are saved" in err and "Traceback" not in err
    assert integrity(db) == "ok"
    saved, _files = embedding_rows(db)
    assert 8 <= saved < total
    rerun = subprocess.run(
        [DEDUP, "hash", str(root), "--workers", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["embedded"] == total - saved
    assert embedding_rows(db) == (total, total)


def actions_so_far(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM actions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_sigkill_during_a_move_then_undo_restores_every_file(tmp_path: Path) -> None:
    """Killed in the middle of moving copies away: nothing is lost, and ``dedup undo`` (which
    finds the killed run) puts every moved file back, the one in flight included."""
    root = tmp_path / "photos"
    make_photos(root, 10, side=96)
    for k in range(10):  # ten byte copies of each photo: 100 planned moves
        for c in range(10):
            (root / f"copy_{k}_{c}.jpg").write_bytes((root / f"img_{k:03d}.jpg").read_bytes())
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    assert runner.invoke(app, ["hash", str(root), "--workers", "0", "-q"]).exit_code == 0
    db = root / "image_database.db"
    process = subprocess.Popen(
        [
            DEDUP,
            "find",
            str(root),
            "--workers",
            "0",
            "--action",
            "move",
            "--to",
            str(tmp_path / "quarantine"),
            "--yes",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    while process.poll() is None and actions_so_far(db) < 20:
        time.sleep(0.001)
    assert process.poll() is None, "the kill should land while moving"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert integrity(db) == "ok"
    remaining = {p.name for p in root.iterdir()}
    quarantined = {p.name for p in (tmp_path / "quarantine").rglob("*") if p.is_file()}
    assert (
        set(before)
        == (remaining - {db.name, f"{db.name}-wal", f"{db.name}-shm", ".dedup-runs"}) | quarantined
    )  # nothing lost
    # The kill lands once 20 rows are journaled; the 20th is written ``pending`` before its
    # file moves, so 19 may have reached the quarantine (seen once in CI).
    assert 19 <= len(quarantined) < 100
    undo = subprocess.run(  # run in the folder, as a user would: its database's last run
        [DEDUP, "undo", "--json"], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert undo.returncode == 0, undo.stderr
    assert len(json.loads(undo.stdout)["restored"]) == len(quarantined)
    for name, content in before.items():
        assert (root / name).read_bytes() == content
