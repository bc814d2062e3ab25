from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import encode, random_image
from dedup_cli.embed.pipeline import hash_folder
from dedup_cli.models import get_spec
from dedup_cli.models.base import Preprocessing
from dedup_cli.store import Store


class CountingModel:
    """A tiny deterministic embedder that counts images and can fail on a chosen batch."""

    name = "effnet"
    dimension = 8
    preprocessing = Preprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    default_threshold = 0.9

    def __init__(self, fail_on_batch: int | None = None) -> None:
        self.batches = 0
        self.images = 0
        self.fail_on_batch = fail_on_batch

    def embed_batch(self, images: torch.Tensor) -> np.ndarray:
        self.batches += 1
        if self.fail_on_batch is not None and self.batches == self.fail_on_batch:
            raise KeyboardInterrupt
        self.images += images.shape[0]
        x = images.float().reshape(images.shape[0], 3, 4, 4, 4, 4).mean(dim=(2, 3, 5))
        v = x.reshape(images.shape[0], -1)[:, :8] + 1.0
        return (v / v.norm(dim=1, keepdim=True)).numpy()


def make_folder(root: Path, count: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"img_{i:03d}.png").write_bytes(encode(random_image(i), "PNG"))


def run(root: Path, store: Store, model: CountingModel, batch_size: int = 4):  # type: ignore[no-untyped-def]
    return hash_folder(
        root,
        store,
        get_spec("effnet"),
        device=torch.device("cpu"),
        batch_size=batch_size,
        workers=0,
        model_factory=lambda: model,
    )


def embedding_count(db: Path) -> int:
    return sqlite3.connect(db).execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]


def test_rerun_on_unchanged_folder_embeds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 10)
    with Store(root / "image_database.db") as store:
        first = run(root, store, CountingModel())
        model = CountingModel()
        second = run(root, store, model)
    assert first.embedded == 10 and first.scanned == 10
    assert second.embedded == 0 and second.unchanged == 10 and model.batches == 0


def test_only_new_and_changed_files_are_embedded(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 6)
    with Store(root / "image_database.db") as store:
        run(root, store, CountingModel())
        (root / "new.png").write_bytes(encode(random_image(100), "PNG"))
        changed = root / "img_000.png"
        changed.write_bytes(encode(random_image(200), "PNG"))
        os.utime(changed, ns=(1, 1))
        model = CountingModel()
        report = run(root, store, model)
    assert model.images == 2 and report.embedded == 2 and report.unchanged == 5


def test_interrupted_hash_resumes_and_embeds_each_file_once(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 13)
    db = root / "image_database.db"
    with Store(db) as store:
        with pytest.raises(KeyboardInterrupt):
            run(root, store, CountingModel(fail_on_batch=3))
        saved = embedding_count(db)
        assert saved == 8  # two finished batches of four survive the interruption
        model = CountingModel()
        report = run(root, store, model)
    assert model.images == 13 - saved and report.embedded == 13 - saved
    assert embedding_count(db) == 13
    paths = (
        sqlite3.connect(db).execute("SELECT COUNT(DISTINCT file_id) FROM embeddings").fetchone()[0]
    )
    assert paths == 13


def test_bad_files_are_recorded_counted_and_retried_only_when_changed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 3)
    (root / "empty.jpg").write_bytes(b"")
    (root / "fake.png").write_text("<html>no</html>")
    (root / "cut.jpg").write_bytes(encode(random_image(9, (300, 200)))[:200])
    with Store(root / "image_database.db") as store:
        first = run(root, store, CountingModel())
        second = run(root, store, CountingModel())
        (root / "fake.png").write_bytes(encode(random_image(50), "PNG"))
        third = run(root, store, CountingModel())
    assert first.embedded == 3
    assert sorted(p for p, _ in first.failed) == ["cut.jpg", "empty.jpg", "fake.png"]
    assert second.failed == [] and second.known_bad == 3 and second.embedded == 0
    assert third.embedded == 1 and third.known_bad == 2
    errors = dict(
        sqlite3.connect(root / "image_database.db").execute(
            "SELECT path, error FROM files WHERE error IS NOT NULL"
        )
    )
    assert errors == {"empty.jpg": "empty file", "cut.jpg": errors["cut.jpg"]}


def test_worker_processes_give_the_same_vectors(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 6)
    results = []
    for workers in (0, 2):
        db = tmp_path / f"w{workers}.db"
        with Store(db) as store:
            hash_folder(
                root,
                store,
                get_spec("effnet"),
                device=torch.device("cpu"),
                batch_size=4,
                workers=workers,
                model_factory=CountingModel,
            )
            model_id = store.model_id("effnet")
            assert model_id is not None
            results.append(store.load_embeddings(model_id[0], model_id[1]))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize(
    ("cores", "device", "workers"),
    [
        (2, "cpu", 2),
        (64, "cpu", 8),  # the model on the CPU: more workers only take its cores
        (16, torch.device("cpu"), 8),
        (16, torch.device("cuda"), 15),  # beside a GPU decoding is the CPU's whole work
        (16, "cuda:1", 15),
        (1, torch.device("cuda"), 1),
        (128, torch.device("cuda"), 32),  # each worker holds photos in flight: bounded
    ],
)
def test_decode_workers_follow_where_the_model_runs(
    monkeypatch: pytest.MonkeyPatch, cores: int, device: object, workers: int
) -> None:
    from dedup_cli.embed import pipeline

    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: cores)
    assert pipeline.default_workers(device) == workers  # type: ignore[arg-type]
