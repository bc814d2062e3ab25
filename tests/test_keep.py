"""The ``quality`` keeper: the best copy stays, told from the files (pixels, conversions and
re-saves, metadata, bytes, copy marks, depth), one rule for find, cross and filename-clean,
and every plan says why its keeper won."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.core.files import FileInfo
from dedup_cli.core.keep import KeeperRank, has_copy_mark
from dedup_cli.media.provenance import encoding_of, made_from

runner = CliRunner()


def with_exif(image: Image.Image, **options: object) -> bytes:
    """A JPEG carrying a capture time, a camera and a GPS position."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2021:06:01 10:00:00"
    exif.get_ifd(0x8825)[1] = "N"
    return encode(image, exif=exif.tobytes(), **options)


@pytest.fixture
def folder(tmp_path: Path, photos) -> Path:  # type: ignore[no-untyped-def]
    """The folder a new user met: a PNG saved from a JPEG, a ``(1)`` copy, a copy in a
    backup folder, a JPEG re-saved at a higher quality, and a copy that lost its metadata
    (but is larger: it carries a comment)."""
    root = tmp_path / "photos"
    (root / "pets").mkdir(parents=True)
    (root / "2020" / "backup").mkdir(parents=True)
    (root / "coffee.jpg").write_bytes(encode(photos["coffee"], quality=85))
    Image.open(root / "coffee.jpg").save(root / "coffee.png")
    (root / "pets" / "chelsea.jpg").write_bytes(encode(photos["chelsea"], quality=90))
    (root / "pets" / "chelsea (1).jpg").write_bytes((root / "pets" / "chelsea.jpg").read_bytes())
    (root / "astronaut.jpg").write_bytes(encode(photos["astronaut"], quality=90))
    (root / "2020" / "backup" / "astronaut.jpg").write_bytes((root / "astronaut.jpg").read_bytes())
    os.utime(root / "2020" / "backup" / "astronaut.jpg", (1e9, 1e9))  # older, yet deeper
    (root / "rocket.jpg").write_bytes(encode(photos["rocket"], quality=75))
    Image.open(root / "rocket.jpg").save(root / "rocket_hq.jpg", quality=98)
    camera = photos["camera"].convert("RGB")
    (root / "camera.jpg").write_bytes(with_exif(camera, quality=90))
    (root / "camera_shared.jpg").write_bytes(encode(camera, quality=90, comment=b"x" * 20_000))
    return root


def plan(root: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def keepers(doc: dict) -> dict[str, tuple[str, list[str]]]:  # type: ignore[type-arg]
    root = Path(doc["root"])
    return {
        str(Path(g["keep"]).relative_to(root)): (
            g["keep_reason"],
            sorted(str(Path(p).relative_to(root)) for p in g["remove"]),
        )
        for g in doc["groups"]
    }


def test_the_quality_keeper_keeps_the_best_copy_and_says_why(folder: Path) -> None:
    doc = plan(folder)
    assert doc["keep_strategy"] == "quality"
    groups = keepers(doc)
    assert groups["coffee.jpg"] == (
        "coffee.png was made from another copy (a PNG holding the decoded pixels of the JPEG)",
        ["coffee.png"],
    )
    assert groups["pets/chelsea.jpg"] == ("the name without a copy mark", ["pets/chelsea (1).jpg"])
    assert groups["astronaut.jpg"] == ("the shallower path", ["2020/backup/astronaut.jpg"])
    assert groups["rocket.jpg"] == (
        "rocket_hq.jpg was made from another copy (a JPEG re-encoded from the other)",
        ["rocket_hq.jpg"],
    )
    assert groups["camera.jpg"] == (
        "richer metadata (capture time, camera, GPS)",
        ["camera_shared.jpg"],
    )
    # The listing says the same, on stdout.
    result = runner.invoke(app, ["find", str(folder), "--workers", "0"])
    assert "kept: the shallower path" in " ".join(result.stdout.split())


def test_largest_stays_the_original_tools_rule(folder: Path) -> None:
    groups = keepers(plan(folder, "--keep", "largest"))
    assert groups["coffee.png"] == ("the larger file", ["coffee.jpg"])
    assert groups["rocket_hq.jpg"][1] == ["rocket.jpg"]
    assert groups["camera_shared.jpg"][1] == ["camera.jpg"]


def test_filename_clean_and_find_keep_the_same_file(folder: Path) -> None:
    result = runner.invoke(app, ["filename-clean", str(folder), "--json"])
    assert result.exit_code == 0, result.stderr
    names = json.loads(result.stdout)
    assert [Path(g["keep"]).name for g in names["groups"]] == ["chelsea.jpg"]
    assert names["groups"][0]["keep_reason"] == "the name without a copy mark"
    assert "pets/chelsea.jpg" in keepers(plan(folder))


def test_cross_uses_the_same_rule(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "coffee.jpg").write_bytes(encode(photos["coffee"], quality=85))
    Image.open(b / "coffee.jpg").save(a / "coffee.png")
    result = runner.invoke(app, ["cross", str(a), str(b), "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [(Path(g["keep"]).parent.name, Path(g["keep"]).name) for g in doc["groups"]] == [
        ("b", "coffee.jpg")
    ]


def test_made_from_tells_the_source_from_its_conversions(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    coffee = photos["coffee"]
    source_png = tmp_path / "source.png"
    coffee.save(source_png)
    jpeg = tmp_path / "export.jpg"
    Image.open(source_png).save(jpeg, quality=90)
    converted = tmp_path / "converted.png"
    Image.open(jpeg).save(converted)
    higher = tmp_path / "higher.jpg"
    Image.open(jpeg).save(higher, quality=98)
    lower = tmp_path / "lower.jpg"
    Image.open(jpeg).save(lower, quality=60)
    other_export = tmp_path / "other_export.jpg"
    Image.open(source_png).save(other_export, quality=80)
    stranger = tmp_path / "stranger.jpg"
    photos["astronaut"].resize(coffee.size).save(stranger, quality=90)

    assert made_from(converted, jpeg) is not None  # a PNG of the JPEG's pixels
    assert made_from(jpeg, converted) is None
    assert made_from(source_png, jpeg) is None  # the PNG the JPEG was exported from
    assert made_from(jpeg, source_png) is None  # lossy from lossless: bytes decide
    assert made_from(higher, jpeg) is not None and made_from(jpeg, higher) is None
    assert made_from(lower, jpeg) is not None and made_from(jpeg, lower) is None
    # Two exports of one original: neither was made from the other.
    assert made_from(other_export, jpeg) is None and made_from(jpeg, other_export) is None
    assert made_from(stranger, jpeg) is None and made_from(jpeg, stranger) is None
    assert made_from(tmp_path / "missing.jpg", jpeg) is None


def test_metadata_is_read_from_the_header(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    rich, bare = tmp_path / "rich.jpg", tmp_path / "bare.jpg"
    rich.write_bytes(with_exif(photos["coffee"], quality=80))
    bare.write_bytes(encode(photos["coffee"], quality=80))
    assert encoding_of(rich).metadata == ("capture time", "camera", "GPS")
    assert encoding_of(bare).metadata == () and encoding_of(bare).format == "JPEG"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    assert encoding_of(broken).format is None


@pytest.mark.parametrize(
    ("name", "marked"),
    [
        ("a/chelsea (1).jpg", True),
        ("chelsea copy.jpg", True),
        ("chelsea - Copy.jpg", True),
        ("chelsea-2.jpg", True),
        ("IMG_0001.jpg", False),
        ("chelsea.jpg", False),
    ],
)
def test_copy_marks(name: str, marked: bool) -> None:
    assert has_copy_mark(name) is marked


def test_the_group_wide_test_runs_only_among_the_members_with_the_most_pixels(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """A smaller member is never decoded to ask whether it was made from another: pixels
    already decide against it."""
    big = tmp_path / "big.jpg"
    big.write_bytes(encode(photos["coffee"], quality=90))
    small = tmp_path / "small.png"
    Image.open(io.BytesIO(big.read_bytes())).resize((200, 133)).save(small)
    files = [
        FileInfo("small.png", small, small.stat().st_size, 0, "s", 200, 133),
        FileInfo("big.jpg", big, big.stat().st_size, 0, "b", 600, 400),
    ]
    rank = KeeperRank("quality", files)
    assert rank.best([0, 1]) == 1
    assert rank._made_from == {}  # nothing was decoded
    assert rank.why(1, [0]) == "more pixels"


def test_a_lossless_original_is_never_called_a_conversion_of_its_jpeg_export(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """A PNG original exported as a quality-100 JPEG without chroma subsampling: the two
    decode to almost the same pixels, but the JPEG's are off by 2-4 levels on 4 % of them.
    The PNG is the source; found by an adversarial review (the PNG was removed)."""
    original = tmp_path / "scan_original.png"
    photos["astronaut"].save(original)
    export = tmp_path / "scan_export.jpg"
    Image.open(original).save(export, quality=100, subsampling=0)
    assert made_from(original, export) is None
    files = [FileInfo(p.name, p, p.stat().st_size, 0, p.name, 512, 512) for p in (export, original)]
    assert KeeperRank("quality", files).best([0, 1]) == 1


def test_pixels_that_differ_away_from_the_centre_are_not_a_conversion(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """Tiles are spread corners to centre: a PNG of a JPEG's pixels with its top rows
    blacked out and its bottom rows tinted is not "made from" that JPEG."""
    import numpy as np

    big = photos["astronaut"].resize((2048, 2048))
    source = tmp_path / "source.jpg"
    big.save(source, quality=90)
    pixels = np.asarray(Image.open(source).convert("RGB")).copy()
    pixels[:300] = 0
    pixels[-200:, :, 0] = 255
    edited = tmp_path / "edited.png"
    Image.fromarray(pixels).save(edited)
    assert made_from(edited, source) is None
    Image.open(source).save(tmp_path / "same.png")
    assert made_from(tmp_path / "same.png", source) is not None


def test_a_keep_reason_naming_a_file_shows_its_control_characters_escaped(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """The reason can name a file ("X was made from another copy"): in the listing and the
    HTML report its control characters are shown escaped, never written raw."""
    from dedup_cli.review.html import render_html

    root = tmp_path / "photos"
    root.mkdir()
    (root / "coffee.jpg").write_bytes(encode(photos["coffee"], quality=85))
    evil = "\x1b[2Jcoffee\x07.png"
    Image.open(root / "coffee.jpg").save(root / evil, format="PNG")
    doc = plan(root)
    assert doc["groups"][0]["keep_reason"].startswith(evil)
    listing = runner.invoke(app, ["find", str(root), "--workers", "0"]).stdout
    assert "\x1b" not in listing and "\\x1b[2Jcoffee\\x07.png was made from" in listing
    from dedup_cli.embed.pipeline import EmbedOptions
    from dedup_cli.jobs.find import find_duplicates
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store

    with Store(root / "image_database.db") as store:
        found = find_duplicates(
            root, store, get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
        )
    page = render_html(found.plan)
    assert "\x1b" not in page and "\x07" not in page and "\\x1b[2Jcoffee" in page
