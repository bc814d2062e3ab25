"""Every long step reports progress: the proof of filename-clean and cross, and bench's
corpus, embedding and proof (the CLI draws these on stderr, only on a terminal)."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import encode
from dedup_cli.embed.pipeline import EmbedOptions
from dedup_cli.jobs.bench import build_corpus
from dedup_cli.jobs.cross import cross_find
from dedup_cli.jobs.names import clean_by_names
from dedup_cli.models import get_spec
from dedup_cli.store import Store
from test_bounded import Recorder


def test_filename_clean_reports_each_name_family(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "named"
    root.mkdir()
    for name in ("coffee", "rocket"):
        (root / f"{name}.jpg").write_bytes(encode(photos[name], quality=90))
        shutil.copy(root / f"{name}.jpg", root / f"{name} (1).jpg")
    recorder = Recorder()
    with Store(root / "image_database.db") as store:
        clean_by_names(root, store, get_spec("effnet"), progress=recorder)
    assert recorder.stages["proving: name families"] == 2
    assert recorder.advanced["proving: name families"] == 2


def test_cross_reports_its_proof_stage(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "coffee.jpg").write_bytes(encode(photos["coffee"], quality=90))
    (b / "coffee.jpg").write_bytes(encode(photos["coffee"], quality=60))
    recorder = Recorder()
    with Store(a / "image_database.db") as sa, Store(b / "image_database.db") as sb:
        cross_find(
            a,
            sa,
            b,
            sb,
            get_spec("effnet"),
            EmbedOptions(device="cpu", workers=0),
            progress=recorder,
        )
    assert any(stage.startswith("proving") for stage in recorder.stages)
    assert recorder.advanced.get("proving: thumbnails", 0) >= 1


def test_bench_reports_while_it_makes_its_corpus(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("coffee", "rocket", "chelsea"):
        (root / f"{name}.jpg").write_bytes(encode(photos[name], quality=90))
    out = tmp_path / "corpus"
    out.mkdir()
    recorder = Recorder()
    build_corpus(root, out, 2, progress=recorder)
    assert recorder.stages["bench: making copies"] == 2
    assert recorder.advanced["bench: making copies"] == 2
