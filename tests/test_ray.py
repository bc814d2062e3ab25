"""``--engine ray``: the same files, facts and vectors as the local pipeline, written once each
by the driver, whatever a worker does; one clear line where Ray is missing or a node cannot
see the files.

Ray runs here as a local cluster of 2 CPUs (started once for this module); the two-node
cluster runs in a subprocess of its own (``test_two_nodes_embed_and_find_like_local``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import encode, random_image
from dedup_cli.distributed.embedding import MISSING_ON_WORKER, OTHER_FILE_ON_WORKER
from dedup_cli.embed.pipeline import EmbedOptions, hash_folder
from dedup_cli.errors import UsageError
from dedup_cli.models import get_spec
from dedup_cli.models.base import Preprocessing
from dedup_cli.store import Store

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray of 2 CPUs for the module (starting one costs seconds)."""
    from ray import cloudpickle

    # The models below are defined in this test module, which Ray's workers cannot import:
    # ship them by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class DyingModel:
    """A tiny deterministic embedder whose actor dies (the whole worker process) on its
    second batch, once per marker file: Ray must restart it and run the batch again."""

    name = "effnet"
    dimension = 8
    preprocessing = Preprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    default_threshold = 0.9

    def __init__(self, marker: Path | None = None) -> None:
        self.marker = marker
        self.batches = 0

    def embed_batch(self, images: torch.Tensor) -> np.ndarray:
        self.batches += 1
        if self.marker is not None and self.batches == 2 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        x = images.float().reshape(images.shape[0], 3, 4, 4, 4, 4).mean(dim=(2, 3, 5))
        v = x.reshape(images.shape[0], -1)[:, :8] + 1.0
        return (v / v.norm(dim=1, keepdim=True)).numpy()


class TinyFactory:
    """A picklable model factory (a lambda of the test would not reach the workers)."""

    def __init__(self, marker: Path | None = None) -> None:
        self.marker = marker

    def __call__(self) -> DyingModel:
        return DyingModel(self.marker)


def make_folder(root: Path, count: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"img_{i:03d}.png").write_bytes(encode(random_image(i), "PNG"))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


def hashed(root: Path, store: Store, engine: str, factory: TinyFactory | None = None, **kw):  # type: ignore[no-untyped-def]
    return hash_folder(
        root,
        store,
        get_spec("effnet"),
        device="cpu",
        batch_size=4,
        workers=0,
        model_factory=factory or TinyFactory(),
        engine=engine,
        **kw,
    )


def stored(db: Path) -> dict[str, tuple[object, ...]]:
    """Each file's facts and vector, by path."""
    rows = sqlite3.connect(db).execute(
        "SELECT f.path, f.size, f.content_hash, f.width, f.height, f.error, f.thumbnail, "
        "f.regions, e.vector FROM files f LEFT JOIN embeddings e ON e.file_id = f.id"
    )
    return {row[0]: row[1:] for row in rows}


def test_ray_gives_the_local_facts_and_vectors(tmp_path: Path) -> None:
    for name in ("local", "ray"):
        make_folder(tmp_path / name, 21)
    with Store(tmp_path / "local.db") as a, Store(tmp_path / "ray.db") as b:
        local = hashed(tmp_path / "local", a, "local")
        remote = hashed(tmp_path / "ray", b, "ray")
    assert remote.embedded == local.embedded == 21
    assert [p for p, _ in remote.failed] == [p for p, _ in local.failed] == ["broken.jpg"]
    mine, theirs = stored(tmp_path / "local.db"), stored(tmp_path / "ray.db")
    assert mine.keys() == theirs.keys() and len(mine) == 22
    for path, facts in mine.items():
        assert facts[:-1] == theirs[path][:-1], path
        if facts[-1] is not None:
            a_vec = np.frombuffer(facts[-1], np.float32)  # type: ignore[arg-type]
            b_vec = np.frombuffer(theirs[path][-1], np.float32)  # type: ignore[arg-type]
            assert np.allclose(a_vec, b_vec, atol=1e-6), path


def test_a_worker_row_for_a_file_not_asked_about_is_not_recorded() -> None:
    from dedup_cli.distributed.embedding import NOT_ASKED, embedded_batches, rows_of
    from dedup_cli.media.scan import ScannedFile

    class Answering:
        # What a worker sent back: one row for a path this run never asked about.
        def iter_batches(self, **_options: object) -> Iterator[dict[str, np.ndarray]]:
            item = {
                "path": "not_asked.jpg",
                "size": 1,
                "mtime_ns": 1,
                "hash": "x",
                "width": 1,
                "height": 1,
                "error": None,
                "thumbnail": None,
                "regions": None,
                "pixels": True,
            }
            vectors = np.ones((1, 8), np.float32) / np.sqrt(8)
            yield rows_of([item], vectors, np.array([True]), np.array([False]))

    asked = [ScannedFile(Path("/nowhere"), "asked.jpg", 1, 1)]
    (batch,) = embedded_batches(Answering(), asked)
    assert batch.items[0]["not_recorded"] == NOT_ASKED


class ArenaNoting(TinyFactory):
    """A factory that notes, in the actor's own process, how many malloc arenas glibc may
    make there."""

    def __init__(self, note: Path) -> None:
        super().__init__()
        self.note = note

    def __call__(self) -> DyingModel:
        self.note.write_text(os.environ.get("MALLOC_ARENA_MAX", "unset"))
        return super().__call__()


def test_cpu_actors_keep_one_malloc_arena_for_the_model_thread(tmp_path: Path) -> None:
    # Ray Data runs the model in a thread of the actor; a thread's own arena does not keep
    # freed memory as the main heap does (the model ran 28 % slower per photo).
    make_folder(tmp_path / "photos", 5)
    note = tmp_path / "arena"
    with Store(tmp_path / "x.db") as store:
        assert hashed(tmp_path / "photos", store, "ray", ArenaNoting(note)).embedded == 5
    assert note.read_text() == "1"


def test_a_user_s_own_arena_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from dedup_cli.malloc_tuning import one_arena_environment

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert one_arena_environment() == {"MALLOC_ARENA_MAX": "4"}
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert one_arena_environment() == {"MALLOC_ARENA_MAX": "1"}


def test_a_rerun_on_ray_embeds_only_what_is_new(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 9)
    with Store(tmp_path / "x.db") as store:
        assert hashed(root, store, "ray").embedded == 9
        (root / "img_100.png").write_bytes(encode(random_image(100), "PNG"))
        again = hashed(root, store, "ray")
    assert again.embedded == 1 and again.unchanged == 9 and again.known_bad == 1


def test_a_worker_killed_mid_run_leaves_every_file_embedded_exactly_once(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 24)
    marker = tmp_path / "died"
    with Store(tmp_path / "x.db") as store:
        report = hashed(root, store, "ray", TinyFactory(marker))
        assert marker.exists()  # a worker process did die mid-run
        again = hashed(root, store, "ray")
    assert report.embedded == 24 and again.embedded == 0
    counts = sqlite3.connect(tmp_path / "x.db").execute(
        "SELECT COUNT(*), COUNT(DISTINCT file_id) FROM embeddings"
    )
    assert counts.fetchone() == (24, 24)


class StopAfter:
    """Progress that stops the driver (as Ctrl-C would) once ``count`` files are written."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.done = 0

    def start(self, total: int, description: str | None = None) -> None: ...

    def advance(self, count: int) -> None:
        self.done += count
        if self.done >= self.count:
            raise KeyboardInterrupt

    def finish(self) -> None: ...


def test_a_stopped_ray_run_keeps_its_written_batches_and_resumes(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_folder(root, 23)
    db = tmp_path / "x.db"
    with Store(db) as store:
        with pytest.raises(KeyboardInterrupt):
            hashed(root, store, "ray", progress=StopAfter(8))
        saved = sqlite3.connect(db).execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        assert 4 <= saved < 23
        again = hashed(root, store, "ray")
    assert again.embedded == 23 - saved
    total = sqlite3.connect(db).execute("SELECT COUNT(DISTINCT file_id) FROM embeddings")
    assert total.fetchone()[0] == 23


def test_a_node_that_cannot_see_the_files_is_one_clear_error(tmp_path: Path) -> None:
    from dedup_cli.distributed.runtime import check_shared_storage

    there = tmp_path / "there.jpg"
    there.write_bytes(b"12345")
    check_shared_storage([there])
    check_shared_storage([tmp_path / "gone for everyone.jpg"])  # nobody sees it: no node differs


def test_a_node_that_sees_other_files_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-ins for the driver's view: the workers (real Ray tasks) see the real disk."""
    from dedup_cli.distributed import runtime

    there = tmp_path / "there.jpg"
    there.write_bytes(b"12345")
    monkeypatch.setattr(runtime, "_seen_here", lambda paths: [(p, (5, 1)) for p in paths])
    with pytest.raises(runtime.SharedStorageError, match="sees another file"):
        runtime.check_shared_storage([there])
    here_only = tmp_path / "only-on-the-driver.jpg"
    monkeypatch.setattr(runtime, "_seen_here", lambda paths: [(p, (7, 1)) for p in paths])
    with pytest.raises(runtime.SharedStorageError, match="same path on every node"):
        runtime.check_shared_storage([here_only])
    assert runtime._visible([str(here_only)]) == [(str(here_only), None)]


def test_a_file_a_worker_cannot_find_is_reported_never_recorded_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose share is not mounted must not mark the driver's files unreadable
    (a known-bad file is never tried again until it changes)."""
    import dedup_cli.distributed.embedding as embedding

    root = tmp_path / "photos"
    make_folder(root, 6)
    gone = root / "img_003.png"
    # The shared-storage check passes (it ran before the file went); the worker then
    # finds it gone.
    monkeypatch.setattr(embedding, "check_shared_storage", lambda paths: gone.unlink())
    with Store(tmp_path / "x.db") as store:
        report = hashed(root, store, "ray")
    assert ("img_003.png", MISSING_ON_WORKER) in report.failed
    assert "img_003.png" not in stored(tmp_path / "x.db")


def test_a_file_a_worker_read_otherwise_than_here_is_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's own folder at the same path, or a share out of sync: the facts and vector
    it sends are not of this machine's file, so they are not written (the next run tries
    again). Simulated by changing the file here after the worker read it."""
    import dedup_cli.distributed.embedding as embedding

    root = tmp_path / "photos"
    make_folder(root, 6)
    other = root / "img_002.png"
    original = embedding.items_of

    def then_changed(batch: dict[str, np.ndarray]) -> object:
        if other.stat().st_size < 10_000_000:
            other.write_bytes(other.read_bytes() + b"changed here")
        return original(batch)

    monkeypatch.setattr(embedding, "items_of", then_changed)
    with Store(tmp_path / "x.db") as store:
        report = hashed(root, store, "ray")
        assert ("img_002.png", OTHER_FILE_ON_WORKER) in report.failed
        assert "img_002.png" not in stored(tmp_path / "x.db")
        monkeypatch.setattr(embedding, "items_of", original)
        again = hashed(root, store, "ray")
    assert again.embedded == 1 and "img_002.png" in stored(tmp_path / "x.db")


def test_without_ray_the_engine_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dedup_cli.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(app, ["hash", ".", "--engine", "ray"])
    assert result.exit_code == 2
    assert "pip install 'dedup-cli[ray]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def plan_groups(result) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The planned groups by relative path: keeper first, then the removals."""
    return sorted([g.keep.path, *sorted(r.file.path for r in g.remove)] for g in result.plan.groups)


def test_find_on_ray_plans_the_local_groups(tmp_path: Path, library: Path) -> None:
    import shutil

    from dedup_cli.jobs.find import find_duplicates

    other = tmp_path / "copy"
    shutil.copytree(library, other)
    spec = get_spec("effnet")
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        local = find_duplicates(library, a, spec, EmbedOptions(device="cpu"))
        remote = find_duplicates(other, b, spec, EmbedOptions(device="cpu", engine="ray"))
    assert remote.hashing.embedded == local.hashing.embedded > 0
    assert plan_groups(remote) == plan_groups(local) and len(plan_groups(local)) >= 3
    assert remote.proofs == local.proofs and remote.confirmed_by == local.confirmed_by


def test_cross_on_ray_plans_the_local_groups(tmp_path: Path, library: Path) -> None:
    import shutil

    from dedup_cli.jobs.cross import cross_find

    spec = get_spec("effnet")
    plans = []
    for engine in ("local", "ray"):
        a, b = tmp_path / engine / "a", tmp_path / engine / "b"
        shutil.copytree(library, a)
        b.mkdir()
        for name in ("trip", "camera.png"):  # B holds copies of some of A's photos
            shutil.move(a / name, b / name)
        with (
            Store(tmp_path / engine / "a.db") as store_a,
            Store(tmp_path / engine / "b.db") as store_b,
        ):
            result = cross_find(
                a, store_a, b, store_b, spec, EmbedOptions(device="cpu", engine=engine)
            )
        plans.append(
            sorted(
                [g.keep.path, *sorted(r.file.path for r in g.remove)] for g in result.plan.groups
            )
        )
    assert plans[1] == plans[0] and len(plans[0]) >= 2


def clustered(n: int, dim: int, spread: float, seed: int = 0) -> np.ndarray:
    """Unit rows: a quarter of originals, a quarter of their copies (noise ``spread``), the
    rest unrelated; all alike where ``spread`` is large (a dense folder)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n // 4, dim)).astype(np.float32)
    copies = base + spread * rng.standard_normal(base.shape).astype(np.float32)
    rest = rng.standard_normal((n - 2 * len(base), dim)).astype(np.float32)
    rows = np.concatenate([base, copies, rest])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


@pytest.mark.parametrize("neighbours", [None, 4])
def test_the_cell_join_on_ray_finds_the_local_pairs(neighbours: int | None) -> None:
    from dedup_cli.distributed.search import ray_ann_pairs
    from dedup_cli.search.cells import ann_pairs

    # 6,000 rows: 309 cells in 8 groups; and a dense region (a shared direction) where
    # rows have more than ``neighbours`` candidates each.
    rows = clustered(6000, 32, 0.2)
    rows[:600] += 2.0 * rows[0]
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    local = ann_pairs(rows, 0.8, neighbours=neighbours)
    remote = ray_ann_pairs(rows, 0.8, neighbours=neighbours)
    assert len(local) > 1500
    mine = set(zip(local.left.tolist(), local.right.tolist()))
    theirs = set(zip(remote.left.tolist(), remote.right.tolist()))
    assert theirs == mine
    assert np.allclose(np.sort(remote.similarity), np.sort(local.similarity))


def test_work_groups_balance_the_join() -> None:
    from dedup_cli.distributed.search import work_groups

    cells = np.repeat(np.arange(10), [1000, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    groups = work_groups(cells, cells, 10, 4)
    assert groups[0] == 0 and set(groups[1:].tolist()) != {0}  # the big cell stands alone
    assert np.all(np.diff(groups) >= 0) and groups.max() <= 3


def test_checks_on_ray_give_the_local_answers(tmp_path: Path, library: Path) -> None:
    from dedup_cli.confirm.cascade import ALIGNED, KEYPOINTS, TURNED, Check, local_checks
    from dedup_cli.confirm.geometry import PictureCache
    from dedup_cli.distributed.proof import ray_checks

    a, b = str(library / "rocket.jpg"), str(library / "trip" / "rocket_crop.png")
    c = str(library / "coffee.jpg")
    checks = [
        Check(KEYPOINTS, a, b),
        Check(ALIGNED, a, b),
        Check(KEYPOINTS, a, c),
        Check(TURNED, a, c, 3),
        Check(KEYPOINTS, a, str(library / "broken.jpg")),
    ] * 3
    here = list(local_checks(PictureCache())(checks))
    there = list(ray_checks()(checks))
    assert there == here
    assert here[0] is not None and here[0].is_copy and here[2] is None and here[4] is None


def test_export_then_import_fills_the_database_as_hash_does(tmp_path: Path) -> None:
    from dedup_cli.embed.shards import import_shards

    for name in ("local", "exported"):
        make_folder(tmp_path / name, 11)
    shards = tmp_path / "shards"
    with Store(tmp_path / "local.db") as a, Store(tmp_path / "exported.db") as b:
        hashed(tmp_path / "local", a, "local")
        report = hashed(tmp_path / "exported", b, "ray", export=shards)
        assert report.exported == 12 and report.embedded == 0
        assert stored(tmp_path / "exported.db") == {}  # the workers wrote shards, not the db
        imported = import_shards(shards, b)
        assert imported.imported == 12 and not imported.damaged
        again = import_shards(shards, b)
        assert again.imported == 0 and again.unchanged == 12
        rerun = hashed(tmp_path / "exported", b, "local")
    assert rerun.embedded == 0 and rerun.unchanged == 11 and rerun.known_bad == 1
    mine, theirs = stored(tmp_path / "local.db"), stored(tmp_path / "exported.db")
    assert mine.keys() == theirs.keys()
    for path, facts in mine.items():
        assert facts[:-1] == theirs[path][:-1], path
        if facts[-1] is not None:
            a_vec = np.frombuffer(facts[-1], np.float32)  # type: ignore[arg-type]
            assert np.allclose(a_vec, np.frombuffer(theirs[path][-1], np.float32)), path  # type: ignore[arg-type]


def test_import_refuses_rows_that_lie_and_leaves_changed_files_to_hash(tmp_path: Path) -> None:
    """Shards come from elsewhere: a path out of the root, a vector of the wrong length or
    not finite, a fact of the wrong type are refused; a file changed since is left alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup_cli.embed.shards import import_shards

    root = tmp_path / "photos"
    make_folder(root, 21)
    (root / "elsewhere").mkdir()
    (root / "through").symlink_to(root / "elsewhere")
    shards = tmp_path / "shards"
    with Store(tmp_path / "x.db") as store:
        hashed(root, store, "ray", export=shards)
        parts = sorted(shards.glob("*.parquet"))
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        for part in parts:
            part.unlink()
        rows = sorted(table.to_pylist(), key=lambda row: str(row["path"]))
        assert rows[0]["path"] == "broken.jpg"
        rows = rows[1:]  # the photos, each with a vector
        rows[0]["path"] = "../outside.png"
        rows[1]["vector"] = [*rows[1]["vector"][:-1], float("nan")]
        rows[2]["width"] = "wide"
        rows[3]["path"] = "/etc/passwd"
        changed = root / rows[4]["path"]
        changed.write_bytes(changed.read_bytes() + b"more")
        # Spellings the scan never writes: a second row for a file it knows.
        rows[5]["path"] = "./" + rows[5]["path"]
        rows[6]["path"] = rows[6]["path"] + "/"
        # A vector too long (it would outrank true neighbours), one beyond float32 (the
        # shard's float32 column holds it as infinite).
        rows[7]["vector"] = [v * 1e6 for v in rows[7]["vector"]]
        rows[8]["vector"] = [1e39] + [0.0] * (len(rows[8]["vector"]) - 1)
        rows[9]["width"] = True
        rows[10]["height"] = 1 << 40
        # A folder on the way that is a link to another.
        (root / rows[11]["path"]).rename(root / "elsewhere" / rows[11]["path"])
        rows[11]["path"] = "through/" + rows[11]["path"]
        # A column of the wrong type can only come as a shard of its own.
        pq.write_table(pa.Table.from_pylist(rows[2:3]), shards / "lying.parquet")
        pq.write_table(pa.Table.from_pylist(rows[9:10]), shards / "boolean.parquet")
        kept = rows[:2] + rows[3:9] + rows[10:]
        pq.write_table(pa.Table.from_pylist(kept, schema=table.schema), parts[0])
        report = import_shards(shards, store)
        paths = set(stored(tmp_path / "x.db"))
    refused = {"../outside.png", "/etc/passwd"} | {
        rows[k]["path"] for k in (1, 2, 5, 6, 7, 8, 9, 10, 11)
    }
    assert {p for p, _ in report.damaged} == refused
    assert report.changed == 1 and report.imported == 9
    assert not refused & paths and rows[4]["path"] not in paths
    assert not (tmp_path / "outside.png").exists()
    reasons = dict(report.damaged)
    assert reasons[rows[7]["path"]] == "a vector whose length is not 1"
    assert reasons[rows[11]["path"]] == "a path through a symbolic link"


def test_a_shard_that_claims_two_photos_share_bytes_removes_nothing(
    tmp_path: Path, library: Path
) -> None:
    """An imported content hash is never the word on "same bytes": a shard that gives a
    photo another photo's hash must not get it planned as an exact copy."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from dedup_cli.embed.shards import import_shards
    from dedup_cli.jobs.find import find_duplicates

    root = tmp_path / "photos"
    root.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(library / name, root / name)
    shards = tmp_path / "shards"
    spec = get_spec("effnet")
    with Store(tmp_path / "x.db") as store:
        hash_folder(root, store, spec, device="cpu", engine="ray", export=shards)
        parts = sorted(shards.glob("*.parquet"))
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        for part in parts:
            part.unlink()
        rows = table.to_pylist()
        claimed = next(r["content_hash"] for r in rows if r["path"] == "astronaut.jpg")
        for row in rows:
            if row["path"] == "coffee.jpg":
                row["content_hash"] = claimed
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), parts[0])
        assert import_shards(shards, store).imported == 3
        result = find_duplicates(root, store, spec, EmbedOptions(device="cpu"))
    assert result.plan.groups == []


def test_names_with_control_characters_or_255_bytes_travel_through_ray_and_shards(
    tmp_path: Path,
) -> None:
    from dedup_cli.embed.shards import import_shards

    root = tmp_path / "photos"
    make_folder(root, 2)
    odd = ["ctl\x01\x1b[31mname.png", "é" * 125 + "x.png"]  # the second is 255 bytes
    for k, name in enumerate(odd):
        (root / name).write_bytes(encode(random_image(50 + k), "PNG"))
    assert len(odd[1].encode()) == 255
    with Store(tmp_path / "streamed.db") as streamed:
        report = hashed(root, streamed, "ray")
    assert report.embedded == 4 and set(odd) <= set(stored(tmp_path / "streamed.db"))
    with Store(tmp_path / "imported.db") as imported:
        hashed(root, imported, "ray", export=tmp_path / "shards")
        assert import_shards(tmp_path / "shards", imported).imported == 5
    assert stored(tmp_path / "imported.db") == stored(tmp_path / "streamed.db")


def test_export_refuses_a_folder_in_use_and_import_one_without_manifest(tmp_path: Path) -> None:
    from dedup_cli.embed.shards import import_shards

    root = tmp_path / "photos"
    make_folder(root, 3)
    used = tmp_path / "used"
    used.mkdir()
    (used / "part-0.parquet").write_bytes(b"PAR1")
    with Store(tmp_path / "x.db") as store:
        with pytest.raises(UsageError, match="not empty"):
            hashed(root, store, "ray", export=used)
        with pytest.raises(UsageError, match="not a finished export"):
            import_shards(used, store)
        with pytest.raises(UsageError, match="needs --engine ray"):
            hashed(root, store, "local", export=tmp_path / "new")


TWO_NODES = """
import json, os, sys, time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from dedup_cli.embed.pipeline import EmbedOptions, hash_folder
from dedup_cli.jobs.find import find_duplicates
from dedup_cli.models import get_spec, load_model
from dedup_cli.store import Store

spec = get_spec("effnet")


class NodeNoting:
    # The real model, noting in a folder which node embedded each batch.
    def __init__(self, notes):
        import torch

        self.model = load_model(spec, torch.device("cpu"))
        self.dimension, self.preprocessing = self.model.dimension, self.model.preprocessing
        self.notes = notes

    def embed_batch(self, images):
        # A second per batch: the actor that is ready first cannot take every block
        # before the other node's actor has loaded its model.
        time.sleep(1.0)
        node = ray.get_runtime_context().get_node_id()
        (Path(self.notes) / f"{node}-{os.getpid()}-{id(images)}").write_text("")
        return self.model.embed_batch(images)


def groups(result):
    return sorted(
        [g.keep.path, *sorted(r.file.path for r in g.remove)] for g in result.plan.groups
    )


here, there, notes = (Path(p) for p in sys.argv[1:4])
local = find_duplicates(here, Store(here / "x.db"), spec, EmbedOptions(device="cpu"))
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
store = Store(there / "x.db")
report = hash_folder(
    there, store, spec, device="cpu", batch_size=2, engine="ray",
    model_factory=lambda: NodeNoting(notes),
)
remote = find_duplicates(there, store, spec, EmbedOptions(device="cpu", engine="ray"))
used = sorted({name.split("-")[0] for name in os.listdir(notes)})
print(json.dumps({
    "nodes": sorted(nodes), "used": used, "embedded": report.embedded,
    "local": groups(local), "remote": groups(remote),
    "local_proofs": local.proofs, "remote_proofs": remote.proofs,
}))
ray.shutdown()
cluster.shutdown()
"""


def test_two_nodes_embed_and_find_like_local(tmp_path: Path, library: Path) -> None:
    """Nothing assumes one node: a cluster of two (1 CPU each, so the two actors of the
    pool sit on different nodes) embeds on both and plans the local groups."""
    import json
    import shutil

    here, there, notes = tmp_path / "here", tmp_path / "there", tmp_path / "notes"
    shutil.copytree(library, here)
    shutil.copytree(library, there)
    notes.mkdir()
    script = tmp_path / "two_nodes.py"
    script.write_text(TWO_NODES)
    env = {**os.environ, "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, str(script), str(here), str(there), str(notes)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(answer["nodes"]) == 2
    assert answer["used"] == answer["nodes"]  # both nodes embedded
    assert answer["embedded"] == 9
    assert answer["remote"] == answer["local"] and len(answer["local"]) >= 3
    assert answer["remote_proofs"] == answer["local_proofs"]


ONE_GPU = """
import json, os, sys
from pathlib import Path

import numpy as np
import ray

from dedup_cli.embed.pipeline import hash_folder
from dedup_cli.models import get_spec
from dedup_cli.models.base import Preprocessing
from dedup_cli.store import Store


class GpuNoting:
    # Notes, in the actor's process, the GPUs Ray gave it and its malloc arena setting.
    name, dimension, default_threshold = "effnet", 8, 0.9
    preprocessing = Preprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def __init__(self, notes):
        gpus = ray.get_runtime_context().get_accelerator_ids()["GPU"]
        arena = os.environ.get("MALLOC_ARENA_MAX", "unset")
        (Path(notes) / f"{os.getpid()}").write_text(json.dumps([gpus, arena]))

    def embed_batch(self, images):
        v = images.float().reshape(images.shape[0], -1)[:, :8] + 1.0
        return (v / v.norm(dim=1, keepdim=True)).numpy()


root, notes = Path(sys.argv[1]), sys.argv[2]
# A GPU as Ray counts it: the pool's shape is tested; the model here needs none.
ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
with Store(root / "x.db") as store:
    report = hash_folder(
        root, store, get_spec("effnet"), device="auto", batch_size=2, engine="ray",
        model_factory=lambda: GpuNoting(notes),
    )
actors = [json.loads(p.read_text()) for p in Path(notes).iterdir()]
print(json.dumps({"embedded": report.embedded, "actors": actors}))
ray.shutdown()
"""


def test_a_cluster_with_gpus_gets_one_actor_per_gpu(tmp_path: Path) -> None:
    """Where the cluster has GPUs, one actor per GPU holds one (``num_gpus=1``); the CPU
    actors' one-arena setting is not forced on it (its model runs on the device)."""
    import json

    root, notes = tmp_path / "photos", tmp_path / "notes"
    make_folder(root, 7)
    notes.mkdir()
    script = tmp_path / "one_gpu.py"
    script.write_text(ONE_GPU)
    done = subprocess.run(
        [sys.executable, str(script), str(root), str(notes)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}, "RAY_ADDRESS": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["embedded"] == 7
    assert len(answer["actors"]) == 1
    ((gpus, arena),) = answer["actors"]
    assert len(gpus) == 1 and arena == "unset"
