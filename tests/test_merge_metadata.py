"""``--merge-metadata``: before a copy goes, the fields its keeper lacks are copied into the
keeper (or its XMP sidecar) without touching a pixel, journaled, and undone byte for byte.

Through the real CLI; the metadata is written by the test with exiv2 (pyexiv2)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.media import metadata

pyexiv2 = pytest.importorskip("pyexiv2")
runner = CliRunner()

COPY_KNOWS = {
    "Exif.Image.Make": "Canon",
    "Exif.Image.Model": "Canon EOS R6",
    "Exif.Photo.DateTimeOriginal": "2024:07:14 18:03:22",
    "Exif.GPSInfo.GPSLatitudeRef": "N",
    "Exif.GPSInfo.GPSLatitude": "48/1 51/1 2403/100",
    "Exif.GPSInfo.GPSLongitudeRef": "E",
    "Exif.GPSInfo.GPSLongitude": "2/1 17/1 4000/100",
}
COPY_XMP = {"Xmp.xmp.Rating": "4", "Xmp.dc.subject": ["paris", "river"]}


def with_metadata(data: bytes, exif: dict[str, Any], xmp: dict[str, Any]) -> bytes:
    image = pyexiv2.ImageData(data)
    try:
        if exif:
            image.modify_exif(exif)
        if xmp:
            image.modify_xmp(xmp)
        return bytes(image.get_bytes())
    finally:
        image.close()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def folder(tmp_path: Path, photos: dict[str, Image.Image]) -> Path:
    """The keeper (full size, keywords of its own, nothing else) and a smaller copy that was
    sent through a phone and knows where, when and with what it was taken."""
    root = (tmp_path / "photos").resolve()
    (root / "phone").mkdir(parents=True)
    full = photos["coffee"]
    keeper = with_metadata(encode(full, quality=95), {}, {"Xmp.dc.subject": ["coffee"]})
    (root / "coffee.jpg").write_bytes(keeper)
    small = full.resize((full.width * 3 // 4, full.height * 3 // 4), Image.Resampling.LANCZOS)
    (root / "phone" / "IMG_2041.jpg").write_bytes(
        with_metadata(encode(small, quality=85), COPY_KNOWS, COPY_XMP)
    )
    return root


def find(root: Path, *extra: str) -> Any:
    return runner.invoke(app, ["find", str(root), "--json", "--workers", "0", "--yes", *extra])


def undo(root: Path) -> Any:
    return runner.invoke(app, ["undo", "--db", str(root / "image_database.db")])


def test_the_keeper_gains_what_only_the_copy_knew_and_undo_restores_it_byte_for_byte(
    folder: Path, tmp_path: Path
) -> None:
    keeper = folder / "coffee.jpg"
    before, before_mtime = keeper.read_bytes(), keeper.stat().st_mtime_ns
    copy = (folder / "phone" / "IMG_2041.jpg").read_bytes()
    result = find(folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata")
    assert result.exit_code == 0, result.stderr
    action = json.loads(result.stdout)["action"]
    assert [d["path"] for d in action["done"]] == [str(folder / "phone" / "IMG_2041.jpg")]
    [merged] = action["merged"]
    assert merged["path"] == str(keeper)
    assert merged["fields"] == ["camera", "capture time", "gps", "keywords", "rating"]
    tags = metadata.read(keeper.read_bytes())
    for key, value in {**COPY_KNOWS, "Xmp.xmp.Rating": "4"}.items():
        assert tags[key] == value, key
    assert tags["Xmp.dc.subject"] == ["coffee", "paris", "river"]  # its own first, then the copy's
    assert np.array_equal(pixels(keeper.read_bytes()), pixels(before))  # never re-encoded
    undone = undo(folder)
    assert undone.exit_code == 0, undone.stderr
    assert keeper.read_bytes() == before and keeper.stat().st_mtime_ns == before_mtime
    assert (folder / "phone" / "IMG_2041.jpg").read_bytes() == copy


def test_undo_after_a_delete_still_restores_every_keeper(folder: Path) -> None:
    keeper = folder / "coffee.jpg"
    before = keeper.read_bytes()
    result = find(folder, "--action", "delete", "--merge-metadata", "file")
    assert result.exit_code == 0, result.stderr
    assert not (folder / "phone" / "IMG_2041.jpg").exists()
    assert keeper.read_bytes() != before
    undone = runner.invoke(app, ["undo", "--db", str(folder / "image_database.db"), "--json"])
    assert keeper.read_bytes() == before
    # The deleted copy cannot come back, and undo says so (not restored: exit 3).
    assert undone.exit_code == 3
    document = json.loads(undone.stdout)
    assert document["restored"] == [str(keeper)]
    assert [s["reason"] for s in document["skipped"]] == ["deleted: cannot be restored"]


def test_sidecar_mode_leaves_the_keeper_alone_and_undo_removes_the_sidecar(
    folder: Path, tmp_path: Path
) -> None:
    keeper = folder / "coffee.jpg"
    before = keeper.read_bytes()
    result = find(
        folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata", "sidecar"
    )
    assert result.exit_code == 0, result.stderr
    assert keeper.read_bytes() == before
    sidecar = folder / "coffee.jpg.xmp"
    tags = metadata.read(sidecar.read_bytes())
    assert tags["Xmp.tiff.Model"] == "Canon EOS R6"
    assert tags["Xmp.exif.DateTimeOriginal"] == "2024-07-14T18:03:22"
    assert tags["Xmp.exif.GPSLatitude"] == "48,51.400500N"
    assert tags["Xmp.xmp.Rating"] == "4"
    assert undo(folder).exit_code == 0
    assert not sidecar.exists() and keeper.read_bytes() == before


def test_undo_never_overwrites_a_keeper_edited_after_the_merge(
    folder: Path, tmp_path: Path
) -> None:
    keeper = folder / "coffee.jpg"
    result = find(folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata")
    assert result.exit_code == 0, result.stderr
    edited = with_metadata(keeper.read_bytes(), {}, {"Xmp.dc.title": {'lang="x-default"': "mine"}})
    keeper.write_bytes(edited)
    undone = runner.invoke(app, ["undo", "--db", str(folder / "image_database.db"), "--json"])
    assert undone.exit_code != 0
    assert keeper.read_bytes() == edited
    assert "changed since its metadata was merged" in undone.stdout + undone.stderr
    assert (folder / "phone" / "IMG_2041.jpg").exists()  # the copy came back all the same


def test_nothing_is_written_when_the_keeper_lacks_nothing(folder: Path, tmp_path: Path) -> None:
    keeper = folder / "coffee.jpg"
    keeper.write_bytes(with_metadata(keeper.read_bytes(), COPY_KNOWS, COPY_XMP))
    before = keeper.read_bytes()
    result = find(folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["action"]["merged"] == []
    assert keeper.read_bytes() == before


def test_a_copy_whose_fields_cannot_be_merged_stays(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> None:
        raise metadata.MetadataError("cannot write the metadata (disk says no)")

    monkeypatch.setattr(metadata, "merged_into_file", refuse)
    keeper = folder / "coffee.jpg"
    before = keeper.read_bytes()
    result = find(folder, "--action", "delete", "--merge-metadata")
    assert result.exit_code != 0
    [skipped] = json.loads(result.stdout)["action"]["skipped"]
    assert skipped["reason"].startswith("its metadata could not be merged into the keeper")
    assert (folder / "phone" / "IMG_2041.jpg").exists() and keeper.read_bytes() == before


def test_a_forged_merge_row_cannot_write_outside_the_backups(folder: Path, tmp_path: Path) -> None:
    """A journal row whose backup lies elsewhere (edited database) is not restored."""
    import sqlite3

    keeper = folder / "coffee.jpg"
    result = find(folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata")
    assert result.exit_code == 0, result.stderr
    merged_bytes = keeper.read_bytes()
    planted = tmp_path / "planted.jpg"
    planted.write_bytes(b"not the keeper")
    with sqlite3.connect(folder / "image_database.db") as db:
        db.execute("UPDATE actions SET destination = ? WHERE action = 'merge'", (str(planted),))
    undone = runner.invoke(app, ["undo", "--db", str(folder / "image_database.db"), "--json"])
    assert undone.exit_code != 0
    assert keeper.read_bytes() == merged_bytes


def test_merge_metadata_with_a_bad_mode_stops_before_any_work(folder: Path) -> None:
    result = find(folder, "--action", "delete", "--merge-metadata=everything")
    assert result.exit_code == 2
    assert not (folder / "image_database.db").exists()
    assert os.path.exists(folder / "phone" / "IMG_2041.jpg")


def test_a_forged_merge_row_naming_any_photo_is_not_undone(folder: Path, tmp_path: Path) -> None:
    """Review finding: an edited database adds a "merge" row to a real run, naming a photo
    with no other copy, no backup (as for a sidecar the merge created) and that photo's own
    hash as what the merge wrote. Undo must not remove it: only merges recorded in the
    user's state folder are undone."""
    import sqlite3

    from dedup_cli.media.decode import content_hash

    precious = folder / "precious.jpg"
    precious.write_bytes(encode(Image.new("RGB", (64, 48), (200, 30, 30)), quality=90))
    result = find(folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata")
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["action"]["run_id"]
    with sqlite3.connect(folder / "image_database.db") as db:
        db.execute(
            "INSERT INTO actions (run_id, path, keeper, action, destination, size, mtime_ns, "
            "content_hash, status, reason, at, after_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                str(precious),
                str(precious),
                "merge",
                None,
                0,
                0,
                None,
                "done",
                None,
                0.0,
                content_hash(precious.read_bytes()),
            ),
        )
    undone = runner.invoke(app, ["undo", "--db", str(folder / "image_database.db"), "--json"])
    assert precious.exists()
    reasons = [s["reason"] for s in json.loads(undone.stdout)["skipped"]]
    assert reasons == [
        "a merge your dedup did not record for this run: not restored (a database can carry "
        "forged rows)"
    ]


def test_a_merge_keeps_the_keepers_extended_attributes(folder: Path, tmp_path: Path) -> None:
    """Review finding: desktop tags live in extended attributes, and a rewrite through a new
    file dropped them for good."""
    keeper = folder / "coffee.jpg"
    try:
        os.setxattr(keeper, "user.xdg.tags", b"family,best")
    except OSError:
        pytest.skip("this file system keeps no user extended attributes")
    result = find(folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["action"]["merged"]
    assert os.getxattr(keeper, "user.xdg.tags") == b"family,best"
    assert undo(folder).exit_code == 0
    assert os.getxattr(keeper, "user.xdg.tags") == b"family,best"


def test_a_hard_linked_keeper_is_not_rewritten_and_its_copy_stays(
    folder: Path, tmp_path: Path
) -> None:
    keeper = folder / "coffee.jpg"
    before = keeper.read_bytes()
    os.link(keeper, tmp_path / "elsewhere.jpg")
    result = find(folder, "--action", "delete", "--merge-metadata")
    assert result.exit_code != 0
    [skipped] = json.loads(result.stdout)["action"]["skipped"]
    assert "other hard links" in skipped["reason"]
    assert keeper.read_bytes() == before and (folder / "phone" / "IMG_2041.jpg").exists()
    assert keeper.stat().st_nlink == 2


def test_a_keeper_edited_while_its_merge_is_made_is_not_overwritten(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge is computed from the keeper's bytes as read; if another program writes the
    keeper meanwhile, writing the merge would drop that edit: the copy stays instead."""
    keeper = folder / "coffee.jpg"
    real = metadata.merged_into_file
    edited = with_metadata(keeper.read_bytes(), {}, {"Xmp.dc.title": {'lang="x-default"': "x"}})

    def merge_while_edited(keeper_bytes: bytes, copy: bytes) -> Any:
        merged = real(keeper_bytes, copy)
        keeper.write_bytes(edited)  # an editor saves the keeper at this moment
        return merged

    monkeypatch.setattr(metadata, "merged_into_file", merge_while_edited)
    result = find(folder, "--action", "move", "--to", str(tmp_path / "q"), "--merge-metadata")
    assert result.exit_code != 0
    [skipped] = json.loads(result.stdout)["action"]["skipped"]
    assert skipped["reason"] == "keeper changed at the moment of merging its metadata"
    assert keeper.read_bytes() == edited and (folder / "phone" / "IMG_2041.jpg").exists()


@pytest.mark.parametrize("where", ["backup", "keeper"])
def test_a_full_disk_during_a_merge_leaves_keeper_and_copy_as_they_were(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """ENOSPC while the earlier bytes are kept, or while the keeper is rewritten: nothing
    half-written, the keeper's bytes unchanged, the copy not removed."""
    import errno

    import dedup_cli.act.execute as execute
    from dedup_cli.media.fsops import Pinned

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "backup":
        monkeypatch.setattr(execute, "write_atomic", full)
    else:
        monkeypatch.setattr(Pinned, "replace_with", full)
    keeper = folder / "coffee.jpg"
    before = keeper.read_bytes()
    result = find(folder, "--action", "delete", "--merge-metadata")
    assert result.exit_code != 0
    assert keeper.read_bytes() == before and (folder / "phone" / "IMG_2041.jpg").exists()
    assert not [p for p in keeper.parent.iterdir() if p.name.endswith(".dedup-tmp")]
