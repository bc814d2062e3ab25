"""``dedup review --plan FILE``: a plan from ``find --json`` is a claim, proved again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.errors import UsageError
from dedup_cli.jobs.find import Folder
from dedup_cli.jobs.plan_file import plan_from_file
from dedup_cli.store import Store, default_db_path

runner = CliRunner()


def written_plan(library: Path, tmp_path: Path) -> tuple[Path, dict]:  # type: ignore[type-arg]
    result = runner.invoke(app, ["find", str(library), "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "plan.json"
    path.write_text(result.stdout)
    return path, json.loads(result.stdout)


def groups_of(plan) -> set[tuple[str, frozenset[str]]]:  # type: ignore[no-untyped-def]
    return {
        (str(g.keep.absolute), frozenset(str(r.file.absolute) for r in g.remove))
        for g in plan.groups
    }


def read(path: Path, library: Path):  # type: ignore[no-untyped-def]
    with Store(default_db_path(library)) as store:
        return plan_from_file(path, [Folder(library, store)])


def test_a_plan_file_that_still_holds_is_the_plan_find_made(library: Path, tmp_path: Path) -> None:
    path, document = written_plan(library, tmp_path)
    got = read(path, library)
    expected = {(g["keep"], frozenset(g["remove"])) for g in document["groups"]}
    assert groups_of(got.plan) == expected and not got.dropped


def test_a_forged_pair_of_two_different_photos_is_dropped(library: Path, tmp_path: Path) -> None:
    """An edited plan claims rocket.jpg is an exact copy of coffee.jpg: it is proved again
    from the files, fails, and is never shown as a copy (nor could Apply remove it)."""
    path, document = written_plan(library, tmp_path)
    coffee, rocket = str(library.resolve() / "coffee.jpg"), str(library.resolve() / "rocket.jpg")
    document["groups"].append(
        {
            "keep": coffee,
            "remove": [rocket],
            "remove_files": [{"path": rocket, "similarity": 1.0, "method": "exact"}],
        }
    )
    path.write_text(json.dumps(document))
    got = read(path, library)
    assert not any(rocket in members for _keep, members in groups_of(got.plan))
    assert {"path": rocket, "reason": "not proved a copy of its keeper"} in got.dropped


def test_files_outside_the_folder_or_gone_are_dropped(
    library: Path, tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    path, document = written_plan(library, tmp_path)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(encode(photos["coffee"], quality=90))
    group = document["groups"][0]
    group["remove"].append(str(outside))
    gone = group["remove"][0]
    Path(gone).unlink()
    document["groups"].append({"keep": "/etc/passwd", "remove": [str(library / "coffee.jpg")]})
    path.write_text(json.dumps(document))
    got = read(path, library)
    reasons = {d["path"]: d["reason"] for d in got.dropped}
    assert reasons[str(outside)] == "outside the folders given"
    assert reasons["/etc/passwd"] == "outside the folders given"
    assert reasons[gone].startswith("cannot be read")
    everything = {p for keep, members in groups_of(got.plan) for p in (keep, *members)}
    assert str(outside) not in everything and gone not in everything


@pytest.mark.parametrize("content", ["not json", "[]", '{"groups": 3}'])
def test_a_file_that_is_not_a_plan_is_a_usage_error(
    library: Path, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(UsageError):
        read(path, library)
    result = runner.invoke(app, ["review", str(library), "--plan", str(path), "--no-open"])
    assert result.exit_code == 2 and "--plan" in result.stderr
