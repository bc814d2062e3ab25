"""Safety of actions: re-checks before touching a file, nothing outside the root, undo."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import encode, random_image
from dedup_cli.act.execute import execute_plan, undo_run
from dedup_cli.core.files import FileInfo
from dedup_cli.core.plan import Plan, PlannedGroup, Removal
from dedup_cli.media.decode import content_hash
from dedup_cli.store import Store

# A keeper of a near pair must still decode at the moment of acting: a real (tiny) image.
KEEPER = encode(random_image(7), "PNG")


def info(root: Path, relative: str) -> FileInfo:
    path = root / relative
    st_ = path.stat()
    return FileInfo(
        relative, path, st_.st_size, st_.st_mtime_ns, content_hash(path.read_bytes()), 10, 10
    )


def plan_of(root: Path, keep: FileInfo, *remove: FileInfo) -> Plan:
    return Plan(
        root=root,
        model="m",
        threshold=0.9,
        keep_strategy="largest",
        groups=[PlannedGroup(keep, tuple(Removal(r, 0.99, "pixels") for r in remove))],
    )


def setup(tmp_path: Path) -> tuple[Path, Store]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "keep.jpg").write_bytes(KEEPER)
    (root / "copy.jpg").write_bytes(b"copy bytes")
    return root, Store(tmp_path / "db.db")


def test_file_changed_after_planning_is_skipped(tmp_path: Path) -> None:
    root, store = setup(tmp_path)
    plan = plan_of(root, info(root, "keep.jpg"), info(root, "copy.jpg"))
    (root / "copy.jpg").write_bytes(b"new content!")
    report = execute_plan(plan, store, "delete")
    assert report.done == [] and "changed" in report.skipped[0]["reason"]
    assert (root / "copy.jpg").read_bytes() == b"new content!"


def test_same_size_and_mtime_but_other_bytes_is_skipped(tmp_path: Path) -> None:
    root, store = setup(tmp_path)
    planned = info(root, "copy.jpg")
    (root / "copy.jpg").write_bytes(b"COPY BYTES")  # same length
    os.utime(root / "copy.jpg", ns=(planned.mtime_ns, planned.mtime_ns))
    report = execute_plan(plan_of(root, info(root, "keep.jpg"), planned), store, "delete")
    assert report.skipped[0]["reason"] == "file content changed since planning"
    assert (root / "copy.jpg").exists()


def test_missing_keeper_blocks_removal(tmp_path: Path) -> None:
    root, store = setup(tmp_path)
    plan = plan_of(root, info(root, "keep.jpg"), info(root, "copy.jpg"))
    (root / "keep.jpg").unlink()
    report = execute_plan(plan, store, "delete")
    assert report.done == [] and "keeper" in report.skipped[0]["reason"]
    assert (root / "copy.jpg").exists()


def test_symlink_out_of_the_root_is_never_followed(tmp_path: Path) -> None:
    root, store = setup(tmp_path)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"precious")
    os.symlink(outside, root / "link.jpg")
    fake = FileInfo(
        "link.jpg",
        root / "link.jpg",
        8,
        outside.stat().st_mtime_ns,
        content_hash(b"precious"),
        1,
        1,
    )
    report = execute_plan(plan_of(root, info(root, "keep.jpg"), fake), store, "delete")
    assert report.done == [] and outside.read_bytes() == b"precious"


paths_strategy = st.sampled_from(
    [
        "../outside.jpg",
        "/tmp/../{tmp}/outside.jpg",
        "sub/../../outside.jpg",
        "{tmp}/outside.jpg",
        "copy.jpg",
    ]
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(relative=paths_strategy, action=st.sampled_from(["delete", "move", "trash"]))
def test_nothing_outside_the_root_is_ever_touched(
    tmp_path: Path, relative: str, action: str
) -> None:
    base = tmp_path / f"case{abs(hash((relative, action)))}"
    base.mkdir(exist_ok=True)
    root = base / "root"
    root.mkdir(exist_ok=True)
    (root / "keep.jpg").write_bytes(KEEPER)
    outside = base / "outside.jpg"
    outside.write_bytes(b"precious")
    target = Path(relative.format(tmp=base))
    absolute = target if target.is_absolute() else root / target
    victim = outside if "outside" in relative else absolute
    if not victim.exists():
        victim.write_bytes(b"precious")
    st_ = victim.stat()
    fake = FileInfo(
        relative, absolute, st_.st_size, st_.st_mtime_ns, content_hash(victim.read_bytes()), 1, 1
    )
    store = Store(base / "db.db")
    report = execute_plan(
        plan_of(root, info(root, "keep.jpg"), fake), store, action, move_to=base / "q"
    )
    if "outside" in relative:
        assert report.done == [] and outside.read_bytes() == b"precious"
    assert (root / "keep.jpg").read_bytes() == KEEPER
    store.close()


def test_undo_restores_moved_files_byte_for_byte(tmp_path: Path) -> None:
    root, store = setup(tmp_path)
    (root / "sub").mkdir()
    (root / "sub" / "copy2.jpg").write_bytes(os.urandom(5000))
    original = (root / "sub" / "copy2.jpg").read_bytes()
    plan = plan_of(
        root, info(root, "keep.jpg"), info(root, "copy.jpg"), info(root, "sub/copy2.jpg")
    )
    report = execute_plan(plan, store, "move", move_to=tmp_path / "q")
    assert len(report.done) == 2 and not (root / "sub" / "copy2.jpg").exists()
    assert (tmp_path / "q" / "sub" / "copy2.jpg").read_bytes() == original
    undone = undo_run(store, report.run_id)
    assert len(undone.restored) == 2
    assert (root / "sub" / "copy2.jpg").read_bytes() == original
    assert (root / "copy.jpg").read_bytes() == b"copy bytes"


def test_journal_records_every_decision(tmp_path: Path) -> None:
    root, store = setup(tmp_path)
    (root / "gone.jpg").write_bytes(b"x")
    gone = info(root, "gone.jpg")
    (root / "gone.jpg").unlink()
    plan = plan_of(root, info(root, "keep.jpg"), info(root, "copy.jpg"), gone)
    report = execute_plan(plan, store, "delete")
    statuses = sorted((Path(a["path"]).name, a["status"]) for a in store.run_actions(report.run_id))
    assert statuses == [("copy.jpg", "done"), ("gone.jpg", "skipped")]


def test_undo_restores_a_move_left_pending_by_a_killed_run(tmp_path: Path) -> None:
    """SIGKILL after the move but before the journal said ``done``: the file is in quarantine
    with a ``pending`` row. Undo restores it; a pending row whose move never happened is left
    alone."""
    root, store = setup(tmp_path)
    plan = plan_of(root, info(root, "keep.jpg"), info(root, "copy.jpg"))
    report = execute_plan(plan, store, "move", move_to=tmp_path / "q")
    moved = Path(report.done[0]["destination"])
    with sqlite3.connect(store.path) as connection:
        connection.execute("UPDATE actions SET status = 'pending'")  # as a kill would leave it
        connection.execute(
            "INSERT INTO actions (run_id, path, keeper, action, destination, size, mtime_ns, "
            "content_hash, status, at) SELECT run_id, ?, keeper, action, ?, size, mtime_ns, "
            "content_hash, 'pending', at FROM actions",
            (str(root / "never_moved.jpg"), str(tmp_path / "q" / "never_moved.jpg")),
        )
    undone = undo_run(store, report.run_id)
    assert undone.restored == [str(root / "copy.jpg")]
    assert (root / "copy.jpg").read_bytes() == b"copy bytes" and not moved.exists()
