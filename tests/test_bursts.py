"""Bursts are not duplicates: shots by one camera at other capture times are never removed
for each other, and ``find --bursts`` lists them with the sharpest frame marked."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance, ImageFilter
from typer.testing import CliRunner

from dedup_cli.cli import app
from dedup_cli.core.bursts import bursts, hold_back_other_shots
from dedup_cli.core.files import FileInfo
from dedup_cli.core.plan import Plan, PlannedGroup, Removal

runner = CliRunner()


def shot(image: Image.Image, path: Path, when: str, subsec: str, quality: int = 92) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    taken = exif.get_ifd(0x8769)
    taken[0x9003], taken[0x9291] = when, subsec
    image.save(path, "JPEG", quality=quality, exif=exif)


def test_bursts_are_runs_of_distinct_shots_by_one_camera() -> None:
    moments = [
        (0, "A", 0.0),
        (1, "A", 0.4),
        (2, "A", 0.9),
        (3, "A", 5.0),
        (4, "A", 5.3),
        (5, "B", 0.2),
        (6, "C", 9.0),
        (7, "C", 9.0),  # a copy of one shot: the same capture time is not a burst
    ]
    assert sorted(bursts(moments)) == [[0, 1, 2], [3, 4]]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_shot_policy_only_takes_removals_back(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 10))
    paths = [Path(f"/p/f{k}.jpg") for k in range(n)]
    moments = {
        p: data.draw(
            st.none() | st.tuples(st.sampled_from(["A", "B"]), st.sampled_from([1.0, 2.0]))
        )
        for p in paths
    }

    def info(p: Path) -> FileInfo:
        return FileInfo(p.name, p, 1, 0, None, 8, 8, p.parent)

    plan = Plan(Path("/p"), "m", 0.9, "quality")
    plan.groups.append(
        PlannedGroup(info(paths[0]), tuple(Removal(info(p), 1.0, "pixels") for p in paths[1:]))
    )
    before = {r.file.absolute for r in plan.groups[0].remove}
    hold_back_other_shots(plan, moments.get)
    after = {r.file.absolute for g in plan.groups for r in g.remove}
    assert after <= before and {Path(h["path"]) for h in plan.held_back} == before - after
    kept = moments[paths[0]]
    for p in after:
        mine = moments[p]
        assert kept is None or mine is None or mine[0] != kept[0] or mine[1] == kept[1]


def test_burst_frames_are_never_removed_and_are_listed_with_the_sharpest(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    root = tmp_path / "burst"
    root.mkdir()
    base = photos["coffee"]
    shot(base, root / "IMG_0101.JPG", "2026:06:01 12:00:00", "10")
    moved = base.crop((6, 4, base.width, base.height)).resize(base.size)
    shot(
        ImageEnhance.Brightness(moved).enhance(1.08),
        root / "IMG_0102.JPG",
        "2026:06:01 12:00:00",
        "45",
    )
    shaken = base.filter(ImageFilter.GaussianBlur(3))
    shot(shaken, root / "IMG_0103.JPG", "2026:06:01 12:00:01", "05")
    # A true copy: the first frame re-saved, its capture time kept.
    shot(base, root / "IMG_0101 (1).JPG", "2026:06:01 12:00:00", "10", quality=80)
    result = runner.invoke(app, ["find", str(root), "--json", "--workers", "0", "--bursts"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    removed = {Path(p).name for g in document["groups"] for p in g["remove"]}
    assert removed == {"IMG_0101 (1).JPG"}
    held = {Path(h["path"]).name for h in document["held_back"]}
    # The shaken frame passes the proof (a blur of the first one), and is still another
    # shot: the policy keeps it.
    assert "IMG_0103.JPG" in held
    assert held <= {"IMG_0101.JPG", "IMG_0102.JPG", "IMG_0103.JPG"}
    assert all("a burst, not a copy" in h["reason"] for h in document["held_back"])
    [burst] = document["bursts"]
    assert burst["camera"] == "Canon EOS R5"
    names = {Path(f["path"]).name for f in burst["frames"]}
    assert {"IMG_0101.JPG", "IMG_0102.JPG", "IMG_0103.JPG"} <= names
    assert Path(burst["sharpest"]).name != "IMG_0103.JPG"  # the shaken frame
    listing = runner.invoke(app, ["find", str(root), "--workers", "0", "--bursts"])
    assert "bursts (1)" in listing.stdout and "sharpest" in listing.stdout


def test_remove_all_but_best_is_the_one_way_burst_frames_go(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """Three distinct frames a second apart: listed, never removed; with
    ``--bursts remove-all-but-best`` every frame but the sharpest goes, and undo brings
    them back."""
    root = (tmp_path / "burst").resolve()
    root.mkdir()
    base = photos["rocket"]
    shot(base, root / "IMG_0201.JPG", "2026:06:01 12:00:00", "10")
    shot(
        base.filter(ImageFilter.GaussianBlur(2)), root / "IMG_0202.JPG", "2026:06:01 12:00:00", "60"
    )
    shot(
        base.filter(ImageFilter.GaussianBlur(1.2)),
        root / "IMG_0203.JPG",
        "2026:06:01 12:00:01",
        "20",
    )
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    listed = runner.invoke(
        app,
        ["find", str(root), "--json", "--workers", "0", "--bursts", "--action", "delete", "--yes"],
    )
    assert listed.exit_code == 0, listed.stderr
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.suffix == ".JPG"} == before
    quarantine = tmp_path / "q"
    result = runner.invoke(
        app,
        [
            "find",
            str(root),
            "--json",
            "--workers",
            "0",
            "--bursts",
            "remove-all-but-best",
            "--action",
            "move",
            "--to",
            str(quarantine),
            "--yes",
        ],
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    [group] = document["groups"]
    assert Path(group["keep"]).name == "IMG_0201.JPG"  # the sharpest
    assert group["keep_reason"] == "the sharpest frame of its burst"
    assert {Path(p).name for p in group["remove"]} == {"IMG_0202.JPG", "IMG_0203.JPG"}
    assert {f["method"] for f in group["remove_files"]} == {"burst"}
    assert sorted(p.name for p in root.glob("*.JPG")) == ["IMG_0201.JPG"]
    undone = runner.invoke(app, ["undo", "--db", str(root / "image_database.db")])
    assert undone.exit_code == 0, undone.stderr
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.suffix == ".JPG"} == before


def test_a_burst_with_a_frame_in_a_duplicate_group_is_left_alone(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """The sharpest frame has a byte copy elsewhere: that is a duplicate group, and a burst
    touching a group of the plan waits for the next run (never two reasons to remove one
    picture's files at once)."""
    root = (tmp_path / "burst").resolve()
    root.mkdir()
    base = photos["rocket"]
    shot(base, root / "IMG_0201.JPG", "2026:06:01 12:00:00", "10")
    shot(
        base.filter(ImageFilter.GaussianBlur(1.2)),
        root / "IMG_0202.JPG",
        "2026:06:01 12:00:01",
        "20",
    )
    (root / "copy").mkdir()
    (root / "copy" / "IMG_0201.JPG").write_bytes((root / "IMG_0201.JPG").read_bytes())
    result = runner.invoke(
        app, ["find", str(root), "--json", "--workers", "0", "--bursts", "remove-all-but-best"]
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert all(f["method"] != "burst" for g in document["groups"] for f in g["remove_files"])
    [burst] = document["bursts"]
    assert burst["left"].startswith("left as it is: a frame of it is in a duplicate group")


def test_options_given_without_their_value_take_the_first_choice() -> None:
    from dedup_cli.cli.common import with_optional_values

    assert with_optional_values(["--bursts", "/photos"]) == ["--bursts", "list", "/photos"]
    assert with_optional_values(["/p", "--bursts"]) == ["/p", "--bursts", "list"]
    assert with_optional_values(["--bursts", "remove-all-but-best", "/p"]) == [
        "--bursts",
        "remove-all-but-best",
        "/p",
    ]
    assert with_optional_values(["--merge-metadata", "--yes"]) == [
        "--merge-metadata",
        "file",
        "--yes",
    ]
    assert with_optional_values(["--", "--bursts"]) == ["--", "--bursts"]  # a folder's name
    result = runner.invoke(app, ["find", "--bursts=sometimes", str(Path(__file__).parent)])
    assert (
        result.exit_code == 2
        and "--bursts must be one of list, remove-all-but-best" in result.stderr
    )


def test_remove_all_but_best_never_thins_shots_that_do_not_look_alike(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    """Review finding: a time-lapse (one shot a second of other scenes), or two guests'
    phones of one model, is a run of one camera's shots but not a burst to thin: only
    frames that look like the sharpest (the search's threshold) are removed."""
    root = (tmp_path / "timelapse").resolve()
    root.mkdir()
    for k, name in enumerate(("astronaut", "coffee", "rocket", "chelsea")):
        shot(photos[name], root / f"IMG_03{k}.JPG", f"2026:06:01 12:00:0{k}", "00")
    result = runner.invoke(
        app, ["find", str(root), "--json", "--workers", "0", "--bursts", "remove-all-but-best"]
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert len(document["bursts"]) == 1  # listed, as a run of one camera's shots
    assert document["groups"] == []  # and nothing removed
