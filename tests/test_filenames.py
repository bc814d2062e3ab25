"""Copies by name: the patterns (true and false cases) and ``dedup filename-clean``."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.media.filenames import name_pairs

runner = CliRunner()


@pytest.mark.parametrize(
    "copy",
    [
        "name-001.jpg",
        "name (1).jpg",
        "name(2).jpg",
        "name_1.jpg",
        "name copy.jpg",
        "name copy 2.jpg",
        "name - Copy.jpg",
        "name - Copy (3).jpg",
        "Copy of name.jpg",
        "Copy (2) of name.jpg",
        "name.JPG",
        "NAME (1).jpg",
    ],
)
def test_copy_patterns_pair_with_their_base(copy: str) -> None:
    assert [(p.base, p.copy) for p in name_pairs(["d/name.jpg", f"d/{copy}"])] == [
        ("d/name.jpg", f"d/{copy}")
    ]


@pytest.mark.parametrize(
    "names",
    [
        ["IMG_0001.jpg", "IMG_0002.jpg"],  # camera counters are not copy marks
        ["IMG_0001.jpg", "IMG_0001 (1).png"],  # another format is not the same name
        ["photo2019.jpg", "photo.jpg"],  # merely ending in digits
        ["name (1).jpg", "name (2).jpg"],  # two copies without their base
        ["trip.2019.06.jpg", "trip.2019.jpg"],  # many dots
        ["name_1234.jpg", "name.jpg"],  # four digits: a counter
    ],
)
def test_names_that_are_not_copies(names: list[str]) -> None:
    assert name_pairs(names) == []


def test_copies_pair_only_within_a_folder_and_unicode_forms_match() -> None:
    nfd = unicodedata.normalize("NFD", "café (1).jpg")
    pairs = name_pairs(
        [
            "a/café.jpg",
            f"a/{nfd}",
            "b/name (1).jpg",
            "c/name.jpg",
            "a/my.trip.v2.jpg",
            "a/my.trip.v2 copy.jpg",
        ]
    )
    assert sorted((p.base, p.copy) for p in pairs) == [
        ("a/café.jpg", f"a/{nfd}"),
        ("a/my.trip.v2.jpg", "a/my.trip.v2 copy.jpg"),
    ]


def test_chains_of_copy_marks_lead_to_the_base() -> None:
    pairs = name_pairs(["name.jpg", "name - Copy.jpg", "name - Copy (2).jpg"])
    assert {p.base for p in pairs} == {"name.jpg"}


@pytest.fixture
def named(tmp_path: Path, photos) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "named"
    root.mkdir()
    coffee = photos["coffee"]
    (root / "coffee.jpg").write_bytes(encode(coffee, quality=95))
    (root / "coffee (1).jpg").write_bytes((root / "coffee.jpg").read_bytes())
    (root / "coffee copy.jpg").write_bytes(encode(coffee.resize((300, 200)), quality=70))
    (root / "Copy of coffee.jpg").write_bytes(encode(photos["rocket"], quality=95))  # a stranger
    (root / "IMG_0001.jpg").write_bytes(encode(photos["astronaut"], quality=90))
    (root / "IMG_0002.jpg").write_bytes(encode(photos["astronaut"], quality=90))
    return root


def clean(root: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["filename-clean", str(root), "--json", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def removals(doc: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {Path(r["path"]).name: r["method"] for g in doc["groups"] for r in g["remove_files"]}


def test_name_pairs_are_confirmed_by_content(named: Path) -> None:
    doc = clean(named)
    assert removals(doc) == {"coffee (1).jpg": "exact", "coffee copy.jpg": "phash+pixels"}
    assert [Path(u["copy"]).name for u in doc["unconfirmed"]] == ["Copy of coffee.jpg"]
    assert [Path(g["keep"]).name for g in doc["groups"]] == ["coffee.jpg"]


def test_stored_embeddings_are_used_when_present(named: Path) -> None:
    assert runner.invoke(app, ["hash", str(named), "--workers", "0", "-q"]).exit_code == 0
    doc = clean(named)
    assert removals(doc) == {"coffee (1).jpg": "exact", "coffee copy.jpg": "embedding+pixels"}


def test_no_verify_acts_on_names_alone(named: Path) -> None:
    """As the original tool did with ``--keep base``: every name copy goes, the stranger
    included; nothing proves the names wrong."""
    doc = clean(named, "--no-verify", "--keep", "base")
    assert set(removals(doc)) == {"coffee (1).jpg", "coffee copy.jpg", "Copy of coffee.jpg"}
    assert set(removals(doc).values()) == {"name"} and doc["stats"]["verified"] is False


def test_a_stranger_that_only_shares_the_name_never_keeps(named: Path) -> None:
    """``Copy of coffee.jpg`` shows a rocket with more pixels than the coffee: the quality
    keeper is chosen among the files proved to be the base's picture, so the coffee stays
    and the stranger is only listed as unconfirmed."""
    doc = clean(named)
    assert [Path(g["keep"]).name for g in doc["groups"]] == ["coffee.jpg"]
    assert "Copy of coffee.jpg" not in removals(doc)
    assert doc["groups"][0]["keep_reason"] == "the name without a copy mark"  # same bytes


def test_keep_largest_and_delete_only_confirmed(named: Path, photos) -> None:  # type: ignore[no-untyped-def]
    (named / "coffee (2).jpg").write_bytes(encode(photos["coffee"], quality=100))
    doc = clean(named, "--keep", "largest", "--action", "delete", "--yes")
    assert Path(doc["groups"][0]["keep"]).name == "coffee (2).jpg"
    assert {Path(d["path"]).name for d in doc["action"]["done"]} == {
        "coffee.jpg",
        "coffee (1).jpg",
        "coffee copy.jpg",
    }
    assert (named / "coffee (2).jpg").exists() and (named / "Copy of coffee.jpg").exists()
    assert not (named / "coffee (1).jpg").exists()
    assert (named / "IMG_0001.jpg").exists() and (named / "IMG_0002.jpg").exists()


def test_remembered_not_duplicates_are_not_planned(named: Path) -> None:
    from dedup_cli.media.decode import content_hash
    from dedup_cli.store import Store

    with Store(named / "image_database.db") as store:
        store.remember_not_duplicates(
            [
                content_hash((named / "coffee.jpg").read_bytes()),
                content_hash((named / "coffee copy.jpg").read_bytes()),
            ]
        )
    assert removals(clean(named)) == {"coffee (1).jpg": "exact"}


@pytest.mark.parametrize("hashed_first", [False, True])
def test_numbered_screenshots_of_one_app_are_not_copies(
    tmp_path: Path, photos, hashed_first: bool
) -> None:  # type: ignore[no-untyped-def]
    """Windows names screenshots "Screenshot (1).png", "Screenshot (2).png": name pairs whose
    32 px thumbnails agree (one app frame), yet different pictures. Only the files can tell."""
    pytest.importorskip("augly.image")
    from dedup_cli.media.transforms import HARD

    root = tmp_path / "shots"
    root.mkdir()
    for name, photo in (
        ("Screenshot", "astronaut"),
        ("Screenshot (1)", "coffee"),
        ("Screenshot (2)", "rocket"),
    ):
        blob, _ext = HARD["augly_screenshot"](photos[photo])
        (root / f"{name}.jpg").write_bytes(blob)
    (root / "Screenshot (3).jpg").write_bytes((root / "Screenshot.jpg").read_bytes())  # a copy
    if hashed_first:  # the embedding path, as after `dedup hash`
        assert runner.invoke(app, ["hash", str(root), "--workers", "0", "-q"]).exit_code == 0
    result = runner.invoke(app, ["filename-clean", str(root), "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    removed = {Path(p).name for g in document["groups"] for p in g["remove"]}
    assert removed == {"Screenshot (3).jpg"}
