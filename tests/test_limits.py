"""Limits, end to end through the real CLI: very deep folder trees, huge decodes, a prune of
a root that is (temporarily) empty, and file names that carry terminal control characters."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
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

    code, out, err = invoke("find", str(root), "--workers", "0", "--html", str(html))
    human = out + err
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


# --- 14: decoded size, not file size, bounds memory ---------------------------------------


def png_16bit_gray(width: int, height: int, tile: int = 1000) -> bytes:
    """A 16-bit grayscale PNG (opens in mode ``I;16``) of 16-bit checkerboard tiles, written
    row by row through a streaming compressor: a 12000 x 12000 one is ~1 MB on disk and never
    held as an array here."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    levels = [0x0000, 0x3000, 0x9000, 0xFFFF]
    rows = []
    for band in range(2):
        row = bytearray(b"\x00")  # filter type: none
        for x in range(0, width, tile):
            value = levels[(x // tile + band) % 2 + 2 * ((x // tile) % 3 == 0)]
            row += struct.pack(">H", value) * min(tile, width - x)
        rows.append(bytes(row))
    packer = zlib.compressobj(9)
    body = bytearray()
    for y in range(height):
        body += packer.compress(rows[(y // tile) % 2])
    body += packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", bytes(body))
        + chunk(b"IEND", b"")
    )


_PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
sys.stdout.write(done.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)
sys.exit(done.returncode)
"""


def hash_peak_rss(root: Path) -> tuple[dict[str, Any], int]:
    """``dedup hash ROOT --json --workers 0`` in a child process: its report and its peak
    resident memory in bytes (measured by a wrapper whose only child it is)."""
    dedup = Path(sys.executable).with_name("dedup")
    command = [str(dedup), "hash", str(root), "--json", "--workers", "0"]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), int(done.stderr.strip().splitlines()[-1])


def test_a_one_mb_png_of_12000_by_12000_16_bit_pixels_hashes_in_bounded_memory(
    tmp_path: Path,
) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    (small / "tiny.png").write_bytes(png_16bit_gray(64, 48, tile=16))
    data = png_16bit_gray(12000, 12000)
    assert len(data) < 2_000_000
    (big / "huge.png").write_bytes(data)

    _, baseline = hash_peak_rss(small)  # Python, torch and the model: the same in both runs
    report, peak = hash_peak_rss(big)
    assert report["embedded"] == 1 and report["failed"] == [], report
    # The decoded image itself is 12000 x 12000 x 2 bytes = 288 MB, which a PNG decoder
    # cannot avoid; conversion to RGB adds one strip (~16 MB of output, a few times that in
    # temporaries) and the reduced result. Measured: +330 MB; before, float64 full-size
    # copies made it +3,950 MB (4.7 GB in all).
    assert peak - baseline < 600_000_000, (peak, baseline)
    # Embedded correctly: grouped with a small 8-bit JPEG rendering of the same picture.
    from PIL import Image

    with Image.open(io.BytesIO(png_16bit_gray(1200, 1200, tile=100))) as sixteen:
        eight = Image.fromarray((np.asarray(sixteen) >> 8).astype(np.uint8), "L")
    (big / "small.jpg").write_bytes(encode(eight, "JPEG", quality=90))
    document = invoke_json("find", str(big), "--workers", "0")
    assert document["unreadable"] == [] and document["stats"]["files_scanned"] == 2
    groups = [
        {g["keep_file"]["relative_path"], *(r["relative_path"] for r in g["remove_files"])}
        for g in document["groups"]
    ]
    assert groups == [{"huge.png", "small.jpg"}]


def test_an_image_whose_pixels_would_take_more_than_the_limit_is_reported(
    tmp_path: Path,
) -> None:
    from dedup_cli.media.decode import MAX_PIXELS

    root = tmp_path / "photos"
    root.mkdir()
    data = encode(random_image(3, (80, 60)), "JPEG", quality=90)
    (root / "a.jpg").write_bytes(data)
    (root / "b.jpg").write_bytes(data)
    # 12000 x 12000 RGBA: 144 megapixels (under MAX_PIXELS), 576 MB of pixels (over).
    assert 12000 * 12000 < MAX_PIXELS
    (root / "rgba.png").write_bytes(png_header_only(12000, 12000, color_type=6))
    document = invoke_json("find", str(root), "--workers", "0")
    assert document["unreadable"] == [
        {"path": "rgba.png", "error": "image too large to decode (576 MB of pixels, limit 512 MB)"}
    ]
    assert document["stats"]["unreadable"] == 1 and len(document["groups"]) == 1


def png_header_only(width: int, height: int, color_type: int, depth: int = 8) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
