"""Line art, text pages and binary images (issue 15): nearly every pixel is pure black or
white, which the dense proof used to leave out, so every copy was rejected. Their copies are
now proved from the strokes, and different pages and drawings that share a layout stay
apart. Through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
from typer.testing import CliRunner

from dedup_cli.cli import app
from dedup_cli.confirm.geometry import Picture, load_picture, match, match_aligned
from dedup_cli.media.lineart import WORDS, drawing, line_art, text_page
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


def form(words_changed: dict[int, str], size: tuple[int, int] = (1240, 1754)) -> Image.Image:
    """An A4 page at 150 dpi of 10-point print, one layout; ``words_changed`` puts another
    word at the fourth place of those lines (the same form filled in otherwise)."""
    rng = np.random.default_rng(0)
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=20)
    for line, y in enumerate(range(150, size[1] - 150, 30)):
        words = list(rng.choice(WORDS, 9))
        words[3] = words_changed.get(line, words[3])
        draw.text((125, y), " ".join(words), fill=0, font=font)
    return page.convert("RGB")


def in_a_screenshot(page: Image.Image) -> Image.Image:
    """The page small in a gray application frame, as a phone's screenshot shows it."""
    frame = Image.new("RGB", (1200, 736), (236, 238, 241))
    draw = ImageDraw.Draw(frame)
    draw.rectangle((0, 0, 1200, 48), fill=(255, 255, 255))
    draw.rectangle((20, 70, 300, 700), fill=(250, 250, 250))
    frame.paste(page.resize((210, 280), Image.Resampling.LANCZOS), (420, 400))
    return frame


def saved(folder: Path, name: str, image: Image.Image, **options: object) -> Picture:
    path = folder / name
    image.save(path, **options)
    return load_picture(path)


def test_one_word_changed_in_small_print_is_not_a_copy(tmp_path: Path) -> None:
    """At 256 px a page of small print is a gray texture, and a form filled in with one other
    word agreed with it block by block (worst 0.29); so did two pages in one screenshot frame
    (0.51). Pages are compared again where their print is legible."""
    original = saved(tmp_path, "form.png", form({}))
    for line in (0, 20, 45):
        edited = saved(tmp_path, f"form_{line}.png", form({line: "zeppelin"}))
        for check in (match_aligned, match):
            found = check(original, edited)
            assert found is None or not found.is_copy, (line, check.__name__, found)
    shot = saved(tmp_path, "shot_1.jpg", in_a_screenshot(text_page(1)), quality=90)
    other = saved(tmp_path, "shot_2.jpg", in_a_screenshot(text_page(2)), quality=90)
    found = match_aligned(shot, other)
    assert found is None or not found.is_copy, found


def test_copies_of_a_page_of_small_print_stay_copies(tmp_path: Path) -> None:
    page = form({})
    original = saved(tmp_path, "form.png", page)
    copies = {
        "q30.jpg": (page, {"quality": 30}),
        "half.jpg": (page.resize((620, 877), Image.Resampling.LANCZOS), {"quality": 90}),
        "blur.jpg": (page.filter(ImageFilter.GaussianBlur(1.0)), {"quality": 90}),
        "bright.jpg": (ImageEnhance.Brightness(page).enhance(1.2), {"quality": 90}),
        "webp.webp": (page, {}),
    }
    for name, (image, options) in copies.items():
        found = match_aligned(original, saved(tmp_path, name, image, **options))
        assert found is not None and found.is_copy, (name, found)
    shot = saved(tmp_path, "shot.png", in_a_screenshot(text_page(1)))
    again = saved(tmp_path, "shot.jpg", in_a_screenshot(text_page(1)), quality=85)
    found = match_aligned(shot, again)
    assert found is not None and found.is_copy, found


def test_find_keeps_other_pages_in_one_frame_and_a_form_with_one_word_changed_apart(
    tmp_path: Path,
) -> None:
    """Through the CLI, so that every proof runs: frame on frame, turned, and the keypoint
    fit (which lies frame on frame for two screenshots of one application, and used to
    group them without reading their print)."""
    root = tmp_path / "scans"
    root.mkdir()
    in_a_screenshot(text_page(1)).save(root / "shot_1.png")
    in_a_screenshot(text_page(1)).save(root / "shot_1 copy.jpg", quality=85)
    in_a_screenshot(text_page(2)).save(root / "shot_2.png")
    in_a_screenshot(text_page(3)).save(root / "shot_3.jpg", quality=90)
    form({}).save(root / "form.png")
    form({}).save(root / "form copy.jpg", quality=60)
    form({12: "zeppelin"}).save(root / "form filled in.png")
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0", "-t", "0.5"])
    assert result.exit_code == 0, result.stderr
    groups = {
        frozenset(Path(p).name for p in [g["keep"], *g["remove"]])
        for g in json.loads(result.stdout)["groups"]
    }
    assert groups == {
        frozenset({"shot_1.png", "shot_1 copy.jpg"}),
        frozenset({"form.png", "form copy.jpg"}),
    }


def test_a_mark_on_a_page_margin_is_not_a_copy(tmp_path: Path) -> None:
    """From the review: blocks white in both pages were no evidence, so a word, a page
    number or a tick on the margin was never looked at (worst 0.00). Such a block is now
    compared on all its pixels."""
    page = form({})
    original = saved(tmp_path, "form.png", page)
    marked = page.copy()
    font = ImageFont.load_default(size=30)
    ImageDraw.Draw(marked).text((900, 40), "CONFIDENTIAL", fill=(0, 0, 0), font=font)
    for check in (match_aligned, match):
        found = check(original, saved(tmp_path, "marked.png", marked))
        assert found is None or not found.is_copy, (check.__name__, found)


def test_a_page_replaced_with_its_size_and_time_set_back_is_read_again(tmp_path: Path) -> None:
    """From the review: the larger reading of a page was kept by path, size and mtime, so a
    file replaced by another page of the same size with its mtime set back (``cp -p``,
    ``rsync -t``) was judged from the old reading."""
    first = form({})
    original = saved(tmp_path, "form.bmp", first)
    copy_path = tmp_path / "other.bmp"
    first.save(copy_path)
    found = match_aligned(original, load_picture(copy_path))
    assert found is not None and found.is_copy
    before = copy_path.stat()
    form({12: "zeppelin", 30: "lantern"}).save(copy_path)  # BMP: the same size in bytes
    assert copy_path.stat().st_size == before.st_size
    os.utime(copy_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    found = match_aligned(original, load_picture(copy_path))
    assert found is None or not found.is_copy, found
