"""RAW files through their embedded preview (``media.raw``). The RAW files here are made by
the tests: a TIFF header, a small thumbnail JPEG and a full-size preview JPEG, as CR2, NEF,
ARW and DNG files lay them out; no real camera file ships offline."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.media.decode import ImageDecodeError
from dedup_cli.media.raw import raw_preview

runner = CliRunner()


def fake_raw(image: Image.Image, padding: bytes = b"\x00" * 4096, quality: int = 90) -> bytes:
    """A RAW-like file: TIFF header, sensor-like bytes, a thumbnail, the full preview."""
    small = image.copy()
    small.thumbnail((160, 120))
    header = b"II*\x00\x08\x00\x00\x00" + b"\x00\x00" + b"\x00\x00\x00\x00"  # an empty IFD
    return header + padding + encode(small, quality=80) + padding + encode(image, quality=quality)


def test_the_largest_embedded_jpeg_is_the_preview(photos: dict[str, Image.Image]) -> None:
    data = fake_raw(photos["coffee"])
    with Image.open(io.BytesIO(raw_preview(data))) as preview:
        assert preview.size == photos["coffee"].size
    with pytest.raises(ImageDecodeError):
        raw_preview(b"II*\x00" + b"\x00" * 10_000)


def test_raw_copies_are_found_and_a_raw_without_preview_is_a_counted_skip(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    root = tmp_path / "raws"
    (root / "backup").mkdir(parents=True)
    (root / "IMG_0001.CR2").write_bytes(fake_raw(photos["coffee"]))
    # The same shot copied by another tool: other bytes around the same preview.
    (root / "backup" / "IMG_0001.CR2").write_bytes(fake_raw(photos["coffee"], b"\x01" * 9000))
    (root / "DSC_0002.NEF").write_bytes(fake_raw(photos["rocket"]))
    (root / "broken.ARW").write_bytes(b"II*\x00" + b"\x00" * 5000)
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    [group] = document["groups"]
    members = {str(Path(p).relative_to(root.resolve())) for p in [group["keep"], *group["remove"]]}
    assert members == {"IMG_0001.CR2", "backup/IMG_0001.CR2"}
    assert {Path(u["path"]).name for u in document["unreadable"]} == {"broken.ARW"}
    assert group["keep_file"]["width"] == photos["coffee"].width


def test_a_raw_and_the_jpeg_beside_it_are_one_set(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    root = tmp_path / "camera"
    root.mkdir()
    (root / "IMG_0003.NEF").write_bytes(fake_raw(photos["astronaut"], quality=95))
    (root / "IMG_0003.JPG").write_bytes(encode(photos["astronaut"], quality=85))
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["groups"] == []
    [held] = document["held_back"]
    assert "in one set with its keeper" in held["reason"]


def test_the_reviewer_shows_a_raw_by_its_preview(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    from starlette.testclient import TestClient

    from dedup_cli.core.files import FileInfo
    from dedup_cli.core.plan import Plan, PlannedGroup, Removal
    from dedup_cli.review.session import ReviewSession
    from dedup_cli.review.web import WebReview, image_signature, make_app
    from dedup_cli.store import Store

    root = tmp_path / "r"
    root.mkdir()
    for name in ("a.DNG", "b.DNG"):
        (root / name).write_bytes(fake_raw(photos["chelsea"]))

    def info(name: str) -> FileInfo:
        path = root / name
        return FileInfo(name, path, path.stat().st_size, 0, None, 451, 300, root)

    plan = Plan(root, "effnet", 0.9, "quality", roots=[root])
    plan.groups.append(PlannedGroup(info("a.DNG"), (Removal(info("b.DNG"), 1.0, "pixels"),)))
    with Store(tmp_path / "db.sqlite") as store:
        app_ = make_app(WebReview(ReviewSession(plan), [store]), "t")
        with TestClient(app_) as client:
            full = client.get(f"/api/image/0/0?full=1&s={image_signature('t', 0, 0, True)}")
            thumb = client.get(f"/api/image/0/1?s={image_signature('t', 0, 1, False)}")
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(full.content)) as shown:
        assert shown.size == photos["chelsea"].size
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"


CAMERA = {
    "Exif.Image.Make": "NIKON CORPORATION",
    "Exif.Image.Model": "NIKON Z 6",
    "Exif.Photo.DateTimeOriginal": "2025:08:02 10:15:07",
    "Exif.Photo.SubSecTimeOriginal": "42",
}


def camera_exif(when: str, subsec: str) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "NIKON CORPORATION", "NIKON Z 6"
    taken = exif.get_ifd(0x8769)
    taken[0x9003], taken[0x9291] = when, subsec
    return exif


def tiff_raw(image: Image.Image) -> bytes:
    """A RAW laid out as TIFF-based cameras (NEF, CR2, ARW, DNG) write it: a real TIFF header,
    IFD0 with the camera and an EXIF IFD with the capture time (written by exiv2, here around
    an 8 px image), then the full-size preview JPEG."""
    pyexiv2 = pytest.importorskip("pyexiv2")
    buffer = io.BytesIO()
    image.resize((8, 6)).save(buffer, "TIFF")
    tiff = pyexiv2.ImageData(buffer.getvalue())
    try:
        tiff.modify_exif(CAMERA)
        data = bytes(tiff.get_bytes())
    finally:
        tiff.close()
    return data + b"\x00" * 4096 + encode(image, quality=92)


def test_a_raw_and_a_jpeg_of_one_shot_are_one_set_wherever_they_lie(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The JPEG has another name in another folder, but the RAW's camera and capture time:
    the same shot, never removed for the RAW. A copy that lost its EXIF is a copy."""
    root = (tmp_path / "photos").resolve()
    (root / "raw").mkdir(parents=True)
    (root / "export").mkdir()
    (root / "raw" / "DSC_0417.NEF").write_bytes(tiff_raw(photos["astronaut"]))
    small = photos["astronaut"].resize((384, 384))
    (root / "export" / "astronaut on the moon.jpg").write_bytes(
        encode(small, quality=88, exif=camera_exif("2025:08:02 10:15:07", "42"))
    )
    (root / "export" / "no exif.jpg").write_bytes(encode(small, quality=80))
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    removed = {Path(p).name for g in document["groups"] for p in g["remove"]}
    assert removed == {"no exif.jpg"}
    [held] = document["held_back"]
    assert Path(held["path"]).name == "astronaut on the moon.jpg"
    assert held["reason"].startswith("one shot with its keeper DSC_0417.NEF")
    # --pairs ignore plans each file alone, as before.
    alone = runner.invoke(app, ["find", str(root), "--json", "--workers", "0", "--pairs", "ignore"])
    removed = {Path(p).name for g in json.loads(alone.stdout)["groups"] for p in g["remove"]}
    assert removed == {"no exif.jpg", "astronaut on the moon.jpg"}
