"""Tombstones: content a dedup run removed that shows up again is reported as "came back"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from dedup_cli.cli import app

runner = CliRunner()


def find(root: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_removed_copy_uploaded_again_is_reported_and_planned_like_any_copy(
    library: Path, tmp_path: Path
) -> None:
    quarantine = tmp_path / "q"
    moved = find(library, "--action", "move", "--to", str(quarantine), "--yes")
    run_id = moved["run_id"]
    gone = Path(moved["groups"][0]["remove"][0])
    assert not gone.exists() and find(library)["came_back"] == []
    # A phone backup uploads the deleted copy again, under a new name.
    again = library / "from-phone" / gone.name
    again.parent.mkdir()
    shutil.copy(quarantine / gone.relative_to(library.resolve()), again)
    document = find(library)
    back = {item["path"]: item for item in document["came_back"]}
    assert set(back) == {str(again.resolve())}
    assert back[str(again.resolve())]["run_id"] == run_id
    assert back[str(again.resolve())]["removed"] == str(gone)
    assert document["stats"]["came_back"] == 1
    assert str(again.resolve()) in {p for g in document["groups"] for p in g["remove"]}
    listing = runner.invoke(app, ["find", str(library), "--workers", "0"])
    assert "came back" in listing.stdout and run_id in listing.stdout


def test_files_put_back_by_undo_did_not_come_back(library: Path, tmp_path: Path) -> None:
    find(library, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    undone = runner.invoke(app, ["undo", "--db", str(library / "image_database.db")])
    assert undone.exit_code == 0, undone.stderr
    assert find(library)["came_back"] == []


def test_a_file_that_came_back_with_no_copy_left_is_the_last_copy_and_stays(
    library: Path, tmp_path: Path
) -> None:
    moved = find(library, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    group = moved["groups"][0]
    gone, keeper = Path(group["remove"][0]), Path(group["keep"])
    came = tmp_path / "q" / gone.relative_to(library.resolve())
    keeper.unlink()  # the user deleted the keeper since
    for other in group["remove"][1:]:
        Path(other).unlink(missing_ok=True)
    shutil.copy(came, gone)
    document = find(library)
    assert str(gone) in {item["path"] for item in document["came_back"]}
    everything = {p for g in document["groups"] for p in g["remove"]}
    assert str(gone) not in everything
