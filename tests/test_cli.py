"""The real CLI through Typer's CliRunner, with the real default model, reading results back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def find_json(root: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    code, out, err = invoke("find", str(root), "--json", "--workers", "0", *extra)
    assert code == 0, err
    return json.loads(out)


def test_hash_writes_the_database_in_the_root_and_reruns_cheaply(library: Path) -> None:
    code, out, err = invoke("hash", str(library), "--json", "--workers", "0")
    assert code == 0, err
    report = json.loads(out)
    assert report["scanned"] == 10 and report["embedded"] == 9
    assert [f["path"] for f in report["failed"]] == ["broken.jpg"]
    db = library / "image_database.db"
    rows = (
        sqlite3.connect(db)
        .execute(
            "SELECT COUNT(*) FROM embeddings e JOIN models m ON m.id = e.model_id WHERE m.name='effnet'"
        )
        .fetchone()[0]
    )
    assert rows == 9
    code, out, _ = invoke("hash", str(library), "--json", "--workers", "0")
    again = json.loads(out)
    assert again["embedded"] == 0 and again["unchanged"] == 9 and again["known_bad"] == 1


def test_find_groups_copies_and_keeps_one_per_group(library: Path) -> None:
    doc = find_json(library)
    assert {"root", "model", "threshold", "groups", "summary", "stats"} <= set(doc)
    assert doc["model"] == "effnet" and doc["root"] == str(library.resolve())
    groups = {
        Path(g["keep"]).name: sorted(Path(p).name for p in g["remove"]) for g in doc["groups"]
    }
    assert groups == {
        "astronaut.jpg": ["astronaut_small.jpg"],
        "coffee.jpg": ["coffee_q40.jpg"],
        "chelsea.jpg": ["chelsea_copy.jpg"],  # byte-identical: the shallower path stays
        "rocket.jpg": ["rocket_crop.png"],  # the full picture has more pixels than its crop
    }
    reasons = {Path(g["keep"]).name: g["keep_reason"] for g in doc["groups"]}
    assert reasons["rocket.jpg"] == reasons["astronaut.jpg"] == "more pixels"
    assert reasons["chelsea.jpg"] == "the shallower path"
    # With --keep largest, rocket_crop.png (a 10% crop) is the larger file, so it would be
    # the keeper, but the full picture rocket.jpg is never removed in favour of its crop:
    # both stay.
    largest = find_json(library, "--keep", "largest")
    assert not any("rocket" in g["keep"] or "rocket" in str(g["remove"]) for g in largest["groups"])
    methods = {Path(r["path"]).name: r["method"] for g in doc["groups"] for r in g["remove_files"]}
    assert methods["chelsea_copy.jpg"] == "exact"
    assert methods["coffee_q40.jpg"] == "pixels"
    for group in doc["groups"]:
        for removal in group["remove_files"]:
            assert removal["similarity"] >= doc["threshold"]
    # Reporting changes nothing on disk.
    assert (library / "trip" / "chelsea_copy.jpg").exists()
    assert doc["action"] is None


def test_keep_strategies_change_the_keeper(library: Path) -> None:
    by_resolution = find_json(library, "--keep", "resolution")
    keepers = {Path(g["keep"]).name for g in by_resolution["groups"]}
    assert "rocket.jpg" in keepers  # full resolution beats the larger cropped PNG
    shortest = find_json(library, "--keep", "shortest-path")
    assert all("/trip/" not in g["keep"] for g in shortest["groups"])


def test_move_then_undo_restores_identical_bytes(library: Path, tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file() and p.suffix != ".db"}
    quarantine = tmp_path / "quarantine"
    doc = find_json(library, "--action", "move", "--to", str(quarantine), "--yes")
    action = doc["action"]
    assert action["action"] == "move" and len(action["done"]) == 4 and doc["run_id"]
    moved = [Path(d["path"]) for d in action["done"]]
    for path in moved:
        assert not path.exists()
        relative = path.relative_to(library.resolve())
        assert (quarantine / relative).read_bytes() == before[library / relative]
    for group in doc["groups"]:
        assert Path(group["keep"]).exists()
    manifest = json.loads(Path(action["manifest"]).read_text())
    assert manifest["result"]["run_id"] == doc["run_id"]
    code, out, err = invoke("undo", doc["run_id"], "--json")
    assert code == 0, err
    assert sorted(json.loads(out)["restored"]) == sorted(str(p) for p in moved)
    for path, content in before.items():
        assert path.read_bytes() == content
    code, _, err = invoke("undo", doc["run_id"])
    assert code == 1 and "already undone" in err


def test_undo_without_run_id_undoes_the_last_run_of_this_folder(
    library: Path, tmp_path: Path, photos, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A later run on another collection is not what a plain ``dedup undo`` in this
    folder means: it undoes this folder's last run, and leaves the other alone."""
    find_json(library, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes(encode(photos["coffee"], quality=90))
    (other / "b.jpg").write_bytes((other / "a.jpg").read_bytes())
    later = find_json(other, "--action", "move", "--to", str(tmp_path / "q2"), "--yes")
    monkeypatch.chdir(library)
    code, _, err = invoke("undo")
    assert code == 0, err
    assert (library / "trip" / "chelsea_copy.jpg").exists()
    assert not Path(later["action"]["done"][0]["path"]).exists()  # the other run stands
    monkeypatch.chdir(library / "trip")  # a folder inside it: the same collection
    code, _, err = invoke("undo")
    assert code == 1 and "no run to undo" in err
    code, out, _ = invoke("undo", "--list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert later["run_id"] in lines[0] and "can be undone" in lines[0]
    assert "undone" in lines[1] and "can be" not in lines[1]
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("undo")
    assert code == 1 and "dedup undo --list" in err
    listed = json.loads(invoke("undo", "--list", "--json")[1])
    assert [r["state"] for r in listed] == ["can be undone", "undone"]


def test_without_a_terminal_nothing_is_removed_unless_yes(library: Path) -> None:
    code, _, err = invoke("find", str(library), "--action", "delete", "--workers", "0", "-q")
    assert code == 1 and "--yes" in err
    assert (library / "trip" / "chelsea_copy.jpg").exists()
    assert (library / "trip" / "astronaut_small.jpg").exists()


def test_delete_with_yes_removes_only_planned_copies(library: Path) -> None:
    doc = find_json(library, "--action", "delete", "--yes")
    removed = {Path(d["path"]).name for d in doc["action"]["done"]}
    assert removed == {
        "astronaut_small.jpg",
        "coffee_q40.jpg",
        "chelsea_copy.jpg",
        "rocket_crop.png",
    }
    remaining = {p.name for p in library.rglob("*.*") if not p.name.startswith("image_database")}
    assert {"astronaut.jpg", "coffee.jpg", "rocket.jpg", "chelsea.jpg", "camera.png"} <= remaining


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["find", "{root}", "--threshold", "1.5"], 2, "between 0 and 1"),
        (["find", "{root}", "--keep", "biggest"], 2, "--keep must be one of"),
        (["find", "{root}", "--action", "shred"], 2, "--action must be"),
        (["find", "{root}", "--action", "move"], 2, "needs --to"),
        (["find", "{root}", "--model", "nope"], 2, "unknown model"),
        (["hash", "{root}/missing"], 2, "does not exist"),
        (["hash", "{root}/camera.png"], 2, "not a folder"),
        (["hash", "{root}", "--device", "tpu"], 2, "--device"),
        (["find", "{root}", "--model", "clip-b32", "--weights", "{root}/none.pt"], 2, "none.pt"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    library: Path, args: list[str], code: int, message: str
) -> None:
    result = runner.invoke(
        app,
        [a.format(root=library) for a in args] + ["--workers", "0"]
        if args[0] in ("find", "hash")
        else args,
    )
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_custom_db_location(library: Path, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "cache.db"
    db.parent.mkdir()  # a missing folder is refused (tests/test_newcomer.py)
    code, _, err = invoke("hash", str(library), "--db", str(db), "--workers", "0", "-q")
    assert code == 0, err
    assert db.exists() and not (library / "image_database.db").exists()


def test_help_for_every_command() -> None:
    for command in ("hash", "find", "undo", "models"):
        code, out, _ = invoke(command, "--help")
        assert code == 0 and "Usage" in out


def test_models_lists_the_registry() -> None:
    code, out, _ = invoke("models", "--json")
    names = [m["name"] for m in json.loads(out)]
    assert code == 0 and names[:4] == ["effnet", "clip-b32", "clip-l14", "dinov3"]


def test_rerun_with_nothing_to_embed_never_imports_torch(library: Path) -> None:
    import subprocess
    import sys

    invoke("hash", str(library), "--workers", "0", "-q")
    probe = (
        "import sys; from typer.testing import CliRunner; from dedup_cli.cli import app; "
        f"r = CliRunner().invoke(app, ['hash', {str(library)!r}, '--json']); "
        "assert r.exit_code == 0, r.output; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_debug_shows_the_traceback(library: Path) -> None:
    from dedup_cli.errors import UsageError

    result = runner.invoke(app, ["--debug", "find", str(library), "--threshold", "7"])
    assert result.exit_code != 0 and isinstance(result.exception, UsageError)
    quiet = runner.invoke(app, ["find", str(library), "--threshold", "7"])
    assert quiet.exit_code == 2 and not isinstance(quiet.exception, UsageError)
