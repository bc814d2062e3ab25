"""Line art, text pages and binary images (issue 15): nearly every pixel is pure black or
white, which the dense proof used to leave out, so every copy was rejected. Their copies are
now proved from the strokes, and different pages and drawings that share a layout stay
apart. Through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dedup_cli.cli import app
from dedup_cli.media.lineart import drawing, line_art, text_page
from dedup_cli.media.transforms import EASY

runner = CliRunner()
TRANSFORMS = ("downscale", "jpeg_q30", "brightness", "blur", "exif_rotated", "webp")


def test_copies_of_line_art_are_found_and_other_pages_and_drawings_are_not(
    tmp_path: Path,
) -> None:
    root = tmp_path / "scans"
    root.mkdir()
    originals = {
        "horse": line_art()["horse"],
        "page_1": text_page(1),
        "page_2": text_page(2),  # the same layout, other words: a look-alike of page 1
        "drawing_1": drawing(1),
        "drawing_2": drawing(2),
    }
    for name, image in originals.items():
        image.save(root / f"{name}.png")
    for name in ("horse", "page_1", "drawing_1"):
        for transform in TRANSFORMS:
            data, ext = EASY[transform](originals[name])
            (root / f"{name}__{transform}{ext}").write_bytes(data)
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    groups = [
        {Path(p).name for p in [g["keep"], *g["remove"]]}
        for g in json.loads(result.stdout)["groups"]
    ]
    for name in ("horse", "page_1", "drawing_1"):
        expected = {f"{name}.png"} | {
            f"{name}__{t}{EASY[t](originals[name])[1]}" for t in TRANSFORMS
        }
        assert expected in groups, name
    for group in groups:
        assert len({member.split("__")[0].split(".")[0] for member in group}) == 1, group
    assert not any("page_2.png" in g or "drawing_2.png" in g for g in groups)
