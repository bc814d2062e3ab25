"""Pictures inside a picture: a photo in a screenshot is found, proposed, proved, and
reported related (never removed); a screenshot of another photo is not related to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from conftest import encode
from dedup_cli.embed.pipeline import EmbedOptions
from dedup_cli.jobs.find import find_duplicates
from dedup_cli.media.decode import decode
from dedup_cli.media.regions import (
    Region,
    inner_pictures,
    may_hold_pictures,
    pack,
    unpack,
)
from dedup_cli.models import get_spec
from dedup_cli.search.orientations import popcount, upright_hashes
from dedup_cli.store import Store

INSIDE = "shown smaller inside the other picture"


def screenshot(photo: Image.Image) -> Image.Image:
    """A light application frame (sidebar, text lines, an avatar) with ``photo`` at about a
    fifth of its width, pillarboxed in black inside a post card, as AugLy's template."""
    frame = Image.new("RGB", (1200, 740), (250, 250, 250))
    draw = ImageDraw.Draw(frame)
    draw.rectangle((0, 0, 200, 740), fill=(242, 243, 245))
    for y in range(80, 420, 40):
        draw.rectangle((20, y, 150, y + 10), fill=(90, 90, 100))  # menu entries
    draw.rectangle((240, 60, 740, 720), fill=(255, 255, 255), outline=(200, 200, 200))
    draw.ellipse((260, 80, 310, 130), fill=(120, 80, 60))  # an avatar
    draw.rectangle((330, 95, 520, 110), fill=(40, 40, 40))  # a name
    draw.rectangle((255, 160, 725, 700), fill=(0, 0, 0))  # the post's black box
    inner = photo.copy()
    inner.thumbnail((460, 530))
    frame.paste(inner, (490 - inner.width // 2, 430 - inner.height // 2))
    return frame


def folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A photo folder holding ``files`` (name: bytes)."""
    root = tmp_path / "photos"
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def photo_and_screenshot(photos: dict[str, Image.Image], name: str) -> dict[str, bytes]:
    """A photo and a screenshot of it, as files."""
    photo = photos[name].convert("RGB")
    return {
        f"{name}.jpg": encode(photo, quality=95),
        "shot.jpg": encode(screenshot(photo), quality=90),
    }


def stored_regions(store: Store) -> set[str]:
    """The paths of the files whose stored regions hold any."""
    return {path for batch in store.regions() for path, blob in batch if unpack(blob)}


def hash_of(thumbnail: bytes) -> int:
    return int(upright_hashes(np.frombuffer(thumbnail, np.uint8).reshape(1, 32, 32))[0])


def test_a_photo_in_a_screenshot_is_found_with_its_box_and_hash(
    photos: dict[str, Image.Image],
) -> None:
    """The photo is cut out inside its black bars: its thumbnail's hash is the photo's own."""
    astronaut = photos["astronaut"].convert("RGB")
    shot = screenshot(astronaut)
    [region] = inner_pictures(shot)
    left, top, right, bottom = region.pixels(shot.width, shot.height)
    inner = astronaut.copy()
    inner.thumbnail((460, 530))
    expected = (490 - inner.width // 2, 430 - inner.height // 2)
    assert abs(left - expected[0]) <= 6 and abs(top - expected[1]) <= 6
    assert abs(right - left - inner.width) <= 12 and abs(bottom - top - inner.height) <= 12
    own = astronaut.convert("L").resize((32, 32), Image.Resampling.BOX).tobytes()
    distance = popcount(np.array([hash_of(region.thumbnail) ^ hash_of(own)], dtype=np.uint64))
    assert int(distance[0]) <= 8


def test_photos_and_pages_hold_no_pictures(photos: dict[str, Image.Image]) -> None:
    """An ordinary photo, a photo on a white mat touching nothing, and a page of text: a
    light background alone is not enough, nor a block touching the frame's edge."""
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        assert inner_pictures(photos[name].convert("RGB")) == []
    page = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(page)
    for y in range(40, 760, 24):
        draw.text((40, y), "the quick brown fox jumps over the lazy dog " * 2, fill="black")
    assert inner_pictures(page) == []
    half = Image.new("RGB", (800, 600), "white")
    half.paste(photos["coffee"].convert("RGB").resize((800, 300)), (0, 300))
    assert inner_pictures(half) == []  # the photo goes on beyond the frame


def test_regions_survive_the_database_format() -> None:
    """Packed and unpacked, boxes keep 1/65535 of the frame; a damaged value holds none."""
    thumbnail = bytes(range(256)) * 4
    regions = [Region((0.25, 0.5, 0.75, 0.9), thumbnail), Region((0.0, 0.1, 0.2, 0.3), thumbnail)]
    back = unpack(pack(regions))
    assert [r.thumbnail for r in back] == [thumbnail, thumbnail]
    for mine, theirs in zip(regions, back):
        assert np.allclose(mine.box, theirs.box, atol=1 / 65535)
    assert unpack(pack(regions)[:-1]) == []
    assert unpack(b"") == [] and unpack(None) == []


def test_decoding_stores_the_regions_of_a_screenshot_only(photos: dict[str, Image.Image]) -> None:
    """``decode`` looks only where the thumbnail is light enough, and records what it found."""
    shot = decode(encode(screenshot(photos["rocket"].convert("RGB")), quality=92), 224)
    assert may_hold_pictures(shot.thumbnail) and len(unpack(shot.regions)) == 1
    plain = decode(encode(photos["coffee"].convert("RGB"), quality=92), 224)
    assert plain.regions == b""


def test_find_reports_a_photo_inside_a_screenshot_as_related_and_removes_nothing(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The screenshot of the photo is related to it (listed, with the reason), nothing is
    planned for removal; the screenshot of another photo is related to nothing."""
    astronaut, coffee = photos["astronaut"].convert("RGB"), photos["coffee"].convert("RGB")
    rocket = photos["rocket"].convert("RGB")
    root = folder(
        tmp_path,
        {
            "astronaut.jpg": encode(astronaut, quality=95),
            "coffee.jpg": encode(coffee, quality=95),
            "shot of astronaut.jpg": encode(screenshot(astronaut), quality=90),
            "shot of rocket.jpg": encode(screenshot(rocket), quality=90),
        },
    )
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(root / "image_database.db") as store:
        found = find_duplicates(root, store, spec, options)
        without = find_duplicates(root, store, spec, options, orientations=False)
    assert found.plan.groups == []
    inside = {
        (Path(r["a"]).name, Path(r["b"]).name) for r in found.related if INSIDE in r["reason"]
    }
    assert inside == {("shot of astronaut.jpg", "astronaut.jpg")}
    assert found.as_dict()["stats"]["related_pairs"] >= 1
    assert not any(INSIDE in r["reason"] for r in without.related)


def test_a_database_from_before_regions_is_migrated_and_its_files_hold_none(
    tmp_path: Path,
) -> None:
    """Version 6 had no ``regions`` column: it is added, NULL for the files it holds."""
    path = tmp_path / "old.db"
    with Store(path) as store:
        del store
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE files DROP COLUMN regions")
    raw.execute("INSERT INTO files (path, size, mtime_ns, updated_at) VALUES ('a.jpg', 1, 1, 0)")
    raw.execute("PRAGMA user_version = 6")
    raw.commit()
    raw.close()
    with Store(path) as store:
        assert list(store.regions()) == []
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT regions FROM files").fetchall() == [(None,)]
    raw.close()


def test_hash_completes_the_regions_of_files_an_older_version_hashed(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """Regions NULL (hashed before they existed): the next ``hash`` embeds nothing, decodes
    only the light screenshots (a photo's dark thumbnail settles it unread), and writes what
    it finds only where the file still has its stored content hash; the other is settled as
    holding none, so a third ``hash`` reads nothing."""
    from dedup_cli.embed.pipeline import embed_root

    root = tmp_path / "photos"
    root.mkdir()
    (root / "coffee.jpg").write_bytes(encode(photos["coffee"].convert("RGB"), quality=95))
    for name in ("shot.jpg", "shot changed.jpg"):
        shot = screenshot(photos["astronaut"].convert("RGB"))
        (root / name).write_bytes(encode(shot, quality=90))
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    db = root / "image_database.db"
    with Store(db) as store:
        embed_root(root, store, spec, options)
        assert stored_regions(store) == {"shot.jpg", "shot changed.jpg"}
    raw = sqlite3.connect(db)
    raw.execute("UPDATE files SET regions = NULL")
    raw.execute("UPDATE files SET content_hash = 'other' WHERE path = 'shot changed.jpg'")
    raw.commit()
    raw.close()
    with Store(db) as store:
        report = embed_root(root, store, spec, options)
        assert report.embedded == 0 and report.regions_completed == 2
        assert stored_regions(store) == {"shot.jpg"}
        assert store.files_without_regions() == {}
        assert embed_root(root, store, spec, options).regions_completed == 0
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT regions FROM files WHERE path = 'coffee.jpg'").fetchall() == [(b"",)]
    raw.close()


def test_cross_reports_a_photo_in_a_screenshot_across_the_two_folders(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The screenshot in B of a photo in A is proposed across the folders and proved inside;
    it is a copy of the screenshot in A and planned for removal, so the relation is listed
    for the file that stays in its place: the screenshot in A."""
    from dedup_cli.jobs.cross import cross_find

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    chelsea = photos["chelsea"].convert("RGB")
    (a / "chelsea.jpg").write_bytes(encode(chelsea, quality=95))
    (a / "shot in a.jpg").write_bytes(encode(screenshot(chelsea), quality=90))
    (b / "shot in b.jpg").write_bytes(encode(screenshot(chelsea), quality=85))
    (b / "rocket.jpg").write_bytes(encode(photos["rocket"].convert("RGB"), quality=90))
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(a / "image_database.db") as store_a, Store(b / "image_database.db") as store_b:
        found = cross_find(a, store_a, b, store_b, spec, options)
    inside = {
        (Path(r["a"]).name, Path(r["b"]).name) for r in found.related if INSIDE in r["reason"]
    }
    assert inside == {("shot in a.jpg", "chelsea.jpg")}
    # The two screenshots are copies of each other; the photo is in no group.
    grouped = {
        Path(f.absolute).name
        for g in found.plan.groups
        for f in (g.keep, *(r.file for r in g.remove))
    }
    assert grouped == {"shot in a.jpg", "shot in b.jpg"}


def test_a_picture_inside_meets_a_hash_six_bits_off_in_every_chunk_and_at_most_three() -> None:
    """Six bits apart, one in each 16-bit chunk and two more: no chunk is shared exactly, so
    the copies' lookup misses it; the lookup of pictures inside allows one bit per chunk.
    Twelve such files: only ``INSIDE_PER_REGION`` are proposed, the closest first."""
    from dedup_cli.search.orientations import INSIDE_PER_REGION, VIEWS, inside_pairs

    rng = np.random.default_rng(7)
    shown = np.uint64(rng.integers(0, 2**63))
    off = np.uint64(sum(1 << b for b in (0, 16, 32, 48, 1, 17)))
    hashes = np.zeros((14, VIEWS), dtype=np.uint64)
    hashes[:, 0] = rng.integers(0, 2**63, size=14).astype(np.uint64)
    hashes[1, 0] = shown ^ off  # six bits off
    picture, container, region = inside_pairs(
        hashes, np.arange(14), np.array([shown]), np.array([0])
    )
    assert (picture.tolist(), container.tolist(), region.tolist()) == ([1], [0], [0])
    for row in range(2, 14):  # twelve more, each 7 bits off
        hashes[row, 0] = shown ^ off ^ np.uint64(1 << (2 + row))
    picture, _, _ = inside_pairs(hashes, np.arange(14), np.array([shown]), np.array([0]))
    assert len(picture) == INSIDE_PER_REGION and picture[0] == 1


def test_a_screenshot_the_embedding_also_proposed_is_still_proved_inside(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """At a threshold every pair reaches, the embedding proposes the photo and its
    screenshot too; the proof of copies rejects it (the photo is a twentieth of the frame),
    and the pair is proved inside all the same, not lost as already proposed."""
    root = folder(tmp_path, photo_and_screenshot(photos, "astronaut"))
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(root / "image_database.db") as store:
        found = find_duplicates(root, store, spec, options, threshold=0.05)
    assert found.as_dict()["stats"]["candidate_pairs"] >= 1
    assert found.plan.groups == []
    assert [
        (Path(r["a"]).name, Path(r["b"]).name, INSIDE in r["reason"]) for r in found.related
    ] == [("shot.jpg", "astronaut.jpg", True)]


def test_the_listing_names_only_files_that_stay(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """A photo with a smaller copy, and two copies of its screenshot: the copies are planned
    for removal, and the one inside relation is listed between the two keepers, once."""
    chelsea = photos["chelsea"].convert("RGB")
    small = chelsea.resize((chelsea.width // 2, chelsea.height // 2))
    shot = screenshot(chelsea)
    root = folder(
        tmp_path,
        {
            "chelsea.jpg": encode(chelsea, quality=95),
            "chelsea small.jpg": encode(small, quality=90),
            "shot.png": encode(shot, "PNG"),
            "shot again.jpg": encode(shot, quality=80),
        },
    )
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(root / "image_database.db") as store:
        found = find_duplicates(root, store, spec, options)
    removed = {Path(r.file.absolute).name for g in found.plan.groups for r in g.remove}
    assert removed == {"chelsea small.jpg", "shot again.jpg"}
    inside = [
        (Path(r["a"]).name, Path(r["b"]).name) for r in found.related if INSIDE in r["reason"]
    ]
    assert inside == [("shot.png", "chelsea.jpg")]


def test_a_screenshot_damaged_after_hashing_proves_nothing_and_find_goes_on(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The screenshot's bytes rot after ``hash`` (same size, same mtime): reading its region
    fails, the pair is not listed, and ``find`` still ends with a plan."""
    import os

    root = folder(tmp_path, photo_and_screenshot(photos, "astronaut"))
    shot = root / "shot.jpg"
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(root / "image_database.db") as store:
        first = find_duplicates(root, store, spec, options)
        assert any(INSIDE in r["reason"] for r in first.related)
        data, stat = shot.read_bytes(), shot.stat()
        shot.write_bytes(data[: len(data) // 3] + bytes(len(data) - len(data) // 3))
        os.utime(shot, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        again = find_duplicates(root, store, spec, options)
    assert not any(INSIDE in r["reason"] for r in again.related)
    assert again.plan.groups == []


def test_a_database_that_lies_about_regions_and_thumbnails_crashes_nothing(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """Values of the wrong type in ``regions`` and ``thumbnail``, and more regions than any
    version writes: ``hash`` and ``find`` run through; such values hold no regions."""
    coffee = encode(photos["coffee"].convert("RGB"), quality=90)
    root = folder(tmp_path, {**photo_and_screenshot(photos, "astronaut"), "coffee.jpg": coffee})
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    db = root / "image_database.db"
    with Store(db) as store:
        find_duplicates(root, store, spec, options)
    raw = sqlite3.connect(db)
    [(blob,)] = raw.execute("SELECT regions FROM files WHERE path = 'shot.jpg'").fetchall()
    raw.execute("UPDATE files SET regions = ? WHERE path = 'shot.jpg'", (blob * 3,))
    raw.execute("UPDATE files SET regions = 'x' WHERE path = 'astronaut.jpg'")
    raw.execute("UPDATE files SET regions = NULL, thumbnail = 12 WHERE path = 'coffee.jpg'")
    raw.commit()
    raw.close()
    assert unpack(blob * 3) == []
    with Store(db) as store:
        found = find_duplicates(root, store, spec, options)
        assert stored_regions(store) == set()
    assert not any(INSIDE in r["reason"] for r in found.related)


def test_a_screenshot_of_a_photo_shown_edited_is_related_for_another_reason(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """A file holding the photo with a patch pasted in, and a screenshot of the photo
    without it: the screenshot does not show that file as it is, so the pair is related as
    any partial match, not "shown smaller inside"; the unedited photo is."""
    from dedup_cli.confirm.inside import InsideCandidate, prove_inside

    coffee = photos["coffee"].convert("RGB")
    edited = coffee.copy()
    patch = photos["rocket"].convert("RGB").resize((coffee.width // 3, coffee.height // 3))
    edited.paste(patch, (coffee.width // 2, coffee.height // 3))
    (tmp_path / "edited.jpg").write_bytes(encode(edited, quality=95))
    (tmp_path / "coffee.jpg").write_bytes(encode(coffee, quality=95))
    shot = screenshot(coffee)
    (tmp_path / "shot.jpg").write_bytes(encode(shot, quality=90))
    [region] = inner_pictures(shot)
    related = prove_inside(
        [
            InsideCandidate(tmp_path / name, tmp_path / "shot.jpg", region.box, 0.5)
            for name in ("edited.jpg", "coffee.jpg")
        ]
    )
    reasons = {Path(r["b"]).name: r["reason"] for r in related}
    assert INSIDE in reasons["coffee.jpg"]
    assert INSIDE not in reasons["edited.jpg"]


def test_a_photo_framed_under_a_caption_bar_is_related_and_the_clean_photo_stays(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The photo at 64 % of a light frame under a title bar: to the keypoints the photo is a
    crop of the frame, and the frame was kept and the clean photo planned for removal. The
    frame adds content of its own (as a caption does): the pair is related, nothing goes.
    A true crop of the photo is still grouped with it."""
    astronaut = photos["astronaut"].convert("RGB")
    frame = Image.new("RGB", (800, 700), (250, 250, 250))
    ImageDraw.Draw(frame).rectangle((20, 10, 300, 30), fill=(30, 30, 30))
    frame.paste(astronaut.resize((600, 600)), (100, 60))
    crop = astronaut.crop((60, 40, 460, 440))
    root = folder(
        tmp_path,
        {
            "astronaut.jpg": encode(astronaut, quality=95),
            "framed.jpg": encode(frame, quality=92),
            "crop.jpg": encode(crop, quality=92),
        },
    )
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(root / "image_database.db") as store:
        found = find_duplicates(root, store, spec, options)
    removed = {Path(r.file.absolute).name for g in found.plan.groups for r in g.remove}
    kept = {Path(g.keep.absolute).name for g in found.plan.groups}
    assert removed == {"crop.jpg"} and kept == {"astronaut.jpg"}
    reasons = {frozenset((Path(r["a"]).name, Path(r["b"]).name)): r for r in found.related}
    assert "frame" in reasons[frozenset(("framed.jpg", "astronaut.jpg"))]["reason"]


def test_a_mirrored_framed_copy_is_related_whichever_file_comes_first(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The frame shows the photo mirrored, off-centre (photo left, text right). Where the
    frame was the second file, the contained picture's place was measured in its mirror
    image, missed the frame's picture, and the clean photo was planned for removal."""
    from PIL import ImageOps

    astronaut = photos["astronaut"].convert("RGB")
    frame = Image.new("RGB", (900, 640), (250, 250, 250))
    draw = ImageDraw.Draw(frame)
    for y in range(100, 400, 40):
        draw.rectangle((620, y, 860, y + 12), fill=(40, 40, 40))
    frame.paste(ImageOps.mirror(astronaut).resize((560, 560)), (30, 40))
    for clean, framed in (("a clean.jpg", "b framed.jpg"), ("b clean.jpg", "a framed.jpg")):
        root = folder(
            tmp_path / clean[0],
            {clean: encode(astronaut, quality=95), framed: encode(frame, quality=92)},
        )
        spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
        with Store(root / "image_database.db") as store:
            found = find_duplicates(root, store, spec, options)
        assert found.plan.groups == [], clean
        assert any("frame" in r["reason"] for r in found.related), clean


def test_a_crop_of_a_page_scan_is_not_the_scan_inside_its_margin(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """A page scan with a light margin, and a 70 % centre crop of it: the crop has about
    the area of the page's content, but the last line of text lies outside it. The scan
    was removed as the crop "padded with bars"; the crop is removed in favour of the scan."""
    rng = np.random.default_rng(0)
    page = Image.new("RGB", (850, 1100), (246, 245, 240))
    draw = ImageDraw.Draw(page)
    for y in range(90, 1040, 28):
        if not 380 <= y <= 720:
            draw.rectangle((90, y, 90 + int(rng.integers(400, 670)), y + 9), fill=(40, 40, 40))
    page.paste(photos["coffee"].convert("RGB").resize((540, 330)), (155, 385))
    noisy = np.asarray(page).astype(np.float32) + rng.normal(0, 2.0, (1100, 850, 1))
    page = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    side = 0.7**0.5
    width, height = int(850 * side), int(1100 * side)
    left, top = (850 - width) // 2, (1100 - height) // 2
    crop = page.crop((left, top, left + width, top + height))
    root = folder(
        tmp_path, {"scan.jpg": encode(page, quality=92), "c70.jpg": encode(crop, quality=92)}
    )
    spec, options = get_spec("effnet"), EmbedOptions(device="cpu", workers=0)
    with Store(root / "image_database.db") as store:
        found = find_duplicates(root, store, spec, options)
    removed = {Path(r.file.absolute).name for g in found.plan.groups for r in g.remove}
    assert "scan.jpg" not in removed


def test_completing_regions_never_overwrites_what_another_hash_wrote_meanwhile(
    tmp_path: Path,
) -> None:
    """Two processes: one completes an older file's regions from what it read, while the
    other hashes the changed file again and writes its regions first. The late write finds
    the row no longer waiting (regions set, content hash changed) and leaves it alone."""
    from dedup_cli.store.database import FileFacts

    thumbnail = bytes(range(256)) * 4
    theirs = pack([Region((0.1, 0.1, 0.5, 0.5), thumbnail)])
    with Store(tmp_path / "x.db") as store:
        model = store.ensure_model("m", 2, "{}")
        old = FileFacts("a.jpg", 1, 1, "old", 8, 8, None, thumbnail, None)
        store.write_batch(model, [old], {})
        assert set(store.files_without_regions()) == {"a.jpg"}
        new = FileFacts("a.jpg", 2, 2, "new", 8, 8, None, thumbnail, theirs)
        store.write_batch(model, [new], {})  # the other process, first
        assert store.write_regions([("a.jpg", "old", b"")]) == 0  # this one, late
        assert [blob for batch in store.regions() for _, blob in batch] == [theirs]
