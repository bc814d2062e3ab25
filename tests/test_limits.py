"""Limits, end to end through the real CLI: very deep folder trees, huge decodes, a prune of
a root that is (temporarily) empty, and file names that carry terminal control characters."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from conftest import encode, random_image
from dedup_cli.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


def invoke_json(*args: str) -> dict[str, Any]:
    code, out, err = invoke(*args, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


# --- 13: folder trees deeper than Python's recursion limit -------------------------------

DEPTH = 1100


def make_deep_tree(root: Path, depth: int, data: bytes) -> str:
    """``root/d/d/.../d/bottom.png`` ``depth`` folders down, made relative to open folder
    handles (each step is short even where the whole path is long); returns its relative
    path."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("bottom.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        try:
            os.write(out, data)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return "d/" * depth + "bottom.png"


def remove_tree(top: Path) -> None:
    """``shutil.rmtree`` without recursion (before Python 3.13 it recurses once per level,
    so pytest's own clean-up would fail on the deep tree)."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    fds, names = [os.open(top, flags)], [""]
    while fds:
        fd, folder = fds[-1], None
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folder = entry.name
                else:
                    os.unlink(entry.name, dir_fd=fd)
        if folder is not None:
            fds.append(os.open(folder, flags, dir_fd=fd))
            names.append(folder)
            continue
        os.close(fds.pop())
        name = names.pop()
        if fds:
            os.rmdir(name, dir_fd=fds[-1])
    os.rmdir(top)


def test_a_folder_tree_1100_levels_deep_is_scanned_hashed_and_pruned(tmp_path: Path) -> None:
    data = encode(random_image(7, (80, 60)), "PNG")
    root = tmp_path / "deep"
    try:
        bottom = make_deep_tree(root, DEPTH, data)
        _find_hash_and_prune_deep_tree(root, bottom, data)
    finally:
        remove_tree(root)


def _find_hash_and_prune_deep_tree(root: Path, bottom: str, data: bytes) -> None:
    (root / "top.png").write_bytes(data)  # a copy near the top
    (root / "d" / "other.png").write_bytes(encode(random_image(8, (80, 60)), "PNG"))

    document = invoke_json("find", str(root), "--workers", "0")
    assert document["stats"]["files_scanned"] == 3
    groups = [
        {g["keep_file"]["relative_path"], *(r["relative_path"] for r in g["remove_files"])}
        for g in document["groups"]
    ]
    assert groups == [{bottom, "top.png"}]

    hashed = invoke_json("hash", str(root), "--workers", "0")
    assert hashed["scanned"] == 3 and hashed["unchanged"] == 3 and hashed["scan_errors"] == []

    (root / "d" / "other.png").unlink()
    pruned = invoke_json("prune-db", str(root))
    assert pruned["removed"] == ["d/other.png"] and pruned["unchanged"] == 2


# --- 16: terminal control characters in file names ---------------------------------------

# Erase the line, move up, return to the line start, bell, a C1 CSI, a right-to-left override.
EVIL = "\x1b[2K\x1b[1Acopy\r\x07\x9b\u202egpj.jpg"
RAW = ("\x1b", "\r", "\x07", "\x9b", "\u202e")


def test_control_characters_in_names_are_shown_escaped_never_raw(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    data = encode(random_image(3, (80, 60)), "JPEG", quality=90)
    (root / "a.jpg").write_bytes(data)
    (root / EVIL).write_bytes(data)
    (root / "\x1b]0;title\x07broken.jpg").write_bytes(data[:100])  # unreadable, reported
    html = tmp_path / "report.html"

    code, _, human = invoke("find", str(root), "--workers", "0", "--html", str(html))
    assert code == 0, human
    assert not [c for c in RAW if c in human], repr(human)
    assert "\\x1b[2K\\x1b[1Acopy\\x0d\\x07\\x9b\\u202egpj.jpg" in human
    assert "a.jpg" in human

    # JSON keeps the true names (JSON escapes control characters itself).
    document = invoke_json("find", str(root), "--workers", "0")
    names = {r["relative_path"] for g in document["groups"] for r in g["remove_files"]}
    names |= {g["keep_file"]["relative_path"] for g in document["groups"]}
    assert names == {"a.jpg", EVIL}
    assert [u["path"] for u in document["unreadable"]] == ["\x1b]0;title\x07broken.jpg"]

    # The HTML report: every shown path escaped (control characters visible, markup inert).
    page = html.read_bytes().decode("utf-8")
    assert not [c for c in RAW if c in page]
    assert "\\x1b[2K\\x1b[1Acopy\\x0d\\x07\\x9b\\u202egpj.jpg" in page
    # data-path, for scripts, keeps the path, its control characters as references.
    refs = "&#x1b;[2K&#x1b;[1Acopy&#xd;&#x7;&#x9b;&#x202e;gpj.jpg"
    assert f'data-path="{root.resolve()}/{refs}"' in page

    # The unreadable file's line in the `hash` summary.
    code, _, human = invoke("hash", str(root), "--workers", "0")
    assert code == 0 and not [c for c in RAW if c in human], repr(human)


def test_an_error_line_naming_a_path_shows_it_escaped(tmp_path: Path) -> None:
    missing = tmp_path / "gone\x1b[1A\u202e"
    code, _, err = invoke("find", str(missing), "--workers", "0")
    assert code == 2 and "does not exist" in err
    assert not [c for c in RAW if c in err] and "gone\\x1b[1A\\u202e" in err
