"""Embedding on Ray Data: the driver's list of files to embed becomes a Dataset, decoded and
embedded by a pool of actors that each load the model once, and the file facts and vectors
stream back to the driver, which writes them batch by batch (``embed.pipeline``): the
single writer of the SQLite store, so incremental runs and resuming work as they do locally.

With ``export``, the actors' output is written as Parquet shards by the workers instead
(``embed.shards``), for collections whose vectors the driver should not hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dedup_cli.distributed.runtime import check_shared_storage, cluster_size, connect
from dedup_cli.embed.pipeline import DecodeDataset, EmbeddedBatch, collate
from dedup_cli.malloc_tuning import keep_freed_memory, one_arena_environment
from dedup_cli.media.scan import ScannedFile

if TYPE_CHECKING:
    from dedup_cli.models import ModelSpec
    from dedup_cli.models.base import EmbeddingModel

MISSING_ON_WORKER = "not found by the Ray worker that read it (is the share mounted there?)"
NOT_ASKED = "a Ray worker sent facts for a file this run did not ask about: not recorded"
OTHER_FILE_ON_WORKER = (
    "the Ray worker read another file at this path (its size or time differ from what this "
    "machine sees): not recorded"
)

# Files per block of the Dataset (each block goes to one actor whole): at least
# ``BLOCKS_PER_ACTOR`` blocks per actor where there are files enough, so the last blocks
# leave no actor idle for long; at most ``MAX_BATCHES_PER_BLOCK`` model batches, as Ray's
# cost per block is paid less often in larger ones (4,392 photos on 2 CPUs: 70.1 s with
# blocks of 2 batches, 63.1 s with 8; the local pipeline took 57.6 s).
BLOCKS_PER_ACTOR = 4
MAX_BATCHES_PER_BLOCK = 8


def block_files(files: int, actors: int, batch_size: int) -> int:
    """How many files each block of the Dataset holds: whole model batches."""
    share = -(-files // max(1, actors * BLOCKS_PER_ACTOR))
    batches = max(1, min(MAX_BATCHES_PER_BLOCK, -(-share // batch_size)))
    return batches * batch_size


@dataclass(frozen=True)
class ActorSettings:
    """What every actor of the pool needs to load the model."""

    spec: ModelSpec
    device: str
    weights: Path | None
    model_factory: Callable[[], EmbeddingModel] | None = None
    decode_threads: int = 1
    batch_size: int = 32  # images per model call; a call of the pool gets a whole block


class EmbedActor:
    """One actor of the pool: loads the model once, then decodes and embeds batch after
    batch. Decoding runs on ``decode_threads`` threads beside the model (PIL and OpenCV
    release the GIL), as the local pipeline's DataLoader workers do. The settings are a
    class attribute (``actor_class``), not constructor arguments: Ray keeps those in its
    object store, where a restarted actor may no longer find them (ray-project/ray#53727)."""

    settings: ActorSettings

    def __init__(self) -> None:
        from dedup_cli.models import load_model, resolve_device

        given = self.settings
        if given.device == "cpu":
            # As the local pipeline's model process: freed tensors stay in the heap.
            keep_freed_memory()
        self.model = (
            given.model_factory()
            if given.model_factory
            else load_model(given.spec, resolve_device(given.device), given.weights)
        )
        self.size = self.model.preprocessing.size
        self.threads = max(1, given.decode_threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        files = [
            ScannedFile(Path(root), path, int(size), int(mtime))
            for root, path, size, mtime in zip(
                batch["root"], batch["path"], batch["size"], batch["mtime_ns"]
            )
        ]
        dataset = DecodeDataset(files, self.size)
        if self.threads > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                items = list(pool.map(dataset.__getitem__, range(len(files))))
        else:
            items = [dataset[k] for k in range(len(files))]
        missing = [
            it["error"] is not None and not f.absolute.exists() for it, f in zip(items, files)
        ]
        pixels, items = collate(items)
        vectors = np.zeros((len(items), self.model.dimension), dtype=np.float32)
        has_vector = np.array([it["pixels"] is True for it in items], dtype=bool)
        if pixels is not None:
            step = self.settings.batch_size
            vectors[has_vector] = np.concatenate(
                [self.model.embed_batch(pixels[k : k + step]) for k in range(0, len(pixels), step)]
            )
        return rows_of(items, vectors, has_vector, np.array(missing, dtype=bool))


def actor_class(settings: ActorSettings) -> type[EmbedActor]:
    """An ``EmbedActor`` class carrying ``settings``."""
    return type("EmbedActor", (EmbedActor,), {"settings": settings})


def rows_of(
    items: Sequence[dict[str, Any]],
    vectors: np.ndarray,
    has_vector: np.ndarray,
    missing: np.ndarray,
) -> dict[str, np.ndarray]:
    """Decoded items as the columns of one Dataset batch. Columns hold no None (Arrow would
    make it NaN): a missing text is "", a missing number -1, and each blob has a flag, since
    an empty ``regions`` (looked, none found) is not a missing one (not looked for)."""

    def column(key: str, empty: Any) -> np.ndarray:
        values = np.empty(len(items), dtype=object)
        values[:] = [empty if it[key] is None else it[key] for it in items]
        return values

    def given(key: str) -> np.ndarray:
        return np.array([it[key] is not None for it in items], dtype=bool)

    return {
        "path": column("path", ""),
        "size": np.array([it["size"] for it in items], dtype=np.int64),
        "mtime_ns": np.array([it["mtime_ns"] for it in items], dtype=np.int64),
        "content_hash": column("hash", ""),
        "width": np.array([it["width"] or -1 for it in items], dtype=np.int64),
        "height": np.array([it["height"] or -1 for it in items], dtype=np.int64),
        "error": column("error", ""),
        "thumbnail": column("thumbnail", b""),
        "has_thumbnail": given("thumbnail"),
        "regions": column("regions", b""),
        "has_regions": given("regions"),
        "vector": vectors,
        "has_vector": has_vector,
        "missing": missing,
    }


def items_of(batch: dict[str, np.ndarray]) -> EmbeddedBatch:
    """A batch of the actors' output as the local pipeline's items and vectors by path."""
    items: list[dict[str, Any]] = []
    vectors: dict[str, np.ndarray] = {}
    for k in range(len(batch["path"])):
        path = str(batch["path"][k])
        items.append(
            {
                "path": path,
                "size": int(batch["size"][k]),
                "mtime_ns": int(batch["mtime_ns"][k]),
                "hash": str(batch["content_hash"][k]) or None,
                "width": int(batch["width"][k]) if batch["width"][k] >= 0 else None,
                "height": int(batch["height"][k]) if batch["height"][k] >= 0 else None,
                "error": str(batch["error"][k]) or None,
                "thumbnail": bytes(batch["thumbnail"][k]) if batch["has_thumbnail"][k] else None,
                "regions": bytes(batch["regions"][k]) if batch["has_regions"][k] else None,
                "missing": bool(batch["missing"][k]),
            }
        )
        if batch["has_vector"][k]:
            vectors[path] = np.asarray(batch["vector"][k], dtype=np.float32)
    return EmbeddedBatch(items, vectors, int(np.shape(batch["vector"])[1]))


def embedding_dataset(
    todo: Sequence[ScannedFile],
    spec: ModelSpec,
    *,
    device: str,
    weights: Path | None,
    batch_size: int,
    address: str | None,
    model_factory: Callable[[], EmbeddingModel] | None = None,
) -> Any:
    """The Dataset of decoded, embedded files: one actor per GPU where the cluster has GPUs
    (and ``device`` allows one), else one per CPU, each loading the model once."""
    ray = connect(address)
    check_shared_storage([f.absolute for f in todo])
    size = cluster_size()
    on_gpu = size.gpus > 0 and device in ("auto", "cuda")
    actors = size.gpus if on_gpu else max(1, size.cpus)
    per_block = block_files(len(todo), actors, batch_size)
    blocks = -(-len(todo) // per_block)
    dataset = ray.data.from_items(
        [
            {"root": str(f.root), "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns}
            for f in todo
        ],
        override_num_blocks=blocks,
    )
    # The decode threads share the actor's CPU with the model on a CPU cluster; on a GPU
    # node they take the CPUs the node has beside its GPUs.
    threads = max(1, size.cpus // max(1, size.gpus)) if on_gpu else 1
    settings = ActorSettings(
        spec, "cuda" if on_gpu else "cpu", weights, model_factory, threads, batch_size
    )
    return dataset.map_batches(
        actor_class(settings),
        # A whole block per call, run through the model ``batch_size`` at a time: Ray's
        # cost per call is paid once a block.
        batch_size=per_block,
        batch_format="numpy",
        # Ray Data's actors restart when they die and their batch runs again (its defaults:
        # max_restarts and max_task_retries -1); the driver writes each file once.
        compute=ray.data.ActorPoolStrategy(size=min(actors, blocks)),
        num_gpus=1 if on_gpu else 0,
        num_cpus=1 if not on_gpu else 0,
        # The model runs in Ray Data's thread, not the actor's main thread: one malloc arena
        # keeps its freed memory as the local model process does (4,392 photos on 2 CPUs:
        # 70-72 s without, 58.9 s with; the local pipeline took 58.8 s).
        runtime_env={"env_vars": one_arena_environment()} if not on_gpu else None,
    )


def embedded_batches(dataset: Any, todo: Sequence[ScannedFile]) -> Iterator[EmbeddedBatch]:
    """Items and vectors of ``embedding_dataset`` block by block as the actors finish them,
    for the driver to write (``embed.pipeline``). A file a worker could not find, or saw
    otherwise than this machine does, is marked ``not_recorded``: its facts would not be
    this file's."""
    where = {f.path: f.absolute for f in todo}
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        embedded = items_of(batch)
        for item in embedded.items:
            here = where.get(item["path"])
            item["not_recorded"] = NOT_ASKED if here is None else _held_back(item, here)
        yield embedded


def _held_back(item: dict[str, Any], here: Path) -> str | None:
    """Why a worker's item must not be written, or None: the worker could not find the
    file, or read one whose size or time is not the file's here (a worker's own folder at
    the same path, or a share out of sync): its facts and vector are not this file's."""
    if item["missing"]:
        return MISSING_ON_WORKER
    try:
        found = os.stat(here)
    except OSError:
        return None  # gone here since: recorded as the worker read it, rescanned next run
    if (found.st_size, found.st_mtime_ns) != (item["size"], item["mtime_ns"]):
        return OTHER_FILE_ON_WORKER
    return None


def export_shards(dataset: Any, *, root: Path, folder: Path, spec: ModelSpec) -> int:
    """Have the workers write ``embedding_dataset``'s rows as Parquet shards to ``folder``
    (``embed.shards``), for ``dedup import``; nothing passes through the driver. Returns
    the rows written."""
    from dedup_cli.embed.shards import as_table, write_manifest

    dataset.map_batches(as_table, batch_format="numpy").write_parquet(str(folder))
    return write_manifest(folder, root, spec.key, spec.preprocessing.to_json())
