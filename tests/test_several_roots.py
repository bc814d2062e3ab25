"""``dedup find A B``: several folders searched as one collection, each with its own database."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.store import Store

runner = CliRunner()


@pytest.fixture
def two_folders(tmp_path: Path, photos: dict[str, Image.Image]) -> tuple[Path, Path]:
    """A and B with copies within each and across them, and one relative path in both
    holding two different pictures (and another holding one picture twice)."""
    a, b = tmp_path / "A", tmp_path / "B"
    for folder in (a, b):
        (folder / "sub").mkdir(parents=True)
    (a / "coffee.jpg").write_bytes(encode(photos["coffee"], quality=95))
    (b / "coffee_small.jpg").write_bytes(encode(photos["coffee"].resize((300, 200)), quality=85))
    (b / "chelsea.jpg").write_bytes(encode(photos["chelsea"], quality=95))
    (b / "sub" / "chelsea (1).jpg").write_bytes(encode(photos["chelsea"], quality=70))
    # Same relative path, different pictures: must never be grouped.
    (a / "sub" / "same_name.jpg").write_bytes(encode(photos["rocket"], quality=90))
    (b / "sub" / "same_name.jpg").write_bytes(encode(photos["camera"], quality=90))
    # Same relative path, one picture: a copy across the folders.
    (a / "sub" / "astronaut.jpg").write_bytes(encode(photos["astronaut"], quality=95))
    (b / "sub" / "astronaut.jpg").write_bytes(
        encode(photos["astronaut"].resize((256, 256)), quality=80)
    )
    return a, b


def find(*args: str, code: int = 0) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["find", *args, "--json", "--workers", "0"])
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout) if code == 0 else {}


def grouped(document: dict) -> set[frozenset[str]]:  # type: ignore[type-arg]
    return {frozenset([g["keep"], *g["remove"]]) for g in document["groups"]}


def test_copies_within_each_folder_and_across_them_are_one_plan(
    two_folders: tuple[Path, Path],
) -> None:
    a, b = (p.resolve() for p in two_folders)
    document = find(str(a), str(b))
    assert document["roots"] == [str(a), str(b)]
    assert grouped(document) == {
        frozenset({str(a / "coffee.jpg"), str(b / "coffee_small.jpg")}),  # across
        frozenset({str(b / "chelsea.jpg"), str(b / "sub" / "chelsea (1).jpg")}),  # within B
        frozenset({str(a / "sub" / "astronaut.jpg"), str(b / "sub" / "astronaut.jpg")}),
    }
    # The larger original is kept in each group.
    keepers = {g["keep"] for g in document["groups"]}
    assert keepers == {
        str(a / "coffee.jpg"),
        str(b / "chelsea.jpg"),
        str(a / "sub" / "astronaut.jpg"),
    }
    # Each folder keeps its own cache: a later find of one folder alone embeds nothing.
    assert (a / "image_database.db").exists() and (b / "image_database.db").exists()
    alone = find(str(b))
    assert alone["stats"]["files_embedded_now"] == 0
    assert grouped(alone) == {
        frozenset({str(b / "chelsea.jpg"), str(b / "sub" / "chelsea (1).jpg")})
    }


def test_the_human_listing_names_files_in_full(two_folders: tuple[Path, Path]) -> None:
    a, b = (p.resolve() for p in two_folders)
    result = runner.invoke(app, ["find", str(a), str(b), "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    assert str(b / "coffee_small.jpg") in result.stdout
    assert str(a / "sub" / "astronaut.jpg") in result.stdout


def test_moving_copies_from_two_folders_is_one_run_that_undo_restores(
    two_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = (p.resolve() for p in two_folders)
    before = {p: p.read_bytes() for root in (a, b) for p in root.rglob("*.jpg")}
    quarantine = tmp_path / "quarantine"
    moved = runner.invoke(
        app,
        ["find", str(a), str(b), "--action", "move", "--to", str(quarantine), "--yes"],
        catch_exceptions=False,
    )
    assert moved.exit_code == 0, moved.stderr
    gone = {p for p in before if not p.exists()}
    assert gone == {
        b / "coffee_small.jpg",
        b / "sub" / "chelsea (1).jpg",
        b / "sub" / "astronaut.jpg",
    }
    # The journal lives in the first folder's database; undo from there puts all back.
    undone = runner.invoke(app, ["undo", "--db", str(a / "image_database.db")])
    assert undone.exit_code == 0, undone.stderr
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize(
    "arguments",
    [
        lambda a, b: [str(a), str(a)],
        lambda a, b: [str(a), str(a / "sub")],
        lambda a, b: [str(a / "sub"), f"{a}/"],
    ],
    ids=["twice", "nested", "parent-after-child"],
)
def test_overlapping_folders_are_refused_before_any_work(
    two_folders: tuple[Path, Path], arguments
) -> None:  # type: ignore[no-untyped-def]
    a, b = two_folders
    result = runner.invoke(app, ["find", *arguments(a, b)])
    assert result.exit_code == 2
    assert "overlap" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (a / "image_database.db").exists()


def test_one_database_for_several_folders_is_refused(
    two_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_folders
    result = runner.invoke(app, ["find", str(a), str(b), "--db", str(tmp_path / "one.db")])
    assert result.exit_code == 2 and "--db" in result.stderr
    assert not (tmp_path / "one.db").exists()


def test_a_missing_second_folder_is_refused_before_any_work(
    two_folders: tuple[Path, Path],
) -> None:
    a, b = two_folders
    result = runner.invoke(app, ["find", str(a), str(b / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not (a / "image_database.db").exists()


def test_a_quarantine_inside_the_second_folder_is_refused(two_folders: tuple[Path, Path]) -> None:
    a, b = two_folders
    result = runner.invoke(
        app, ["find", str(a), str(b), "--action", "move", "--to", str(b / "q"), "--yes"]
    )
    assert result.exit_code == 2
    assert not (a / "image_database.db").exists()


def test_not_duplicates_are_remembered_in_every_folders_database(
    two_folders: tuple[Path, Path],
) -> None:
    """A group a reviewer rejects while looking at A and B is not proposed again by a later
    find of either folder alone."""
    from dedup_cli.act.execute import carry_out
    from dedup_cli.core.plan import Plan

    a, b = two_folders
    plan = Plan(a, "effnet", 0.9, "quality", not_duplicates=[["h1", "h2"]])
    with Store(a / "image_database.db") as store_a, Store(b / "image_database.db") as store_b:
        outcome = carry_out(plan, store_a, "report", remember_in=[store_b])
        assert outcome.not_duplicates_remembered == 1
        assert store_a.not_duplicate_pairs() == store_b.not_duplicate_pairs() == {("h1", "h2")}


def test_new_only_across_folders_looks_only_at_new_files(
    two_folders: tuple[Path, Path], photos: dict[str, Image.Image]
) -> None:
    a, b = (p.resolve() for p in two_folders)
    find(str(a), str(b))
    nothing = find(str(a), str(b), "--new-only")
    assert nothing["stats"]["new_files"] == 0 and nothing["groups"] == []
    (b / "coffee_again.png").write_bytes(encode(photos["coffee"].resize((320, 213)), "PNG"))
    os.utime(b / "coffee_again.png")
    again = find(str(a), str(b), "--new-only")
    assert again["stats"]["new_files"] == 1
    members = set().union(*grouped(again))
    assert str(b / "coffee_again.png") in members
    assert str(b / "chelsea.jpg") not in members  # an old group is not planned again


def test_a_symlink_to_the_first_folder_is_the_same_folder(
    two_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = two_folders
    (tmp_path / "link").symlink_to(a, target_is_directory=True)
    result = runner.invoke(app, ["find", str(a), str(tmp_path / "link")])
    assert result.exit_code == 2 and "overlap" in result.stderr


def test_two_folders_on_one_database_file_are_refused(
    two_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    """A symlinked image_database.db would record both folders' files under the same
    relative paths; refused before the database is opened."""
    a, b = two_folders
    shared = tmp_path / "shared.db"
    (a / "image_database.db").symlink_to(shared)
    (b / "image_database.db").symlink_to(shared)
    result = runner.invoke(app, ["find", str(a), str(b)])
    assert result.exit_code == 2 and "one database" in result.stderr
    assert not shared.exists()
    crossed = runner.invoke(
        app, ["cross", str(a), str(b), "--db-a", str(shared), "--db-b", str(shared)]
    )
    assert crossed.exit_code == 2 and "one database" in crossed.stderr
    assert not shared.exists()


def test_joined_files_read_through_to_each_folders_table(tmp_path: Path) -> None:
    """Row k of the join is the row of the folder it falls in, with that folder as its
    root; a hash corrected in a table is seen through the join."""
    import numpy as np

    from dedup_cli.embed.collection import FileTable, JoinedFiles
    from dedup_cli.store.database import StoredCollection

    def table(root: Path, names: list[str]) -> FileTable:
        n = len(names)
        column = np.arange(n, dtype=np.int64)
        stored = StoredCollection(
            names,
            [f"h-{root.name}-{k}" for k in range(n)],
            column,
            column,
            column + 100,
            column.astype(np.int32) + 10,
            column.astype(np.int32) + 20,
            column,
            np.zeros((n, 4), np.float32),
        )
        return FileTable(root, stored)

    a, b = table(tmp_path / "a", ["x.jpg", "y.jpg"]), table(tmp_path / "b", ["x.jpg"])
    joined = JoinedFiles([a, b])
    assert len(joined) == 3 and [joined.part(k) for k in range(3)] == [0, 0, 1]
    assert joined[2].absolute == tmp_path / "b" / "x.jpg" and joined[2].root == tmp_path / "b"
    assert joined[-1] == joined[2] and [f.path for f in joined[0:2]] == ["x.jpg", "y.jpg"]
    assert [f.absolute for f in joined] == [f.absolute for f in (*a, *b)]
    b.content_hashes[0] = "corrected"
    assert joined.content_hashes[2] == "corrected" and joined[2].content_hash == "corrected"
    with pytest.raises(IndexError):
        joined[3]


def test_new_only_compares_old_files_of_folders_searched_apart_once_together(
    two_folders: tuple[Path, Path],
) -> None:
    """find A and find B each compared only within their folder: a first find A B
    --new-only must still compare A's old files with B's (a new set of folders is a first
    run), and the next one only what is new."""
    a, b = (p.resolve() for p in two_folders)
    find(str(a))
    find(str(b))
    together = find(str(a), str(b), "--new-only")
    assert frozenset({str(a / "coffee.jpg"), str(b / "coffee_small.jpg")}) in grouped(together)
    again = find(str(b), str(a), "--new-only")  # the same set, in another order
    assert again["stats"]["new_files"] == 0 and again["groups"] == []


def test_a_hard_linked_database_is_one_database(two_folders: tuple[Path, Path]) -> None:
    a, b = two_folders
    find(str(a))
    os.link(a / "image_database.db", b / "image_database.db")
    result = runner.invoke(app, ["find", str(a), str(b)])
    assert result.exit_code == 2 and "one database" in result.stderr


def test_plain_undo_in_the_second_folder_finds_the_run(
    two_folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (p.resolve() for p in two_folders)
    before = {p: p.read_bytes() for root in (a, b) for p in root.rglob("*.jpg")}
    moved = runner.invoke(
        app, ["find", str(a), str(b), "--action", "move", "--to", str(tmp_path / "q"), "--yes"]
    )
    assert moved.exit_code == 0, moved.stderr
    monkeypatch.chdir(b)
    undone = runner.invoke(app, ["undo"])
    assert undone.exit_code == 0, undone.stderr
    assert {p: p.read_bytes() for p in before} == before
