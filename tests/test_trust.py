"""Never lose a photo, round 2: what a file, a database, a journal or another process may lie
about, each through the real CLI (or the library with a hook where a race must be forced).

Every test here failed before the fix it names (dedup 0.1.0)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import encode, random_image
from dedup_cli.cli import app
from dedup_cli.media.decode import content_hash

runner = CliRunner()
DEDUP = [sys.executable, "-m", "dedup_cli"]


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def photo(seed: int, side: int = 160) -> bytes:
    return encode(random_image(seed, (side, side)), quality=92)


def same_size_damage(path: Path) -> None:
    """Bit rot: bytes change in place, size and mtime stay as they were (each file its own
    way, so two damaged copies do not become identical again)."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = bytes([zlib.crc32(path.name.encode()) % 250 + 1]) * 400
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def hashed_pair(tmp_path: Path, name: str = "photos") -> Path:
    """A folder with two byte-identical photos (``a.jpg`` is the keeper by path order) and
    one other photo, embedded."""
    root = tmp_path / name
    root.mkdir()
    (root / "a.jpg").write_bytes(photo(1))
    (root / "b.jpg").write_bytes(photo(1))
    (root / "other.jpg").write_bytes(photo(2))
    result = invoke("hash", str(root), "--workers", "0", "-q")
    assert result.exit_code == 0, result.stderr
    return root


def act(root: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return invoke("find", str(root), "--json", "--workers", "0", "--yes", *extra, env=env)


# -- 1. keeper bit rot ----------------------------------------------------------------------


def test_a_rotted_keeper_never_costs_the_intact_copy(tmp_path: Path) -> None:
    root = hashed_pair(tmp_path)
    intact = (root / "b.jpg").read_bytes()
    same_size_damage(root / "a.jpg")
    result = act(root, "--action", "delete")
    assert (root / "b.jpg").read_bytes() == intact
    assert (root / "a.jpg").exists()
    document = json.loads(result.stdout)
    assert document["stats"]["stored_hashes_wrong"] == 1


def test_keeper_damaged_between_plan_and_action_is_caught_at_the_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan was right; the keeper rots a moment before the removal."""
    root = hashed_pair(tmp_path)
    import dedup_cli.cli.acting as acting

    def confirm_then_rot(*_args: object) -> None:
        same_size_damage(root / "a.jpg")

    monkeypatch.setattr(acting, "confirm", confirm_then_rot)
    result = act(root, "--action", "delete")
    assert result.exit_code == 3
    assert (root / "b.jpg").exists() and (root / "a.jpg").exists()
    skipped = json.loads(result.stdout)["action"]["skipped"]
    assert [s["reason"] for s in skipped] == [
        "keeper no longer has the same bytes (damaged or changed in place)"
    ]
    assert "1 file(s) skipped" in result.stderr


def test_a_near_keeper_that_no_longer_decodes_is_not_trusted(tmp_path: Path) -> None:
    from dedup_cli.act.execute import execute_plan
    from dedup_cli.core.files import FileInfo
    from dedup_cli.core.plan import Plan, PlannedGroup, Removal
    from dedup_cli.store import Store

    root = tmp_path / "r"
    root.mkdir()
    (root / "keep.png").write_bytes(encode(random_image(3), "PNG"))
    (root / "copy.jpg").write_bytes(photo(3))

    def info(name: str) -> FileInfo:
        p = root / name
        s = p.stat()
        return FileInfo(name, p, s.st_size, s.st_mtime_ns, content_hash(p.read_bytes()), 1, 1)

    keeper, copy = info("keep.png"), info("copy.jpg")
    (root / "keep.png").write_bytes(b"\x89PNG not an image any more")
    broken = info("keep.png")  # planned with these (broken) bytes: hash matches, no decode
    plan = Plan(root, "m", 0.9, "largest", [PlannedGroup(broken, (Removal(copy, 0.99, "pixels"),))])
    with Store(tmp_path / "db.db") as store:
        report = execute_plan(plan, store, "delete")
    assert report.skipped[0]["reason"] == "keeper no longer decodes"
    assert (root / "copy.jpg").exists()
    assert keeper.content_hash != broken.content_hash


# -- 2. two runs at once ----------------------------------------------------------------------


def _hold_folder(root: str, ready: Any, release: Any) -> None:
    from dedup_cli.act.locking import acting_on

    with acting_on([Path(root)]):
        ready.set()
        release.wait(30)


@pytest.fixture
def held() -> Any:
    """Hold a folder's acting lock in another process: ``held(root)``."""
    context = multiprocessing.get_context("spawn")
    processes: list[Any] = []

    def hold(root: Path) -> Any:
        ready, release = context.Event(), context.Event()
        process = context.Process(target=_hold_folder, args=(str(root), ready, release))
        process.start()
        assert ready.wait(60)
        processes.append((process, release))
        return release

    yield hold
    for process, release in processes:
        release.set()
        process.join(30)


def test_a_second_acting_run_waits_then_refuses_with_one_line(tmp_path: Path, held: Any) -> None:
    root = hashed_pair(tmp_path)
    held(root)
    result = act(root, "--action", "delete", env={"DEDUP_LOCK_TIMEOUT": "0.5"})
    assert result.exit_code == 1
    assert "another dedup run is acting on" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (root / "a.jpg").exists() and (root / "b.jpg").exists()
    # A report changes nothing and does not wait.
    assert invoke("find", str(root), "--json", "--workers", "0").exit_code == 0


def test_a_run_on_a_parent_folder_excludes_a_run_inside_it(tmp_path: Path, held: Any) -> None:
    root = hashed_pair(tmp_path)
    held(tmp_path)  # someone acting on the folder that contains ours
    result = act(root, "--action", "delete", env={"DEDUP_LOCK_TIMEOUT": "0.3"})
    assert result.exit_code == 1 and "another dedup run" in result.stderr


def test_the_lock_dies_with_its_process(tmp_path: Path, held: Any) -> None:
    root = hashed_pair(tmp_path)
    release = held(root)
    release.set()  # the holder exits: the kernel drops its lock
    time.sleep(0.5)
    result = act(root, "--action", "delete", env={"DEDUP_LOCK_TIMEOUT": "20"})
    assert result.exit_code == 0, result.stderr
    assert (root / "a.jpg").exists() and not (root / "b.jpg").exists()


def test_two_runs_with_opposite_keep_rules_never_remove_a_whole_group(tmp_path: Path) -> None:
    """Started together, one keeps the oldest, one the newest: serialised, the second finds
    its keeper gone and removes nothing of that group."""
    root = tmp_path / "photos"
    root.mkdir()
    for k in range(6):
        for copy, age in (("old", 1_000), ("new", 2_000)):
            path = root / f"p{k}_{copy}.jpg"
            path.write_bytes(photo(10 + k))
            os.utime(path, (age, age))
    assert invoke("hash", str(root), "--workers", "0", "-q").exit_code == 0
    contents = {content_hash(p.read_bytes()) for p in root.glob("*.jpg")}
    env = {**os.environ, "DEDUP_LOCK_TIMEOUT": "120"}
    runs = [
        subprocess.Popen(
            [*DEDUP, "find", str(root), "--action", "delete", "--yes", "--workers", "0",
             "--keep", keep, "-q"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for keep in ("oldest", "newest")
    ]  # fmt: skip
    outcomes = [r.communicate(timeout=300) for r in runs]
    left = {content_hash(p.read_bytes()) for p in root.glob("*.jpg")}
    assert left == contents, outcomes
    assert len(list(root.glob("*.jpg"))) == 6


# -- 3. a database is a cache, not a witness -----------------------------------------------


def test_a_database_claiming_two_photos_are_identical_is_not_believed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "a.jpg").write_bytes(photo(20))
    (root / "b.jpg").write_bytes(photo(21))
    assert invoke("hash", str(root), "--workers", "0", "-q").exit_code == 0
    with sqlite3.connect(root / "image_database.db") as db:
        (hash_a,) = db.execute("SELECT content_hash FROM files WHERE path = 'a.jpg'").fetchone()
        (vector,) = db.execute(
            "SELECT vector FROM embeddings e JOIN files f ON f.id = e.file_id WHERE path = 'a.jpg'"
        ).fetchone()
        db.execute("UPDATE files SET content_hash = ? WHERE path = 'b.jpg'", (hash_a,))
        db.execute(
            "UPDATE embeddings SET vector = ? WHERE file_id = "
            "(SELECT id FROM files WHERE path = 'b.jpg')",
            (vector,),
        )
    for command in (["find", str(root)], ["filename-clean", str(root)]):
        result = invoke(*command, "--json", "--action", "delete", "--yes")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["groups"] == []
    assert (root / "a.jpg").exists() and (root / "b.jpg").exists()


@pytest.mark.parametrize("lie", ["the smaller copy is larger", "the larger copy is smaller"])
def test_a_database_that_lies_about_sizes_in_pixels_never_costs_the_larger_copy(
    tmp_path: Path, photos: dict[str, Any], lie: str
) -> None:
    # The keep rule reads widths and heights from the database; a store that lies about
    # them (an import from elsewhere, a tampered file) made dedup keep the small copy.
    root = tmp_path / "photos"
    root.mkdir()
    picture = photos["coffee"]
    (root / "big.jpg").write_bytes(encode(picture, quality=92))
    (root / "small.jpg").write_bytes(encode(picture.resize((200, 133)), quality=92))
    big = (root / "big.jpg").read_bytes()
    assert invoke("hash", str(root), "--workers", "0", "-q").exit_code == 0
    lied_about, side = ("small.jpg", 8000) if lie.startswith("the smaller") else ("big.jpg", 8)
    with sqlite3.connect(root / "image_database.db") as db:
        db.execute(
            "UPDATE files SET width = ?, height = ? WHERE path = ?", (side, side, lied_about)
        )
    result = act(root, "--action", "move", "--to", str(tmp_path / "q"))
    document = json.loads(result.stdout)
    assert [Path(g["keep"]).name for g in document["groups"]] == ["small.jpg"]  # the lie planned
    assert (root / "big.jpg").read_bytes() == big
    assert [s["reason"] for s in document["action"]["skipped"]] == [
        "file has more pixels than its keeper, unlike what the plan was made with"
    ]
    assert result.exit_code != 0


def test_cross_does_not_believe_a_lying_database_either(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.jpg").write_bytes(photo(30))
    (b / "y.jpg").write_bytes(photo(31))
    for folder in (a, b):
        assert invoke("hash", str(folder), "--workers", "0", "-q").exit_code == 0
    with sqlite3.connect(a / "image_database.db") as db:
        (hash_x,) = db.execute("SELECT content_hash FROM files").fetchone()
    with sqlite3.connect(b / "image_database.db") as db:
        db.execute("UPDATE files SET content_hash = ?", (hash_x,))
    result = invoke("cross", str(a), str(b), "--json", "--action", "delete", "--yes")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["groups"] == []
    assert (b / "y.jpg").exists()


# -- 5, 6. undo trusts only this user's record; nothing stored executes --------------------


def forge_run(
    db: Path, quarantined: Path, target: Path, run_id: str = "29990101-000000-evil"
) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO runs (id, created_at, root, action, model, threshold, manifest) "
            "VALUES (?, 32503680000, '/', 'move', 'effnet', 0.9, NULL)",
            (run_id,),
        )
        connection.execute(
            "INSERT INTO actions (run_id, path, keeper, action, destination, size, mtime_ns, "
            "content_hash, status, at) VALUES (?, ?, '', 'move', ?, 1, 1, ?, 'done', 0)",
            (run_id, str(target), str(quarantined), content_hash(quarantined.read_bytes())),
        )


def test_undo_ignores_a_forged_future_run(tmp_path: Path) -> None:
    root = hashed_pair(tmp_path)
    quarantine = tmp_path / "q"
    assert act(root, "--action", "move", "--to", str(quarantine)).exit_code == 0
    payload = tmp_path / "payload"
    payload.write_text("evil")
    dotfile = tmp_path / "home" / ".bashrc"
    forge_run(root / "image_database.db", payload, dotfile)
    result = invoke("undo", "--db", str(root / "image_database.db"))
    assert result.exit_code == 0, result.stderr
    assert not dotfile.exists() and payload.exists()
    assert (root / "b.jpg").exists()  # the real run was undone instead
    forged = invoke("undo", "29990101-000000-evil", "--db", str(root / "image_database.db"))
    assert forged.exit_code == 1 and "not recorded by your dedup" in forged.stderr
    assert not dotfile.exists()


def test_undo_never_writes_outside_the_runs_folder(tmp_path: Path) -> None:
    """A real run whose journal row was edited to send the file elsewhere."""
    root = hashed_pair(tmp_path)
    quarantine = tmp_path / "q"
    result = act(root, "--action", "move", "--to", str(quarantine))
    run_id = json.loads(result.stdout)["run_id"]
    elsewhere = tmp_path / "elsewhere" / ".profile"
    with sqlite3.connect(root / "image_database.db") as db:
        db.execute("UPDATE actions SET path = ?", (str(elsewhere),))
    undone = invoke("undo", run_id)
    assert undone.exit_code == 3
    assert "outside the run's folder" in undone.stdout
    assert not elsewhere.exists() and (quarantine / "b.jpg").exists()


@pytest.mark.parametrize(
    "stored",
    [
        "CREATE TRIGGER redirect AFTER INSERT ON actions BEGIN "
        "UPDATE actions SET destination = '/tmp/elsewhere' WHERE id = new.id; END",
        "CREATE VIEW innocent AS SELECT * FROM files",
    ],
)
def test_a_database_with_stored_code_is_refused(tmp_path: Path, stored: str) -> None:
    root = hashed_pair(tmp_path)
    with sqlite3.connect(root / "image_database.db") as db:
        db.execute(stored)
    result = act(root, "--action", "move", "--to", str(tmp_path / "q"))
    assert result.exit_code == 1
    assert "which dedup never creates" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (root / "b.jpg").exists() and not (tmp_path / "q").exists()


# -- 7, 8. the act window; a quarantine that leads back inside ----------------------------


def test_a_folder_swapped_for_a_symlink_after_the_check_cannot_redirect_a_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_cli.act.execute as act_module

    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "keep.jpg").write_bytes(photo(40))
    (root / "sub" / "copy.jpg").write_bytes(photo(40))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "copy.jpg").write_bytes(photo(40))  # the user's only copy elsewhere
    assert invoke("hash", str(root), "--workers", "0", "-q").exit_code == 0
    original = act_module.check_removal

    def check_then_swap(*args: Any) -> Any:
        snapshot = original(*args)
        (root / "sub").rename(root / "sub_real")
        os.symlink(outside, root / "sub")
        return snapshot

    monkeypatch.setattr(act_module, "check_removal", check_then_swap)
    result = act(root, "--action", "delete")
    assert result.exit_code == 0, result.stderr
    assert (outside / "copy.jpg").exists()  # never followed
    assert not (root / "sub_real" / "copy.jpg").exists()  # the checked file went


def test_a_quarantine_above_the_root_never_puts_a_file_back_inside(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "photos").mkdir(parents=True)
    (root / "keep.jpg").write_bytes(photo(50))
    (root / "photos" / "z.jpg").write_bytes(photo(50))  # quarantined as <to>/photos/z.jpg
    assert invoke("hash", str(root), "--workers", "0", "-q").exit_code == 0
    result = act(root, "--action", "move", "--to", str(tmp_path))
    assert result.exit_code == 3
    skipped = json.loads(result.stdout)["action"]["skipped"]
    assert "inside a scanned folder" in skipped[0]["reason"]
    assert sorted(p.name for p in root.rglob("*.jpg")) == ["keep.jpg", "z.jpg"]


# -- 9, 10, 11. undo always finishes, and checks what it restores -------------------------


def test_undo_refuses_a_run_still_acting_and_completes_one_that_died(
    tmp_path: Path, held: Any
) -> None:
    root = hashed_pair(tmp_path)
    quarantine = tmp_path / "q"
    run_id = json.loads(act(root, "--action", "move", "--to", str(quarantine)).stdout)["run_id"]
    with sqlite3.connect(root / "image_database.db") as db:  # as if it were still acting
        db.execute("UPDATE runs SET finished_at = NULL")
    release = held(root)
    busy = invoke("undo", run_id, env={"DEDUP_LOCK_TIMEOUT": "0.3"})
    assert busy.exit_code == 1 and "still acting" in busy.stderr
    assert (quarantine / "b.jpg").exists()
    release.set()  # the acting process is gone (killed): undo completes its run
    time.sleep(0.5)
    done = invoke("undo", run_id)
    assert done.exit_code == 0, done.stderr
    assert (root / "b.jpg").exists() and not (quarantine / "b.jpg").exists()


def test_one_entry_that_cannot_be_restored_does_not_strand_the_others(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for folder in ("s1", "s2"):
        (root / folder).mkdir(parents=True)
    (root / "keep1.jpg").write_bytes(photo(60))
    (root / "s1" / "copy1.jpg").write_bytes(photo(60))
    (root / "keep2.jpg").write_bytes(photo(61))
    (root / "s2" / "copy2.jpg").write_bytes(photo(61))
    quarantine = tmp_path / "q"
    result = act(root, "--action", "move", "--to", str(quarantine))
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    (root / "s1").rmdir()
    (root / "s1").write_text("a file where the folder was")
    undone = invoke("undo", run_id, "--json")
    assert undone.exit_code == 3
    report = json.loads(undone.stdout)
    assert report["restored"] == [str(root.resolve() / "s2" / "copy2.jpg")]
    assert [Path(f["path"]).name for f in report["failed"]] == ["copy1.jpg"]
    assert (quarantine / "s1" / "copy1.jpg").exists()
    # Fixed by hand, the same undo finishes the rest.
    (root / "s1").unlink()
    again = invoke("undo", run_id)
    assert again.exit_code == 0, again.stderr
    assert (root / "s1" / "copy1.jpg").read_bytes() == photo(60)


def test_undo_does_not_restore_a_quarantined_file_that_was_replaced(tmp_path: Path) -> None:
    root = hashed_pair(tmp_path)
    quarantine = tmp_path / "q"
    run_id = json.loads(act(root, "--action", "move", "--to", str(quarantine)).stdout)["run_id"]
    (quarantine / "b.jpg").write_bytes(photo(99))  # another picture under the same name
    result = invoke("undo", run_id)
    assert result.exit_code == 3
    assert "is not the file that was moved" in result.stdout
    assert not (root / "b.jpg").exists() and (quarantine / "b.jpg").read_bytes() == photo(99)


# -- 12. a name too long to number never aborts a run -------------------------------------


def test_a_255_byte_name_that_collides_in_the_quarantine_is_moved_under_a_shorter_name(
    tmp_path: Path,
) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    long_name = "x" * 251 + ".jpg"
    (root / "a.jpg").write_bytes(photo(70))
    (root / long_name).write_bytes(photo(70))
    (root / "b.jpg").write_bytes(photo(71))
    (root / "c.jpg").write_bytes(photo(71))
    quarantine = tmp_path / "q"
    quarantine.mkdir()
    (quarantine / long_name).write_bytes(b"already here")
    result = act(root, "--action", "move", "--to", str(quarantine))
    assert result.exit_code == 0, result.stderr
    done = json.loads(result.stdout)["action"]["done"]
    assert len(done) == 2
    assert (quarantine / long_name).read_bytes() == b"already here"
    moved = [
        Path(d["destination"]) for d in done if d["path"].endswith(".jpg") and "xxx" in d["path"]
    ]
    assert len(os.fsencode(moved[0].name)) <= 255 and moved[0].read_bytes() == photo(70)


# -- property: concurrent runs, keepers damaged while they run ----------------------------


def test_concurrent_runs_and_rotting_keepers_never_lose_the_last_copy(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    base = tmp_path / "base"
    base.mkdir()
    for k in range(4):
        for c in range(3):
            path = base / f"c{k}_{c}.jpg"
            path.write_bytes(photo(80 + k))
            os.utime(path, (1000 + 10 * c + k, 1000 + 10 * c + k))
    assert invoke("hash", str(base), "--workers", "0", "-q").exit_code == 0
    names = sorted(p.name for p in base.glob("*.jpg"))
    counter = iter(range(10_000))

    @settings(
        max_examples=4,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # each example runs processes: no shrinking
        suppress_health_check=list(HealthCheck),
    )
    @given(
        keeps=st.lists(st.sampled_from(["oldest", "newest", "largest", "shortest-path"]),
                       min_size=2, max_size=3),
        rotted=st.sets(st.sampled_from(names), max_size=4),
    )  # fmt: skip
    def run(keeps: list[str], rotted: set[str]) -> None:
        """Keepers rot after they were hashed (the database still vouches for them), then
        two or three acting runs start at once. (A keeper rotting between the plan and the
        removal is forced with a hook in the test above.)"""
        root = tmp_path / f"case{next(counter)}"
        shutil.copytree(base, root)  # copy2: mtimes kept, so the database still applies
        before = {n: content_hash((root / n).read_bytes()) for n in names}
        for name in rotted:
            same_size_damage(root / name)
        env = {**os.environ, "DEDUP_LOCK_TIMEOUT": "300"}
        runs = [
            subprocess.Popen(
                [*DEDUP, "find", str(root), "--action", "delete", "--yes", "--workers", "0",
                 "--keep", keep, "-q"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for keep in keeps
        ]  # fmt: skip
        for process in runs:
            process.communicate(timeout=300)
        for content in set(before.values()):
            intact = [n for n in names if before[n] == content and n not in rotted]
            survivors = [
                n for n in intact
                if (root / n).exists() and content_hash((root / n).read_bytes()) == content
            ]  # fmt: skip
            assert not intact or survivors, (content, keeps, rotted)
        for name in rotted:  # a damaged file is its content's only copy: never removed for it
            assert (root / name).exists()

    run()


def test_a_planted_manifest_folder_symlink_is_not_followed(tmp_path: Path) -> None:
    root = hashed_pair(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, root / ".dedup-runs")
    result = act(root, "--action", "delete")
    assert result.exit_code == 0, result.stderr
    assert list(elsewhere.iterdir()) == []
    assert "not written" in json.loads(result.stdout)["action"]["manifest"]


def test_a_symlink_planted_in_the_quarantine_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "keep.jpg").write_bytes(photo(90))
    (root / "sub" / "copy.jpg").write_bytes(photo(90))
    target = tmp_path / "target"
    target.mkdir()
    quarantine = tmp_path / "q"
    quarantine.mkdir()
    os.symlink(target, quarantine / "sub")
    result = act(root, "--action", "move", "--to", str(quarantine))
    assert result.exit_code == 3
    assert "symlink" in json.loads(result.stdout)["action"]["skipped"][0]["reason"]
    assert (root / "sub" / "copy.jpg").exists() and list(target.iterdir()) == []


def test_undo_does_not_follow_a_symlink_planted_in_the_root(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "keep.jpg").write_bytes(photo(91))
    (root / "sub" / "copy.jpg").write_bytes(photo(91))
    quarantine = tmp_path / "q"
    run_id = json.loads(act(root, "--action", "move", "--to", str(quarantine)).stdout)["run_id"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "sub").rmdir()
    os.symlink(elsewhere, root / "sub")
    result = invoke("undo", run_id)
    assert result.exit_code == 3 and "symlink" in result.stdout
    assert list(elsewhere.iterdir()) == [] and (quarantine / "sub" / "copy.jpg").exists()


def test_a_run_that_cannot_be_recorded_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hashed_pair(tmp_path)
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("DEDUP_STATE_DIR", str(blocker))
    result = act(root, "--action", "delete")
    assert result.exit_code == 1 and "cannot record the run" in result.stderr
    assert (root / "a.jpg").exists() and (root / "b.jpg").exists()


def test_rederive_follows_a_corrected_hash_to_the_file_it_now_matches(tmp_path: Path) -> None:
    """A database claims A = B (a lie); A's real bytes are C's. C's stored hash is read too
    before A and C may count as one content; files whose hash nobody shares are not read."""
    from types import SimpleNamespace

    from dedup_cli.confirm.rederive import rederive_shared_hashes

    for name, data in (("a", b"alpha"), ("b", b"beta"), ("c", b"alpha"), ("d", b"delta")):
        (tmp_path / name).write_bytes(data)
    real = {n: content_hash((tmp_path / n).read_bytes()) for n in "abcd"}
    table = SimpleNamespace(
        root=tmp_path,
        paths=["a", "b", "c", "d"],
        content_hashes=["lie", "lie", "stale-c", real["d"]],
    )
    table.content_hashes[2] = real["a"]  # C's stored hash is right
    report = rederive_shared_hashes([table], among={"lie"})
    assert table.content_hashes == [real["a"], real["b"], real["a"], real["d"]]
    assert report.read == 3 and report.differed == 2  # a, b, then c; never d


# -- found by the adversarial pass after the first fixes -----------------------------------


def _hold_subfolder(folder: str, ready: Any, release: Any) -> None:
    from dedup_cli.act.locking import holding_folders
    from dedup_cli.media.fsops import open_base

    fd = open_base(Path(folder))
    with holding_folders([fd]):
        ready.set()
        release.wait(30)


def test_a_folder_held_by_identity_blocks_removals_in_it_whatever_the_path(
    tmp_path: Path,
) -> None:
    """A bind mount shows one folder at two paths, so locks by path above the root can
    miss an overlapping run; the removal itself locks the folder it acts in, by inode."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (root / "sub" / name).write_bytes(photo(1))
    assert invoke("hash", str(root), "--workers", "0", "-q").exit_code == 0
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_subfolder, args=(str(root / "sub"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        result = act(root, "--action", "delete", env={"DEDUP_LOCK_TIMEOUT": "0.3"})
    finally:
        release.set()
        holder.join(30)
    assert result.exit_code == 3
    failed = json.loads(result.stdout)["action"]["failed"]
    assert "another dedup run is acting" in failed[0]["reason"]
    assert (root / "sub" / "a.jpg").exists() and (root / "sub" / "b.jpg").exists()


ACTIONS_TABLE = (
    "CREATE TABLE actions (id INTEGER NOT NULL PRIMARY KEY, run_id VARCHAR(40) NOT NULL "
    "REFERENCES runs (id) ON DELETE CASCADE, path TEXT NOT NULL, keeper TEXT NOT NULL, "
    "action VARCHAR(20) NOT NULL, destination TEXT, size INTEGER NOT NULL, mtime_ns INTEGER "
    "NOT NULL, content_hash VARCHAR(32), status VARCHAR(20) NOT NULL, reason TEXT, "
    "at FLOAT NOT NULL, after_hash VARCHAR(32){extra})"
)


@pytest.mark.parametrize(
    "extra",
    [
        ", anchor TEXT DEFAULT 'b.jpg' REFERENCES files(path) ON DELETE CASCADE",
        ", CHECK (status <> 'done')",
        ", shout TEXT GENERATED ALWAYS AS (upper(path)) STORED",
        ", UNIQUE (status) ON CONFLICT REPLACE",
        "",  # the table as dedup makes it, with a unique index added below
    ],
)
def test_a_database_whose_schema_acts_by_itself_is_refused(tmp_path: Path, extra: str) -> None:
    root = hashed_pair(tmp_path)
    with sqlite3.connect(root / "image_database.db") as db:
        db.executescript(
            "PRAGMA foreign_keys=OFF; DROP TABLE actions; "
            + ACTIONS_TABLE.format(extra=extra)
            + "; CREATE INDEX ix_actions_run_id ON actions (run_id);"
            + ("" if extra else "CREATE UNIQUE INDEX one_status ON actions (status);")
        )
    result = act(root, "--action", "delete")
    assert result.exit_code == 1 and "which dedup never creates" in result.stderr
    assert (root / "a.jpg").exists() and (root / "b.jpg").exists()


def test_the_actions_table_as_dedup_makes_it_is_accepted(tmp_path: Path) -> None:
    """The control for the test above: the same rebuild without the extra clause."""
    root = hashed_pair(tmp_path)
    with sqlite3.connect(root / "image_database.db") as db:
        db.executescript(
            "PRAGMA foreign_keys=OFF; DROP TABLE actions; "
            + ACTIONS_TABLE.format(extra="")
            + "; CREATE INDEX ix_actions_run_id ON actions (run_id);"
        )
    result = act(root, "--action", "delete")
    assert result.exit_code == 0, result.stderr
    assert not (root / "b.jpg").exists()


def test_an_entry_undo_skipped_is_restored_by_the_next_undo(tmp_path: Path) -> None:
    root = hashed_pair(tmp_path)
    quarantine = tmp_path / "q"
    run_id = json.loads(act(root, "--action", "move", "--to", str(quarantine)).stdout)["run_id"]
    (root / "b.jpg").write_bytes(b"the user put something here meanwhile")
    first = invoke("undo", run_id)
    assert first.exit_code == 3 and "a file is back at that path" in first.stdout
    (root / "b.jpg").unlink()
    again = invoke("undo", run_id)
    assert again.exit_code == 0, again.stderr
    assert (root / "b.jpg").read_bytes() == photo(1)


def test_an_exact_pair_whose_hashes_collide_is_compared_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """xxh3-128 is fast, not collision-resistant: two files made to collide are told apart
    by their bytes before one is removed."""
    from dedup_cli.act.execute import execute_plan
    from dedup_cli.core.files import FileInfo
    from dedup_cli.core.plan import Plan, PlannedGroup, Removal
    from dedup_cli.media.fsops import FileSnapshot, Pinned
    from dedup_cli.store import Store

    root = tmp_path / "r"
    root.mkdir()
    (root / "keep.jpg").write_bytes(photo(5))
    (root / "copy.jpg").write_bytes(photo(6))
    real_snapshot = Pinned.snapshot

    def colliding(self: Pinned) -> FileSnapshot:
        found = real_snapshot(self)
        return FileSnapshot(found.device, found.inode, found.size, found.mtime_ns, "c" * 32)

    monkeypatch.setattr(Pinned, "snapshot", colliding)

    def info(name: str) -> FileInfo:
        s = (root / name).stat()
        return FileInfo(name, root / name, s.st_size, s.st_mtime_ns, "c" * 32, 1, 1)

    plan = Plan(root, "m", 0.9, "largest", [
        PlannedGroup(info("keep.jpg"), (Removal(info("copy.jpg"), 1.0, "exact"),))
    ])  # fmt: skip
    with Store(tmp_path / "db.db") as store:
        report = execute_plan(plan, store, "delete")
    assert "collide" in report.skipped[0]["reason"] and (root / "copy.jpg").exists()


def test_a_fifo_in_place_of_a_photo_never_hangs_the_run(tmp_path: Path) -> None:
    from dedup_cli.media.fsops import Pinned, UnsafePathError

    os.mkfifo(tmp_path / "trap.jpg")
    with Pinned(tmp_path, "trap.jpg") as pinned, pytest.raises(UnsafePathError):
        pinned.snapshot()


# -- found by the second adversarial pass ---------------------------------------------------


@pytest.mark.parametrize("target", ["photos/other.jpg", "notes.txt"])
def test_the_html_report_never_overwrites_a_file_that_is_not_a_report(
    tmp_path: Path, target: str
) -> None:
    root = hashed_pair(tmp_path)
    (tmp_path / "notes.txt").write_text("the user's notes")
    victim = tmp_path / target
    before = victim.read_bytes()
    result = invoke("find", str(root), "--json", "--workers", "0", "--html", str(victim))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert victim.read_bytes() == before


def test_an_earlier_report_is_replaced(tmp_path: Path) -> None:
    root = hashed_pair(tmp_path)
    report = tmp_path / "report.html"
    for _ in range(2):
        result = invoke("find", str(root), "--json", "--workers", "0", "--html", str(report))
        assert result.exit_code == 0, result.stderr
    assert "a.jpg" in report.read_text() and not list(tmp_path.glob("*.tmp"))


def test_plain_undo_undoes_the_run_of_the_folder_it_is_run_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never the newest run anywhere: in ``first`` a plain undo puts back first's files,
    although ``second`` acted later; ``second``'s run stands until undone there."""
    first = hashed_pair(tmp_path, "first")
    second = hashed_pair(tmp_path, "second")
    assert act(first, "--action", "move", "--to", str(tmp_path / "q1")).exit_code == 0
    assert act(second, "--action", "move", "--to", str(tmp_path / "q2")).exit_code == 0
    monkeypatch.chdir(first)
    assert invoke("undo").exit_code == 0 and (first / "b.jpg").exists()
    assert not (second / "b.jpg").exists()
    monkeypatch.chdir(second)
    again = invoke("undo")
    assert again.exit_code == 0, again.stderr
    assert (second / "b.jpg").exists()


def test_an_unconfirmed_action_still_prints_the_plan_for_a_script(tmp_path: Path) -> None:
    root = hashed_pair(tmp_path)
    result = invoke("find", str(root), "--json", "--workers", "0", "--action", "delete")
    assert result.exit_code == 1 and "pass --yes" in result.stderr
    document = json.loads(result.stdout)
    assert document["action"] is None and document["summary"]["files_to_remove"] == 1
    assert (root / "a.jpg").exists() and (root / "b.jpg").exists()


# -- a move killed between its link (or copy) and the unlink --------------------------------


def _half_done_move(tmp_path: Path, *, hard_link: bool) -> tuple[Path, Path, str]:
    """A move run, then put back in the state a kill between ``link`` and ``unlink`` leaves:
    the file both at home and in the quarantine, its journal row still ``pending``."""
    root = hashed_pair(tmp_path)
    quarantine = tmp_path / "q"
    run_id = json.loads(act(root, "--action", "move", "--to", str(quarantine)).stdout)["run_id"]
    if hard_link:
        os.link(quarantine / "b.jpg", root / "b.jpg")
    else:  # across file systems the move is a copy
        (root / "b.jpg").write_bytes((quarantine / "b.jpg").read_bytes())
    with sqlite3.connect(root / "image_database.db") as db:
        db.execute("UPDATE actions SET status = 'pending'")
        db.execute("UPDATE runs SET finished_at = NULL")
    return root, quarantine, run_id


@pytest.mark.parametrize("hard_link", [True, False], ids=["same-disk", "across-disks"])
def test_undo_of_a_move_killed_before_its_unlink_leaves_no_stray_copy(
    tmp_path: Path, hard_link: bool
) -> None:
    """Seen in CI: a kill landed between the link and the unlink; undo left the second name
    in the quarantine and did not count it."""
    root, quarantine, run_id = _half_done_move(tmp_path, hard_link=hard_link)
    result = invoke("undo", run_id, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["restored"] == [str(root.resolve() / "b.jpg")]
    assert (root / "b.jpg").read_bytes() == photo(1)
    assert not (quarantine / "b.jpg").exists()


def test_a_half_done_move_whose_home_file_changed_keeps_the_quarantined_copy(
    tmp_path: Path,
) -> None:
    root, quarantine, run_id = _half_done_move(tmp_path, hard_link=False)
    (root / "b.jpg").write_bytes(photo(77))  # the user put another picture at that path
    result = invoke("undo", run_id, "--json")
    assert result.exit_code == 3
    assert (quarantine / "b.jpg").read_bytes() == photo(1)
    assert (root / "b.jpg").read_bytes() == photo(77)
    skipped = json.loads(result.stdout)["skipped"]
    assert [Path(s["path"]).name for s in skipped] == ["b.jpg"]


@pytest.mark.parametrize("hard_link", [True, False], ids=["same-disk", "across-disks"])
def test_a_half_done_move_keeps_its_quarantined_copy_if_home_goes_at_that_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_link: bool
) -> None:
    """The file at home is checked, then removed (by another program) before the
    quarantined name is dropped: the quarantined copy is then the last one and must stay."""
    from dedup_cli.media import fsops

    root, quarantine, run_id = _half_done_move(tmp_path, hard_link=hard_link)
    real_snapshot = fsops.Pinned.snapshot
    calls = {"n": 0}

    def snapshot_then_lose_home(self: fsops.Pinned) -> fsops.FileSnapshot:
        calls["n"] += 1
        taken = real_snapshot(self)
        if calls["n"] == 2:  # home was read first, now the quarantined copy: home goes
            (root / "b.jpg").unlink()
        return taken

    monkeypatch.setattr(fsops.Pinned, "snapshot", snapshot_then_lose_home)
    result = invoke("undo", run_id, "--json")
    assert result.exit_code == 3
    assert (quarantine / "b.jpg").read_bytes() == photo(1)


def test_listing_runs_never_writes_to_a_database(tmp_path: Path) -> None:
    """``undo --list`` reads each recorded database read-only: a database replaced by an
    empty file stays empty (no schema made in it), and a foreign SQLite file keeps its
    journal mode (an adversarial review saw both changed)."""
    import sqlite3

    first = hashed_pair(tmp_path, "first")
    second = hashed_pair(tmp_path, "second")
    assert act(first, "--action", "move", "--to", str(tmp_path / "q1")).exit_code == 0
    assert act(second, "--action", "move", "--to", str(tmp_path / "q2")).exit_code == 0
    emptied = first / "image_database.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{emptied}{suffix}").unlink(missing_ok=True)
    emptied.write_bytes(b"")
    foreign = second / "image_database.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{foreign}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    listed = invoke("undo", "--list", "--json")
    assert listed.exit_code == 0, listed.stderr
    states = [run["state"] for run in json.loads(listed.stdout)]
    assert len(states) == 2 and set(states) <= {"database unreadable", "not in its database"}
    assert emptied.stat().st_size == 0
    with sqlite3.connect(foreign) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"}


def test_a_database_copied_into_a_folder_does_not_make_plain_undo_act(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain ``dedup undo`` takes the current folder's database; one copied there from
    another collection carries that collection's runs, but they were recorded for the other
    database: nothing is restored, the quarantined files stay, one line says why."""
    import shutil

    first = hashed_pair(tmp_path, "first")
    assert act(first, "--action", "move", "--to", str(tmp_path / "q1")).exit_code == 0
    moved = sorted(p.name for p in (tmp_path / "q1").rglob("*.jpg"))
    assert moved
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(first / "image_database.db", elsewhere / "image_database.db")
    monkeypatch.chdir(elsewhere)
    result = invoke("undo")
    assert result.exit_code == 1 and "no run to undo" in result.stderr
    assert sorted(p.name for p in (tmp_path / "q1").rglob("*.jpg")) == moved
    assert list(elsewhere.glob("*.jpg")) == []
