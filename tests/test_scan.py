from __future__ import annotations

import os
from pathlib import Path

import pytest

from dedup_cli.errors import UsageError
from dedup_cli.media.scan import scan


def touch(path: Path, content: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_extensions_are_case_insensitive_and_non_images_ignored(tmp_path: Path) -> None:
    for name in (
        "a.JPG",
        "b.jpeg",
        "c.Png",
        "d.webp",
        "e.BMP",
        "f.tif",
        "g.TIFF",
        "h.gif",
        "i.heic",
        "j.HEIF",
        "k.avif",
        "notes.txt",
        "raw.cr2",
        "noext",
    ):
        touch(tmp_path / name)
    found = [f.path for f in scan(tmp_path).files]
    assert found == [
        "a.JPG",
        "b.jpeg",
        "c.Png",
        "d.webp",
        "e.BMP",
        "f.tif",
        "g.TIFF",
        "h.gif",
        "i.heic",
        "j.HEIF",
        "k.avif",
        "raw.cr2",  # a RAW is read through its embedded preview (media.raw)
    ]


def test_nested_paths_are_relative_posix_and_sorted(tmp_path: Path) -> None:
    touch(tmp_path / "z" / "y" / "deep.jpg")
    touch(tmp_path / "top.png")
    result = scan(tmp_path)
    assert [f.path for f in result.files] == ["top.png", "z/y/deep.jpg"]
    assert result.files[1].absolute == tmp_path.resolve() / "z" / "y" / "deep.jpg"
    assert result.files[1].size == 1


def test_hidden_folders_are_skipped_unless_asked(tmp_path: Path) -> None:
    touch(tmp_path / ".thumbs" / "a.jpg")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / "shown.jpg")
    assert [f.path for f in scan(tmp_path).files] == ["shown.jpg"]
    assert [f.path for f in scan(tmp_path, include_hidden=True).files] == [
        ".hidden.jpg",
        ".thumbs/a.jpg",
        "shown.jpg",
    ]


def test_database_files_are_excluded_even_with_image_names(tmp_path: Path) -> None:
    touch(tmp_path / "photo.jpg")
    db = tmp_path / "weird.png"
    touch(db)
    touch(tmp_path / "weird.png-wal")
    assert [f.path for f in scan(tmp_path, exclude=[db]).files] == ["photo.jpg"]


def test_symlinks_are_not_followed_and_loops_do_not_hang(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "a.jpg")
    os.symlink(tmp_path / "real", tmp_path / "real" / "loop")
    os.symlink(tmp_path / "real" / "a.jpg", tmp_path / "link.jpg")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "broken.jpg")
    result = scan(tmp_path)
    assert [f.path for f in result.files] == ["real/a.jpg"]
    assert result.skipped_symlinks == 3


def test_several_roots(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "1.jpg")
    touch(tmp_path / "b" / "2.jpg")
    result = scan([tmp_path / "a", tmp_path / "b"])
    assert [(f.root.name, f.path) for f in result.files] == [("a", "1.jpg"), ("b", "2.jpg")]


def test_a_file_instead_of_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    with pytest.raises(UsageError, match="not a folder"):
        scan(tmp_path / "a.jpg")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_folder_is_counted_not_fatal(tmp_path: Path) -> None:
    touch(tmp_path / "locked" / "a.jpg")
    touch(tmp_path / "ok.jpg")
    (tmp_path / "locked").chmod(0)
    try:
        result = scan(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [f.path for f in result.files] == ["ok.jpg"]
    assert result.errors and result.errors[0][0] == "locked"
