"""Letterbox, pillarbox and padding (issue 15): a copy with uniform bars is embedded from the
picture inside them, so it is proposed; the proof sees padding, not a crop; and the keeper
is the picture without bars, though the padded file has more pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.confirm.geometry import load_picture, match, match_aligned
from dedup_cli.media.borders import content_box
from dedup_cli.media.lineart import text_page

runner = CliRunner()


def test_bars_are_found_and_pictures_are_left_whole(photos: dict[str, Image.Image]) -> None:
    photo = np.asarray(photos["coffee"].convert("RGB"))
    h, w = photo.shape[:2]
    assert content_box(photo) is None  # a photo without bars
    boxed = np.zeros((h + 80, w, 3), np.uint8)
    boxed[40 : 40 + h] = photo
    assert content_box(boxed) == (0, 40, w, 40 + h)
    margin = np.full((h, w + 100, 3), 255, np.uint8)
    margin[:, 50 : 50 + w] = photo
    assert content_box(margin) == (50, 0, 50 + w, h)
    # Gray bars are not padding a scanner or a letterbox adds; a sliver is not cut either.
    assert content_box(np.where(boxed == 0, 128, boxed).astype(np.uint8)) is None
    # Nor is a dark photo cut down to a strip: at least 30 % of each side stays.
    night = np.zeros((200, 200, 3), np.uint8)
    night[95:105] = 200
    assert content_box(night) is None


def pad(image: Image.Image, how: str) -> bytes:
    rgb = image.convert("RGB")
    w, h = rgb.size
    if how == "letterbox":
        canvas = Image.new("RGB", (w, int(h * 1.4)), (0, 0, 0))
        canvas.paste(rgb, (0, int(h * 0.2)))
    elif how == "pillarbox":
        canvas = Image.new("RGB", (int(w * 1.4), h), (0, 0, 0))
        canvas.paste(rgb, (int(w * 0.2), 0))
    else:
        canvas = ImageOps.expand(rgb, border=max(w, h) // 10, fill=(255, 255, 255))
    return encode(canvas, quality=92)


def test_a_padded_copy_is_found_and_the_picture_without_bars_is_kept(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("coffee", "rocket", "chelsea"):
        (root / f"{name}.jpg").write_bytes(encode(photos[name].convert("RGB"), quality=95))
        for how in ("letterbox", "pillarbox", "margin"):
            (root / f"{name}__{how}.jpg").write_bytes(pad(photos[name], how))
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    groups = json.loads(result.stdout)["groups"]
    kept = {Path(g["keep"]).name for g in groups}
    removed = {Path(p).name for g in groups for p in g["remove"]}
    assert {"coffee.jpg", "rocket.jpg", "chelsea.jpg"} <= kept  # never the padded file
    found = sum(
        f"{n}__{how}.jpg" in removed
        for n in ("coffee", "rocket", "chelsea")
        for how in ("letterbox", "pillarbox", "margin")
    )
    assert found >= 7, removed  # of 9: 7 measured (before: a padded file was the keeper)
    reasons = {g["keep_reason"] for g in groups}
    assert any("padded with bars" in r for r in reasons)


@pytest.mark.parametrize("how", ["letterbox", "pillarbox"])
def test_a_light_page_in_black_bars_is_a_copy_and_another_page_is_not(
    tmp_path: Path, how: str
) -> None:
    """Where a white page meets black bars, JPEG ringing and resampling darken its outermost
    pixels; the block comparison used to read that as a difference (worst residual 1.3 for
    scikit-image's text, 0.8 for its clock: never grouped)."""
    page, other = text_page(1), text_page(2)
    original = tmp_path / "page.png"
    original.write_bytes(encode(page, "PNG"))
    padded = tmp_path / f"page_{how}.jpg"
    padded.write_bytes(pad(page, how))
    found = match(load_picture(original), load_picture(padded))
    assert found is not None and found.is_copy, found
    another = tmp_path / f"other_{how}.jpg"
    another.write_bytes(pad(other, how))
    for check in (match, match_aligned):
        found = check(load_picture(original), load_picture(another))
        assert found is None or not found.is_copy, found
