"""Files that exist for a picture's sake (an XMP sidecar, a Live Photo's movie) go with it
when it is removed, come back with it on undo, and are never lost on their own.

Through the real CLI; a hook between plan and action (``acting.confirm``) where the files
must change at the last moment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import encode, random_image
from dedup_cli.cli import app

runner = CliRunner()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>\n'
MOVIE = b"\x00\x00\x00\x18ftypqt  " + bytes(range(256)) * 40  # a Live Photo's movie


def photo(seed: int) -> bytes:
    return encode(random_image(seed, (160, 160)), quality=92)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def find(root: Path, *extra: str) -> Any:
    return invoke("find", str(root), "--json", "--workers", "0", *extra)


def folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A photo folder; the keeper of each copy is the one at the top (shallower path)."""
    root = (tmp_path / "photos").resolve()
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def contents(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dedup-runs" not in p.parts and not p.name.startswith("image_")
    }


def test_a_sidecar_moves_with_its_file_and_comes_back_with_it(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        {"a.jpg": photo(1), "backup/a.jpg": photo(1), "backup/a.jpg.xmp": XMP + b"rating 5"},
    )
    before = contents(root)
    planned = json.loads(find(root).stdout)
    [group] = planned["groups"]
    assert group["remove_files"][0]["followers"] == [
        {"path": str(root / "backup" / "a.jpg.xmp"), "what": "sidecar"}
    ]
    quarantine = tmp_path / "quarantine"
    result = find(root, "--action", "move", "--to", str(quarantine), "--yes")
    assert result.exit_code == 0, result.stderr
    done = json.loads(result.stdout)["action"]["done"]
    assert [Path(d["path"]).name for d in done] == ["a.jpg", "a.jpg.xmp"]
    assert done[1]["follows"] == str(root / "backup" / "a.jpg")
    assert not (root / "backup" / "a.jpg.xmp").exists()
    assert (quarantine / "backup" / "a.jpg.xmp").read_bytes() == XMP + b"rating 5"
    undone = invoke("undo", "--db", str(root / "image_database.db"))
    assert undone.exit_code == 0, undone.stderr
    assert contents(root) == before


def test_a_sidecar_is_deleted_only_when_its_keeper_has_the_same_one(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        {"a.jpg": photo(1), "backup/a.jpg": photo(1), "backup/a.jpg.xmp": XMP + b"rating 5"},
    )
    result = find(root, "--action", "delete", "--yes")
    assert result.exit_code != 0
    [skipped] = json.loads(result.stdout)["action"]["skipped"]
    assert "its sidecar a.jpg.xmp would be deleted" in skipped["reason"]
    assert (root / "backup" / "a.jpg").exists() and (root / "backup" / "a.jpg.xmp").exists()
    # With the same sidecar beside the keeper, nothing is lost by deleting both.
    (root / "a.jpg.xmp").write_bytes(XMP + b"rating 5")
    result = find(root, "--action", "delete", "--yes")
    assert result.exit_code == 0, result.stderr
    assert sorted(contents(root)) == ["a.jpg", "a.jpg.xmp"]


def test_a_sidecar_of_a_picture_that_stays_is_left_alone(tmp_path: Path) -> None:
    """``x.xmp`` belongs to every picture named ``x``: it goes only with the last of them."""
    root = folder(
        tmp_path,
        {
            "x.jpg": photo(1),
            "backup/x.jpg": photo(1),
            "backup/x.png": photo(7),
            "backup/x.xmp": XMP,
        },
    )
    planned = json.loads(find(root).stdout)
    [group] = planned["groups"]
    assert group["remove"] == [str(root / "backup" / "x.jpg")]
    assert group["remove_files"][0]["followers"] == []
    result = find(root, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    assert result.exit_code == 0, result.stderr
    assert (root / "backup" / "x.xmp").exists() and (root / "backup" / "x.png").exists()


def test_a_live_photo_goes_whole_only_when_its_keeper_has_the_same_movie(tmp_path: Path) -> None:
    root = folder(
        tmp_path,
        {
            "IMG_1.JPG": photo(1),
            "IMG_1.MOV": MOVIE,
            "backup/IMG_1.JPG": photo(1),
            "backup/IMG_1.MOV": MOVIE,
            "IMG_2.JPG": photo(2),
            "backup/IMG_2.JPG": photo(2),
            "backup/IMG_2.MOV": MOVIE,  # the keeper has only the still: the motion is unique
        },
    )
    before = contents(root)
    planned = json.loads(find(root).stdout)
    assert [g["remove"] for g in planned["groups"]] == [[str(root / "backup" / "IMG_1.JPG")]]
    [held] = planned["held_back"]
    assert held["path"] == str(root / "backup" / "IMG_2.JPG")
    assert "its movie IMG_2.MOV" in held["reason"]
    result = find(root, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    assert result.exit_code == 0, result.stderr
    assert not (root / "backup" / "IMG_1.MOV").exists()
    assert (root / "backup" / "IMG_2.JPG").exists() and (root / "backup" / "IMG_2.MOV").exists()
    assert invoke("undo", "--db", str(root / "image_database.db")).exit_code == 0
    assert contents(root) == before


def test_a_movie_that_changed_after_planning_stops_its_still(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size, other bytes at the moment of acting: the still and its movie both stay."""
    root = folder(
        tmp_path,
        {
            "IMG_1.JPG": photo(1),
            "IMG_1.MOV": MOVIE,
            "backup/IMG_1.JPG": photo(1),
            "backup/IMG_1.MOV": MOVIE,
        },
    )
    import dedup_cli.cli.acting as acting

    def confirm_then_change(*_args: object) -> None:
        movie = root / "backup" / "IMG_1.MOV"
        movie.write_bytes(MOVIE[:-4] + b"edit")

    monkeypatch.setattr(acting, "confirm", confirm_then_change)
    result = find(root, "--action", "delete", "--yes")
    assert result.exit_code != 0
    [skipped] = json.loads(result.stdout)["action"]["skipped"]
    assert skipped["reason"] == "its movie IMG_1.MOV differs from its keeper's IMG_1.MOV"
    assert (root / "backup" / "IMG_1.JPG").exists() and (root / "backup" / "IMG_1.MOV").exists()


def test_a_sidecar_swapped_for_a_symlink_stops_the_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.xmp"
    outside.write_bytes(XMP)
    root = folder(tmp_path, {"a.jpg": photo(1), "backup/a.jpg": photo(1), "backup/a.xmp": XMP})
    import dedup_cli.cli.acting as acting

    def confirm_then_swap(*_args: object) -> None:
        os.unlink(root / "backup" / "a.xmp")
        os.symlink(outside, root / "backup" / "a.xmp")

    monkeypatch.setattr(acting, "confirm", confirm_then_swap)
    result = find(root, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    assert result.exit_code != 0
    [skipped] = json.loads(result.stdout)["action"]["skipped"]
    assert skipped["reason"] == "its sidecar a.xmp is a symlink"
    assert (root / "backup" / "a.jpg").exists() and outside.read_bytes() == XMP


def test_pairs_ignore_plans_each_file_alone(tmp_path: Path) -> None:
    root = folder(tmp_path, {"a.jpg": photo(1), "backup/a.jpg": photo(1), "backup/a.xmp": XMP})
    result = find(root, "--pairs", "ignore", "--action", "delete", "--yes")
    assert result.exit_code == 0, result.stderr
    assert sorted(contents(root)) == ["a.jpg", "backup/a.xmp"]


def test_the_listing_names_what_goes_with_a_file(tmp_path: Path) -> None:
    root = folder(tmp_path, {"a.jpg": photo(1), "backup/a.jpg": photo(1), "backup/a.xmp": XMP})
    listing = invoke("find", str(root), "--workers", "0")
    assert listing.exit_code == 0, listing.stderr
    assert "with its sidecar a.xmp" in listing.stdout


def test_filename_clean_moves_a_copys_sidecar_with_it(tmp_path: Path) -> None:
    root = folder(tmp_path, {"a.jpg": photo(1), "a (1).jpg": photo(1), "a (1).jpg.xmp": XMP})
    result = invoke(
        "filename-clean",
        str(root),
        "--json",
        "--action",
        "move",
        "--to",
        str(tmp_path / "q"),
        "--yes",
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(contents(root)) == ["a.jpg"]
    assert (tmp_path / "q" / "a (1).jpg.xmp").read_bytes() == XMP


# -- found by an adversarial review; each failed before its fix --------------------------


def test_a_keeper_never_stands_for_its_copys_own_sidecar(tmp_path: Path) -> None:
    """``IMG_1.jpg.xmp`` is the copy ``IMG_1.jpg``'s own sidecar, not a sidecar of the
    keeper ``IMG_1.jpg.jpg``'s stem: deleting it would lose the copy's edits."""
    root = folder(
        tmp_path, {"IMG_1.jpg.jpg": photo(1), "IMG_1.jpg": photo(1), "IMG_1.jpg.xmp": XMP + b"!"}
    )
    result = find(root, "--action", "delete", "--yes")
    assert result.exit_code != 0
    [skipped] = json.loads(result.stdout)["action"]["skipped"]
    assert "its sidecar IMG_1.jpg.xmp would be deleted" in skipped["reason"]
    assert (root / "IMG_1.jpg.xmp").read_bytes() == XMP + b"!"


@pytest.mark.parametrize("order", ["keeper first", "copy first"])
def test_a_sidecar_named_after_two_spellings_of_one_name_stays_with_the_keeper(
    tmp_path: Path, order: str
) -> None:
    """``a.jpg`` and ``A.JPG`` (a case-insensitive copy): ``A.JPG.xmp`` belongs to both
    names, so it stays while either stays, whatever the folder's listing order."""
    files = {"A.JPG": photo(1), "a.jpg": photo(1), "A.JPG.xmp": XMP}
    if order == "copy first":
        files = {"a.jpg": photo(1), "A.JPG": photo(1), "A.JPG.xmp": XMP}
    root = folder(tmp_path, files)
    result = find(root, "--action", "delete", "--yes")
    assert result.exit_code == 0, result.stderr
    assert (root / "A.JPG.xmp").read_bytes() == XMP
    assert len([p for p in root.iterdir() if p.suffix.lower() == ".jpg"]) == 1


def test_a_stem_sidecar_stays_with_a_raw_dedup_does_not_read(tmp_path: Path) -> None:
    """``IMG_1.xmp`` belongs to ``IMG_1.CRW`` too (a format dedup does not scan)."""
    root = folder(
        tmp_path,
        {
            "keep/IMG_1.JPG": photo(1),
            "card/IMG_1.JPG": photo(1),
            "card/IMG_1.CRW": b"a raw dedup does not read",
            "card/IMG_1.xmp": XMP,
        },
    )
    result = find(root, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    assert result.exit_code == 0, result.stderr
    assert (root / "card" / "IMG_1.xmp").exists() and (root / "card" / "IMG_1.CRW").exists()


def test_a_shared_sidecar_goes_only_after_every_file_it_belongs_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``x.xmp`` belongs to ``x.jpg`` and ``x.png``, each a copy in its own group; it goes
    with the last of them. If the other one stays at the moment of acting (its keeper
    changed), the sidecar stays with it."""
    root = folder(
        tmp_path,
        {
            "k1.jpg": photo(1),
            "k2.png": encode(random_image(5, (160, 160)), "PNG"),
            "sub/x.jpg": photo(1),
            "sub/x.png": encode(random_image(5, (160, 160)), "PNG"),
            "sub/x.xmp": XMP,
        },
    )
    groups = json.loads(find(root).stdout)["groups"]
    carrier = next(g for g in groups if g["remove_files"][0]["followers"])
    assert [Path(f["path"]).name for f in carrier["remove_files"][0]["followers"]] == ["x.xmp"]
    other = next(g for g in groups if g is not carrier)
    import dedup_cli.cli.acting as acting

    def confirm_then_touch(*_args: object) -> None:
        os.utime(other["keep"], ns=(1, 1))  # that keeper changed: its copy is skipped

    monkeypatch.setattr(acting, "confirm", confirm_then_touch)
    result = find(root, "--action", "move", "--to", str(tmp_path / "q"), "--yes")
    assert result.exit_code != 0
    staying = Path(other["remove"][0])
    assert staying.exists() and (root / "sub" / "x.xmp").read_bytes() == XMP
    skipped = json.loads(result.stdout)["action"]["skipped"]
    reasons = {Path(s["path"]).name: s["reason"] for s in skipped}
    assert reasons["x.xmp"] == f"stays with {staying.name}, which was not removed"
