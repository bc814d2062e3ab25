"""Policies on the proved plan: RAW+JPEG and Live Photo sets kept whole (``--pairs``), and
a format order for the keeper (``--prefer``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from conftest import encode
from dedup_cli.cli import app
from dedup_cli.core.files import FileInfo
from dedup_cli.core.plan import Plan, PlannedGroup, Removal
from dedup_cli.core.sets import keep_sets_whole
from dedup_cli.media.companions import MOVIE, SIDECAR, Companions

runner = CliRunner()


def find(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["find", *args, "--json", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def removed(document: dict) -> set[str]:  # type: ignore[type-arg]
    return {p for g in document["groups"] for p in g["remove"]}


def info(path: Path) -> FileInfo:
    return FileInfo(path.name, path, 1, 0, str(path), 8, 8, path.parent)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(2, 14),
)
def test_the_set_policy_only_takes_removals_back_and_never_splits_a_set(
    data: st.DataObject, n: int
) -> None:
    """Any plan, any sets: what the policy leaves is a subset of the plan's removals; no
    file is removed while a member of its set stays; none is removed for its own set."""
    paths = [Path(f"/photos/f{k}") for k in range(n)]
    set_of = data.draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n))
    members: dict[int, list[Path]] = {}
    for k, s in enumerate(set_of):
        members.setdefault(s, []).append(paths[k])

    def companions_of(path: Path) -> list[Path]:
        mine = members[set_of[paths.index(path)]]
        return [p for p in mine if p != path]

    order = data.draw(st.permutations(range(n)))
    plan = Plan(Path("/photos"), "m", 0.9, "quality")
    at = 0
    while at < n - 1:
        size = data.draw(st.integers(2, min(4, n - at)))
        chosen = order[at : at + size]
        at += size
        keeper, rest = paths[chosen[0]], [paths[i] for i in chosen[1:]]
        plan.groups.append(
            PlannedGroup(info(keeper), tuple(Removal(info(p), 1.0, "exact") for p in rest))
        )
    before = {Path(r.file.absolute) for g in plan.groups for r in g.remove}
    keep_sets_whole(plan, companions_of)
    after = {Path(r.file.absolute) for g in plan.groups for r in g.remove}
    assert after <= before
    assert {Path(h["path"]) for h in plan.held_back} == before - after
    for group in plan.groups:
        for removal in group.remove:
            path = Path(removal.file.absolute)
            assert Path(group.keep.absolute) not in companions_of(path)
            assert all(c in after for c in companions_of(path))  # the whole set goes


def test_companions_are_files_of_other_kinds_under_one_stem(tmp_path: Path) -> None:
    names = ("IMG_1.JPG", "IMG_1.CR2", "IMG_1.xmp", "IMG_2.HEIC", "img_2.mov", "a.jpg", "a.png")
    for name in (*names, "b.jpg", "b.jpg.XMP", "c.png", "c.png.xmp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "b.JPEG").write_bytes(b"x")
    found = Companions()
    assert found.of(tmp_path / "IMG_1.JPG") == [tmp_path / "IMG_1.CR2"]
    # A movie, a sidecar or an edit file is not a member of a set: it follows its picture.
    assert found.of(tmp_path / "IMG_2.HEIC") == []
    assert found.followers(tmp_path / "IMG_2.HEIC") == [(tmp_path / "img_2.mov", MOVIE)]
    assert found.followers(tmp_path / "IMG_1.CR2") == [(tmp_path / "IMG_1.xmp", SIDECAR)]
    assert found.followers(tmp_path / "b.jpg") == [(tmp_path / "b.jpg.XMP", SIDECAR)]
    assert found.followers(tmp_path / "b.JPEG") == []  # b.jpg.XMP is b.jpg's alone
    assert found.followers(tmp_path / "c.png") == [(tmp_path / "c.png.xmp", SIDECAR)]
    # A stem's sidecar belongs to every picture of the stem; a named one to its picture.
    assert found.owners(tmp_path / "IMG_1.xmp", SIDECAR) == [
        tmp_path / "IMG_1.CR2",
        tmp_path / "IMG_1.JPG",
    ]
    assert found.owners(tmp_path / "b.jpg.XMP", SIDECAR) == [tmp_path / "b.jpg"]
    assert found.owners(tmp_path / "img_2.mov", MOVIE) == [tmp_path / "IMG_2.HEIC"]
    assert found.of(tmp_path / "a.jpg") == []  # a PNG beside a JPEG is a conversion
    assert found.of(tmp_path / "b.jpg") == []  # two JPEGs are never a set


@pytest.fixture
def shots(tmp_path: Path, photos: dict[str, Image.Image]) -> Path:
    """A camera folder with RAW+JPEG and a Live Photo, and a backup copy of each still at
    the top (the shallower path, so the plan keeps the top and removes the camera's)."""
    root = tmp_path / "photos"
    camera = root / "camera"
    camera.mkdir(parents=True)
    (camera / "IMG_0001.JPG").write_bytes(encode(photos["coffee"], quality=92))
    (camera / "IMG_0001.CR2").write_bytes(b"II*\x00 a raw file dedup does not read yet")
    (camera / "IMG_0002.JPG").write_bytes(encode(photos["rocket"], quality=92))
    (camera / "IMG_0002.MOV").write_bytes(b"\x00\x00\x00\x18ftypqt  a live photo's movie")
    (camera / "IMG_0003.JPG").write_bytes(encode(photos["chelsea"], quality=92))
    for name in ("IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.JPG"):
        shutil.copy(camera / name, root / name)
    return root


def test_a_still_is_kept_with_its_raw_or_movie_and_a_lone_copy_goes(shots: Path) -> None:
    root = shots.resolve()
    document = find(str(root))
    assert removed(document) == {str(root / "camera" / "IMG_0003.JPG")}
    held = {h["path"]: h["reason"] for h in document["held_back"]}
    assert set(held) == {
        str(root / "camera" / "IMG_0001.JPG"),
        str(root / "camera" / "IMG_0002.JPG"),
    }
    assert "IMG_0001.CR2" in held[str(root / "camera" / "IMG_0001.JPG")]
    # --pairs ignore plans each file alone, as before.
    alone = find(str(root), "--pairs", "ignore")
    assert removed(alone) == {
        str(root / "camera" / n) for n in ("IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.JPG")
    }
    assert alone["held_back"] == []
    listing = runner.invoke(app, ["find", str(root), "--workers", "0"])
    assert "kept with their set" in listing.stdout


def test_a_heic_and_its_jpeg_export_of_one_shot_are_never_removed_for_each_other(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    root = tmp_path / "phone"
    root.mkdir()
    photos["astronaut"].save(root / "IMG_0004.HEIC", quality=95)
    photos["astronaut"].save(root / "IMG_0004.JPG", quality=90)
    document = find(str(root))
    assert document["groups"] == []
    assert [Path(h["path"]).name for h in document["held_back"]] in (
        ["IMG_0004.JPG"],
        ["IMG_0004.HEIC"],
    )
    assert "in one set with its keeper" in document["held_back"][0]["reason"]


@pytest.mark.parametrize(("order", "kept"), [("heic,jpeg", ".heic"), ("jpeg,heic", ".jpg")])
def test_prefer_orders_formats_before_the_file_size(
    tmp_path: Path, photos: dict[str, Image.Image], order: str, kept: str
) -> None:
    """An iPhone HEIC and its "most compatible" JPEG export, in two folders: the same
    pixels, no metadata either way; --prefer decides which stays."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    root = tmp_path / "library"
    (root / "iphone").mkdir(parents=True)
    (root / "export").mkdir()
    photos["astronaut"].save(root / "iphone" / "shot.heic", quality=95)
    photos["astronaut"].save(root / "export" / "shot.jpg", quality=95)
    document = find(str(root), "--prefer", order)
    assert len(document["groups"]) == 1
    group = document["groups"][0]
    assert group["keep"].endswith(kept)
    assert group["keep_reason"] == f"the preferred format ({order.replace(',', ' > ')})"


@pytest.mark.parametrize(
    "args",
    [
        ["--prefer", "raw,png2"],
        ["--prefer", "jpeg,jpeg"],
        ["--prefer", "heic", "--keep", "largest"],
        ["--pairs", "split"],
    ],
)
def test_bad_policy_options_stop_before_any_work(tmp_path: Path, args: list[str]) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    result = runner.invoke(app, ["find", str(folder), *args])
    assert result.exit_code == 2, result.stderr
    assert not (folder / "image_database.db").exists()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_followers_only_take_removals_back_and_never_strand_or_lose_a_file(
    data: st.DataObject,
) -> None:
    """Random folders of stills, sidecars and movies, any plan: the rules only take
    removals back; a follower goes with exactly one removal, only when every picture it
    belongs to goes; a movie goes only with an equal-sized one beside the keeper; no
    still is removed while its movie would be left to a picture that is gone."""
    import tempfile

    from dedup_cli.core.sets import keep_companions
    from dedup_cli.media.companions import kind_of

    with tempfile.TemporaryDirectory() as scratch:
        folders = [Path(scratch) / name for name in ("a", "b")]
        pictures: list[Path] = []
        for folder in folders:
            folder.mkdir()
            for stem in ("IMG_1", "IMG_2"):
                for ext in data.draw(st.sets(st.sampled_from([".JPG", ".HEIC", ".CR2"]))):
                    (folder / f"{stem}{ext}").write_bytes(b"p")
                    pictures.append(folder / f"{stem}{ext}")
                extras = data.draw(st.sets(st.sampled_from([".MOV", ".xmp", ".AAE"])))
                for ext in extras:
                    size = data.draw(st.integers(1, 2))
                    (folder / f"{stem}{ext}").write_bytes(b"m" * size)
        if len(pictures) < 2:
            return
        order = data.draw(st.permutations(pictures))
        plan = Plan(Path(scratch), "m", 0.9, "quality")
        at = 0
        while at < len(order) - 1:
            size = data.draw(st.integers(2, min(4, len(order) - at)))
            keeper, *rest = order[at : at + size]
            at += size
            plan.groups.append(
                PlannedGroup(info(keeper), tuple(Removal(info(p), 1.0, "pixels") for p in rest))
            )
        before = {Path(r.file.absolute) for g in plan.groups for r in g.remove}
        found = Companions()
        keep_companions(plan, found)
        after = {Path(r.file.absolute) for g in plan.groups for r in g.remove}
        assert after <= before
        assert {Path(h["path"]) for h in plan.held_back} == before - after
        attached: list[Path] = []
        for group in plan.groups:
            keeper = Path(group.keep.absolute)
            for removal in group.remove:
                path = Path(removal.file.absolute)
                for follower in plan.followers.get(str(path), []):
                    place = path.parent / follower.name
                    attached.append(place)
                    owners = found.owners(place, follower.what)
                    assert all(o in after for o in owners)
                    if follower.what == MOVIE:
                        assert follower.counterpart is not None
                        theirs = keeper.parent / follower.counterpart
                        assert theirs.stat().st_size == place.stat().st_size
                # A removed JPEG or HEIC still whose movie belongs to no staying picture
                # takes its movie along: the movie is never left behind alone.
                for movie, what in found.followers(path):
                    owners = found.owners(movie, what)
                    if what == MOVIE and all(o in after for o in owners):
                        assert movie in set(attached) or any(
                            movie == p.parent / f.name
                            for p_str, fs in plan.followers.items()
                            for p in [Path(p_str)]
                            for f in fs
                        )
                assert kind_of(path.name) is not None
        assert len(attached) == len(set(attached))
