"""Bad input, end to end: the real ``dedup`` command on folders of broken, odd and hostile files.

Every run must go on (exit 0, no traceback), report and count each unreadable file with a
short reason, skip and count what the docs say it skips, still find the duplicates among the
good files beside them, and never lose a file. One shared folder (the "zoo") holds most cases,
so the model is loaded once for all of them; the cases that need a hook inside the process
(a folder vanishing mid-scan, files changing between planning and acting) use CliRunner.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import encode, random_image

_BESIDE = Path(sys.executable).with_name("dedup")
DEDUP = str(_BESIDE) if _BESIDE.exists() else shutil.which("dedup")
SIZE = (96, 64)  # landscape, so a wrongly applied 90-degree EXIF rotation would show

# name -> how the reason starts; each must be listed under `unreadable` and never grouped.
UNREADABLE = {
    "truncated.jpg": "corrupt image",
    "empty.jpg": "empty file",
    "text.jpg": "not a readable image",
    "page.png": "not a readable image",  # an HTML page saved as .png
    "bomb.png": "image too large",  # IHDR claims 100000 x 100000
    "corrupt.avif": "corrupt image",  # valid container, garbage in the colour planes
}
# Odd but valid images: each has a byte copy "<stem> copy<ext>" and must be grouped with it.
DECODABLE = {
    "one.jpg": (1, 1),
    "one.png": (1, 1),
    "sixteen.png": SIZE,  # 16-bit grayscale
    "cmyk.jpg": SIZE,
    "palette.png": SIZE,  # palette with a transparent index
    "anim.gif": SIZE,
    "anim.webp": SIZE,
    "orient0.jpg": SIZE,  # bogus EXIF orientation values: ignored, not applied
    "orient9.jpg": SIZE,
    "orient255.jpg": SIZE,
    "photo.heic": SIZE,
    "photo.avif": SIZE,
}
SYMLINKS = ("broken-link.jpg", "loop.jpg", "sub/up")
NFC = unicodedata.normalize("NFC", "café.jpg")
NFD = unicodedata.normalize("NFD", "café.jpg")
NAME_PAIRS = [(NFC, NFD), ("with space.jpg", "new\nline.jpg"), ("-rf.jpg", "--help.jpg")]


def cli_env(state: Path) -> dict[str, str]:
    """The user's environment without dedup settings, with state kept in the test folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEDUP_")}
    env.update(
        DEDUP_STATE_DIR=str(state / "state"),
        XDG_DATA_HOME=str(state / "xdg"),
        COLUMNS="120",
        PYTHONIOENCODING="utf-8",
    )
    return env


def run_dedup(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    assert DEDUP, "the dedup script is not installed"
    return subprocess.run(
        [DEDUP, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=180,
        check=False,
    )


def went_on(result: subprocess.CompletedProcess[str]) -> None:
    """The run finished normally: exit 0 and no traceback."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def groups_of(document: dict[str, Any]) -> list[set[str]]:
    """Each planned group as the set of its relative paths."""
    return [
        {g["keep_file"]["relative_path"], *(r["relative_path"] for r in g["remove_files"])}
        for g in document["groups"]
    ]


def pictures(photos: dict[str, Image.Image]) -> Iterator[Image.Image]:
    """Distinct pictures at SIZE: the left and right halves of each sample photo, then
    random smooth ones."""
    for image in photos.values():
        w, h = image.size
        for box in ((0, 0, w // 2, h), (w - w // 2, 0, w, h)):
            yield image.crop(box).resize(SIZE, Image.Resampling.LANCZOS)
    seed = 1000
    while True:
        seed += 1
        yield random_image(seed, SIZE)


def png_bomb() -> bytes:
    """A tiny PNG whose header claims 100000 x 100000 pixels (with correct CRCs)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def with_orientation(image: Image.Image, value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


def can_open(path: Path) -> bool:
    try:
        path.open("rb").close()
    except PermissionError:
        return False
    return True


def copy_name(name: str) -> str:
    stem, ext = os.path.splitext(name)
    return f"{stem} copy{ext}"


def heif_codec(fmt: str) -> str | None:
    """Why ``fmt`` (HEIF or AVIF) cannot be written here, or None when it can."""
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        encode(Image.new("RGB", (16, 16)), fmt)
    except (ImportError, KeyError, OSError, RuntimeError, ValueError) as exc:
        return f"no {fmt} encoder on this machine ({type(exc).__name__}: {exc})"
    return None


@dataclass
class Zoo:
    """The shared folder and what each real run of the CLI said about it."""

    root: Path
    find: dict[str, Any]  # `dedup find --json -- -zoo`, the first run: everything embedded now
    hash: dict[str, Any]  # `dedup hash ABS --json` afterwards: skips and known bad files
    rerun: dict[str, Any]  # `dedup find ABS --json` again: nothing to embed
    human: subprocess.CompletedProcess[str]  # `dedup find ABS` with the human summary
    before: dict[str, bytes]  # every regular file's bytes before the runs
    locked_is_readable: bool  # True as root (or with CAP_DAC_OVERRIDE): modes do not apply
    missing_codecs: dict[str, str] = field(default_factory=dict)

    def groups(self, document: dict[str, Any] | None = None) -> list[set[str]]:
        return groups_of(self.find if document is None else document)

    def group_of(self, name: str) -> set[str]:
        return next((g for g in self.groups() if name in g), set())

    def unreadable(self) -> dict[str, str]:
        return {u["path"]: u["error"] for u in self.find["unreadable"]}

    def expected_unreadable(self) -> set[str]:
        names = {
            n for n in UNREADABLE if not (n.endswith(".avif") and "AVIF" in self.missing_codecs)
        }
        return names | (set() if self.locked_is_readable else {"locked.jpg"})


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Image.Image]) -> Zoo:
    base = tmp_path_factory.mktemp("bad-input")
    root = base / "-zoo"  # a root whose name starts with a dash
    root.mkdir()
    pics = pictures(photos)

    def put(name: str, data: bytes) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)

    def pair(name: str, data: bytes, copy: str | None = None) -> None:
        put(name, data)
        put(copy or copy_name(name), data)

    pair("good.jpg", encode(next(pics), quality=90))
    put("lonely.jpg", encode(next(pics), quality=90))

    # Unreadable files.
    jpeg = encode(next(pics).resize((320, 213)), quality=95)
    put("truncated.jpg", jpeg[: len(jpeg) // 2])
    put("empty.jpg", b"")
    put("text.jpg", b"shopping list: milk, eggs\n")
    put("page.png", b"<!doctype html><html><body><p>404 not found</p></body></html>\n")
    put("bomb.png", png_bomb())

    # Odd but valid images, each with a byte copy.
    missing = {fmt: why for fmt in ("HEIF", "AVIF") if (why := heif_codec(fmt))}
    pair("one.jpg", encode(Image.new("RGB", (1, 1), (200, 30, 40))))
    pair("one.png", encode(Image.new("RGB", (1, 1), (20, 160, 240)), "PNG"))
    gray16 = np.asarray(next(pics).convert("L"), dtype=np.uint16) * 257
    sixteen = Image.fromarray(gray16)
    assert sixteen.mode == "I;16"
    pair("sixteen.png", encode(sixteen, "PNG"))
    pair("cmyk.jpg", encode(next(pics).convert("CMYK"), quality=90))
    palette = next(pics).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    transparent = palette.getpixel((0, 0))  # an index in use: some pixels are see-through
    pair("palette.png", encode(palette, "PNG", transparency=transparent))
    frames = [next(pics), next(pics)]
    pair(
        "anim.gif",
        encode(
            frames[0].convert("P"), "GIF", save_all=True, append_images=[frames[1].convert("P")]
        ),
    )
    pair("anim.webp", encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]))
    for value in (0, 9, 255):
        pair(f"orient{value}.jpg", with_orientation(next(pics), value))
    if "HEIF" not in missing:
        pair("photo.heic", encode(next(pics), "HEIF", quality=90))
    if "AVIF" not in missing:
        pair("photo.avif", encode(next(pics), "AVIF", quality=90))
        avif = encode(next(pics), "AVIF", quality=90)
        payload = avif.index(b"mdat") + 12  # the container stays valid, the AV1 data is junk
        put("corrupt.avif", avif[:payload] + b"\xff" * (len(avif) - payload))

    # Odd names: each pair is two byte copies of one picture.
    for a, b in NAME_PAIRS:
        pair(a, encode(next(pics), quality=90), b)

    # Skipped: symlinks (broken, a loop, a folder loop), a named pipe (opening it would block).
    os.symlink(root / "missing.jpg", root / "broken-link.jpg")
    os.symlink("loop.jpg", root / "loop.jpg")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")
    os.mkfifo(root / "pipe.jpg")
    put("locked.jpg", encode(next(pics), quality=90))
    (root / "locked.jpg").chmod(0)
    locked_is_readable = can_open(root / "locked.jpg")

    before = {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and stat.S_ISREG(p.stat().st_mode)
        and (locked_is_readable or p.name != "locked.jpg")
    }
    env = cli_env(base)
    first = run_dedup(env, "find", "--json", "--workers", "0", "--", root.name, cwd=base)
    went_on(first)
    hashed = run_dedup(env, "hash", str(root), "--json", "--workers", "0")
    went_on(hashed)
    rerun = run_dedup(env, "find", str(root), "--json", "--workers", "0")
    went_on(rerun)
    human = run_dedup(env, "find", str(root), "--workers", "0")
    return Zoo(
        root=root,
        find=json.loads(first.stdout),
        hash=json.loads(hashed.stdout),
        rerun=json.loads(rerun.stdout),
        human=human,
        before=before,
        locked_is_readable=locked_is_readable,
        missing_codecs=missing,
    )


def test_the_run_goes_on_and_still_finds_the_good_copies(zoo: Zoo) -> None:
    assert zoo.group_of("good.jpg") == {"good.jpg", "good copy.jpg"}
    assert zoo.group_of("lonely.jpg") == set()
    stats = zoo.find["stats"]
    assert stats["unreadable"] == len(zoo.expected_unreadable()) == len(zoo.find["unreadable"])
    assert stats["files_compared"] == stats["files_scanned"] - stats["unreadable"]
    assert stats["files_embedded_now"] == stats["files_compared"]
    # Every planned removal was confirmed, and no keeper is planned for removal.
    removed = {r["path"]: r["method"] for g in zoo.find["groups"] for r in g["remove_files"]}
    assert set(removed.values()) <= {"exact", "pixels", "geometry"}
    assert not {g["keep"] for g in zoo.find["groups"]} & set(removed)


def test_no_file_is_lost_or_changed(zoo: Zoo) -> None:
    for relative, content in zoo.before.items():
        assert (zoo.root / relative).read_bytes() == content, relative


@pytest.mark.parametrize(("name", "reason"), sorted(UNREADABLE.items()))
def test_unreadable_file_is_reported_with_a_short_reason(zoo: Zoo, name: str, reason: str) -> None:
    if name.endswith(".avif") and "AVIF" in zoo.missing_codecs:
        pytest.skip(zoo.missing_codecs["AVIF"])
    error = zoo.unreadable()[name]
    assert error.startswith(reason), error
    assert len(error) <= 100 and "\n" not in error, error
    assert zoo.group_of(name) == set()


def test_an_image_claiming_100000_by_100000_pixels_is_refused_by_its_header(zoo: Zoo) -> None:
    assert (zoo.root / "bomb.png").stat().st_size < 200
    assert zoo.unreadable()["bomb.png"] == "image too large (over 150 megapixels)"


ANIMATIONS = ("anim.gif", "anim.webp")


@pytest.mark.parametrize("name", sorted(DECODABLE))
def test_odd_but_valid_image_is_embedded_and_grouped_with_its_copy(zoo: Zoo, name: str) -> None:
    fmt = {".heic": "HEIF", ".avif": "AVIF"}.get(os.path.splitext(name)[1])
    if fmt in zoo.missing_codecs:
        pytest.skip(zoo.missing_codecs[fmt])
    assert name not in zoo.unreadable()
    # Both animations start with the same photo (a GIF and a WebP of one picture): dedup
    # finds that conversion too since the proof tries more views, so they are one group.
    expected = {name, copy_name(name)}
    if name in ANIMATIONS:
        expected = {a for n in ANIMATIONS for a in (n, copy_name(n))}
    assert zoo.group_of(name) == expected
    group = next(
        g
        for g in zoo.find["groups"]
        if {f["relative_path"] for f in (g["keep_file"], *g["remove_files"])} & {name}
    )
    for f in (group["keep_file"], *group["remove_files"]):
        assert (f["width"], f["height"]) == DECODABLE[name]
    if name not in ANIMATIONS:
        assert group["remove_files"][0]["method"] == "exact"
    else:
        assert "exact" in {f["method"] for f in group["remove_files"]}


@pytest.mark.parametrize("name", SYMLINKS)
def test_symlink_is_skipped_and_counted_not_followed(zoo: Zoo, name: str) -> None:
    assert os.path.islink(zoo.root / name)
    assert zoo.hash["skipped_symlinks"] == len(SYMLINKS) and zoo.hash["scan_errors"] == []
    reported = {e["path"] for e in zoo.hash["scan_errors"]} | set(zoo.unreadable())
    assert name not in reported and not any(name in g for g in zoo.groups())
    assert not any(p.startswith("sub/up/") for g in zoo.groups() for p in g)


def test_named_pipe_is_skipped_without_blocking(zoo: Zoo) -> None:
    assert stat.S_ISFIFO((zoo.root / "pipe.jpg").lstat().st_mode)
    reported = {e["path"] for e in zoo.hash["scan_errors"]} | set(zoo.unreadable())
    assert "pipe.jpg" not in reported
    # Every regular file is scanned (locked.jpg too, even when it cannot be read), no more.
    unreadable_locked = 0 if zoo.locked_is_readable else 1
    assert zoo.find["stats"]["files_scanned"] == len(zoo.before) + unreadable_locked


def test_file_without_read_permission_is_reported(zoo: Zoo) -> None:
    if zoo.locked_is_readable:
        pytest.skip("file modes do not apply here (root or CAP_DAC_OVERRIDE): mode 000 is readable")
    assert zoo.unreadable()["locked.jpg"].startswith("cannot read")


@pytest.mark.parametrize(("a", "b"), NAME_PAIRS, ids=["nfc-nfd", "space-newline", "leading-dash"])
def test_odd_file_names_are_grouped_under_their_exact_names(zoo: Zoo, a: str, b: str) -> None:
    assert a != b and (zoo.root / a).is_file() and (zoo.root / b).is_file()
    assert zoo.group_of(a) == {a, b}
    for group in zoo.find["groups"]:
        for f in (group["keep_file"], *group["remove_files"]):
            if f["relative_path"] in (a, b):
                assert Path(f["path"]) == zoo.root.resolve() / f["relative_path"]
                assert Path(f["path"]).is_file()


def test_root_whose_name_starts_with_a_dash(zoo: Zoo) -> None:
    # The first run got `-- -zoo` (relative, after --), the others the absolute path.
    assert zoo.root.name.startswith("-")
    assert zoo.find["root"] == zoo.rerun["root"] == str(zoo.root.resolve())
    assert zoo.hash["root"] == str(zoo.root.resolve())


def test_rerun_counts_known_bad_files_without_reading_them_again(zoo: Zoo) -> None:
    bad = len(zoo.expected_unreadable())
    assert zoo.hash["known_bad"] == bad and zoo.hash["failed"] == [] and zoo.hash["embedded"] == 0
    assert zoo.rerun["stats"]["unreadable"] == bad
    assert zoo.rerun["stats"]["files_embedded_now"] == 0
    assert sorted(map(sorted, zoo.groups(zoo.rerun))) == sorted(map(sorted, zoo.groups()))


def test_rerun_lists_every_unreadable_file_it_counts(zoo: Zoo) -> None:
    assert len(zoo.rerun["unreadable"]) == zoo.rerun["stats"]["unreadable"]


def test_human_summary_survives_odd_names_and_bad_files(zoo: Zoo) -> None:
    went_on(zoo.human)
    assert "duplicate groups" in zoo.human.stdout  # results on stdout, diagnostics on stderr
    assert "--help.jpg" in zoo.human.stdout or "-rf.jpg" in zoo.human.stdout
    assert "duplicate groups" not in zoo.human.stderr


def small_library(
    root: Path, photos: dict[str, Image.Image], folders: list[str]
) -> dict[str, bytes]:
    """In each folder a picture and its byte copy (``a.jpg``, ``b.jpg``), distinct across
    folders; returns every file's bytes by relative path."""
    pics = pictures(photos)
    files: dict[str, bytes] = {}
    for folder in folders:
        data = encode(next(pics), quality=90)
        for name in ("a.jpg", "b.jpg"):
            path = root / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files[str(path.relative_to(root))] = data
    return files


def test_names_that_are_not_utf8_are_reported_and_left_alone(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    root = tmp_path / "latin1"
    files = small_library(root, photos, ["ok"])
    data = files["ok/a.jpg"]
    # Names written by an old Latin-1 system: b"caf\xe9.jpg" is not valid UTF-8 (Python
    # carries such bytes as surrogates, which SQLite and UTF-8 output refuse).
    bad_file = root / os.fsdecode(b"caf\xe9.jpg")
    bad_folder = root / os.fsdecode(b"d\xe9j\xe0")
    bad_file.write_bytes(data)
    bad_folder.mkdir()
    (bad_folder / "x.jpg").write_bytes(data)
    env = cli_env(tmp_path)
    found = run_dedup(env, "find", str(root), "--json", "--workers", "0")
    went_on(found)
    assert groups_of(json.loads(found.stdout)) == [{"ok/a.jpg", "ok/b.jpg"}]
    hashed = run_dedup(env, "hash", str(root), "--json", "--workers", "0")
    went_on(hashed)
    errors = {e["path"]: e["error"] for e in json.loads(hashed.stdout)["scan_errors"]}
    assert set(errors) == {"caf\\xe9.jpg", "d\\xe9j\\xe0"}
    assert all("UTF-8" in reason for reason in errors.values())
    assert bad_file.read_bytes() == data and (bad_folder / "x.jpg").read_bytes() == data


def test_markup_like_path_does_not_break_the_human_summary(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    root = tmp_path / "brackets"
    (root / "x[").mkdir(parents=True)
    data = encode(next(pictures(photos)), quality=90)
    for name in ("a].jpg", "b].jpg"):  # "x[/a].jpg": "[/a]" reads as a closing tag
        (root / "x[" / name).write_bytes(data)
    result = run_dedup(cli_env(tmp_path), "find", str(root), "--workers", "0")
    went_on(result)
    assert "duplicate groups" in result.stdout


runner = CliRunner()


def invoke_json(*args: str, expect: int = 0) -> dict[str, Any]:
    """The real app in this process (so hooks can be patched in), one JSON document out."""
    from dedup_cli.cli import app

    result = runner.invoke(app, [*args, "--json", "--workers", "0"])
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_folder_vanishing_mid_scan_and_files_vanishing_later(
    tmp_path: Path, photos: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_cli.embed.pipeline as pipeline

    root = tmp_path / "photos"
    files = small_library(root, photos, ["keep", "gone", "later"])
    (root / "late.jpg").write_bytes(files["keep/a.jpg"][::-1])
    gone = os.fspath(root.resolve() / "gone")
    real_scandir, real_scan = os.scandir, pipeline.scan
    vanished: list[str] = []

    def scandir(path: Any = ".") -> Any:
        """The folder was listed by its parent, and is deleted just before it is entered."""
        if isinstance(path, str | os.PathLike) and os.fspath(path) == gone and not vanished:
            vanished.append(gone)
            shutil.rmtree(gone)
        return real_scandir(path)

    def scan_then_delete(*args: Any, **kwargs: Any) -> Any:
        found = real_scan(*args, **kwargs)
        (root / "late.jpg").unlink()  # scanned, then deleted before it is read
        return found

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        patch.setattr(pipeline, "scan", scan_then_delete)
        report = invoke_json("hash", str(root))
    assert vanished and not os.path.exists(gone)
    assert [e["path"] for e in report["scan_errors"]] == ["gone"]
    assert report["failed"] == [
        {"path": "late.jpg", "error": "cannot read (No such file or directory)"}
    ]
    assert report["scanned"] == 5 and report["embedded"] == 4
    # A folder hashed, then removed before `find`: its database rows are never planned.
    shutil.rmtree(root / "later")
    document = invoke_json("find", str(root))
    assert groups_of(document) == [{"keep/a.jpg", "keep/b.jpg"}]
    assert "later/" not in json.dumps(document) and "gone/" not in json.dumps(document)
    assert document["stats"]["files_scanned"] == 2 and document["stats"]["unreadable"] == 0


def test_files_changed_between_planning_and_acting_are_skipped_never_moved(
    tmp_path: Path, photos: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_cli.cli.acting as acting

    root = tmp_path / "photos"
    quarantine = tmp_path / "quarantine"
    files = small_library(root, photos, ["deleted", "rewritten", "grown", "untouched"])
    real_review = acting.review_plan
    changed: dict[str, bytes] = {}

    def review_then_change(plan: Any, *args: Any, **kwargs: Any) -> Any:
        """After planning, before acting: delete one planned copy, rewrite two others."""
        reviewed = real_review(plan, *args, **kwargs)
        for group in reviewed.groups:
            planned = group.remove[0].file
            folder = planned.path.split("/")[0]
            if folder == "deleted":
                planned.absolute.unlink()
            elif folder == "rewritten":  # other bytes, same size and mtime: only the hash knows
                new = bytes(b ^ 0xFF for b in planned.absolute.read_bytes())
                planned.absolute.write_bytes(new)
                os.utime(planned.absolute, ns=(planned.mtime_ns, planned.mtime_ns))
                changed[planned.path] = new
            elif folder == "grown":
                new = planned.absolute.read_bytes() + b"appended"
                planned.absolute.write_bytes(new)
                changed[planned.path] = new
        return reviewed

    monkeypatch.setattr(acting, "review_plan", review_then_change)
    document = invoke_json(
        "find", str(root), "--action", "move", "--to", str(quarantine), "--yes", expect=3
    )  # skipped files: exit 3, done with exceptions
    action = document["action"]
    assert len(document["groups"]) == 4 and action["failed"] == []
    root_abs = root.resolve()
    done = [str(Path(d["path"]).relative_to(root_abs)) for d in action["done"]]
    assert [p.split("/")[0] for p in done] == ["untouched"]
    skipped = {
        str(Path(s["path"]).relative_to(root_abs)).split("/")[0]: s["reason"]
        for s in action["skipped"]
    }
    assert skipped.keys() == {"deleted", "rewritten", "grown"}
    assert "missing" in skipped["deleted"]
    assert skipped["rewritten"] == "file content changed since planning"
    assert skipped["grown"] == "file changed since planning"
    # Nothing changed was moved; the changed files stay in place with their new bytes.
    moved = sorted(str(p.relative_to(quarantine)) for p in quarantine.rglob("*") if p.is_file())
    assert moved == done and (quarantine / done[0]).read_bytes() == files[done[0]]
    for relative, content in changed.items():
        assert (root / relative).read_bytes() == content
    # Every keeper is still in place, untouched.
    for group in document["groups"]:
        keeper = group["keep_file"]["relative_path"]
        assert (root / keeper).read_bytes() == files[keeper]
