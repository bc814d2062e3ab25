"""Limits, end to end through the real CLI: very deep folder trees, huge decodes, a prune of
a root that is (temporarily) empty, and file names that carry terminal control characters."""

from __future__ import annotations

import json
import os
import sqlite3
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
