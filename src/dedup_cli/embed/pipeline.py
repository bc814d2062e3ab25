"""scan -> decode -> embed -> store, batched and resumable.

Decoding runs in DataLoader worker processes; the model runs in the main process; each batch
is committed on its own, so an interrupted run loses at most the batch in flight and the next
run picks up where it stopped. A rerun on an unchanged folder costs a stat and a dictionary
lookup per file and never loads the model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedup_cli.core.progress import Progress
from dedup_cli.errors import UsageError
from dedup_cli.malloc_tuning import default_malloc, keep_freed_memory
from dedup_cli.media.decode import ImageDecodeError, content_hash, decode, read_file
from dedup_cli.media.raw import is_raw, raw_preview
from dedup_cli.media.regions import may_hold_pictures
from dedup_cli.media.scan import ScannedFile, ScanResult, scan
from dedup_cli.models import ModelSpec, load_model, resolve_device
from dedup_cli.store import Store
from dedup_cli.store.database import FileFacts, FileState

if TYPE_CHECKING:
    import torch

    from dedup_cli.models.base import EmbeddingModel


# The counts of a ``HashReport`` that add up across folders.
COUNTED = (
    "scanned",
    "unchanged",
    "embedded",
    "known_bad",
    "skipped_symlinks",
    "skipped_hidden",
    "skipped_excluded",
    "regions_completed",
    "seconds",
)


@dataclass
class HashReport:
    """What a ``hash`` run did, for the human summary and the JSON output."""

    root: str
    database: str
    model: str
    device: str
    scanned: int = 0
    unchanged: int = 0
    embedded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    known_bad: int = 0
    skipped_symlinks: int = 0
    skipped_hidden: int = 0
    skipped_excluded: int = 0
    scan_errors: list[tuple[str, str]] = field(default_factory=list)
    # Files hashed by an older version, now looked at for pictures inside them.
    regions_completed: int = 0
    # --export: the shards' folder and the rows the workers wrote there (none in the store)
    export: str | None = None
    exported: int = 0
    seconds: float = 0.0

    @classmethod
    def merged(cls, reports: Sequence[HashReport]) -> HashReport:
        """The reports of several folders hashed in one run (``find A B``) as one."""
        if len(reports) == 1:
            return reports[0]
        first = reports[0]
        total = cls(
            root=", ".join(r.root for r in reports),
            database=", ".join(r.database for r in reports),
            model=first.model,
            device=first.device,
        )
        for report in reports:
            for name in COUNTED:
                setattr(total, name, getattr(total, name) + getattr(report, name))
            # Relative paths may repeat across folders: name each failure in full.
            total.failed += [(str(Path(report.root) / p), e) for p, e in report.failed]
            total.scan_errors += [(str(Path(report.root) / p), e) for p, e in report.scan_errors]
        return total

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "database": self.database,
            "model": self.model,
            "device": self.device,
            "scanned": self.scanned,
            "unchanged": self.unchanged,
            "embedded": self.embedded,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "known_bad": self.known_bad,
            "skipped_symlinks": self.skipped_symlinks,
            "skipped_hidden": self.skipped_hidden,
            "skipped_excluded": self.skipped_excluded,
            "scan_errors": [{"path": p, "error": e} for p, e in self.scan_errors],
            "regions_completed": self.regions_completed,
            "export": self.export,
            "exported": self.exported,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


def needs_work(file: ScannedFile, state: FileState | None) -> bool:
    """New, changed (size or mtime), or never embedded with this model and not known bad."""
    if state is None or state.size != file.size or state.mtime_ns != file.mtime_ns:
        return True
    return state.error is None and not state.has_embedding


class DecodeDataset:
    """Map-style dataset: one file -> pixels and facts; errors become records, not raises."""

    def __init__(self, files: Sequence[ScannedFile], size: int) -> None:
        self.files = files
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        file = self.files[index]
        item: dict[str, Any] = {
            "path": file.path,
            "size": file.size,
            "mtime_ns": file.mtime_ns,
            "hash": None,
            "error": None,
            "pixels": None,
            "width": None,
            "height": None,
            "thumbnail": None,
            "regions": None,
        }
        try:
            data, item["size"], item["mtime_ns"] = read_file(file.absolute)
        except OSError as exc:
            item["error"] = f"cannot read ({exc.strerror or exc})"
            return item
        item["hash"] = content_hash(data)
        try:
            # A RAW is embedded from the camera's own JPEG inside it (``media.raw``); its
            # content hash is of the whole file.
            picture = raw_preview(data) if is_raw(file.absolute) else data
            decoded = decode(picture, self.size)
        except ImageDecodeError as exc:
            item["error"] = str(exc)
            return item
        except MemoryError:
            item["error"] = "image too large (out of memory)"
            return item
        item.update(
            pixels=decoded.pixels,
            width=decoded.width,
            height=decoded.height,
            thumbnail=decoded.thumbnail,
            regions=decoded.regions,
        )
        return item


def collate(items: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """Stack the decoded pixels of a batch into one uint8 NCHW tensor (None if none decoded)."""
    import numpy as np
    import torch

    good = [it for it in items if it["pixels"] is not None]
    if not good:
        return None, items
    stacked = torch.from_numpy(np.stack([it["pixels"] for it in good])).permute(0, 3, 1, 2)
    for it in good:
        it["pixels"] = True  # the array now lives in the tensor; don't ship it twice
    return stacked.contiguous(), items


def _worker_init(_worker_id: int) -> None:
    """Decode workers: one thread each, glibc's default allocator, and a lower priority.

    On small machines the model in the main process is the bottleneck for small photos, so
    decoding takes the CPU the model leaves (+11% at 0.5 MP on 2 cores; for large photos the
    model mostly waits anyway).
    """
    import torch

    torch.set_num_threads(1)
    default_malloc()
    try:
        os.nice(10)
    except OSError:
        pass


# Decode workers when the model runs on the CPU: every core up to this many (on small
# machines the model waits on decode; on large ones more workers only take its cores).
MAX_CPU_DECODE_WORKERS = 8
# Decode workers beside a GPU: decoding is then the CPU's whole work (an H200 node of 16
# cores hashed 616 photos/s with 8 workers, 1,299 with 15; the model alone ran 11,439).
# Each worker holds its photos in flight, so their number stays bounded on very large nodes.
MAX_GPU_DECODE_WORKERS = 32


def default_workers(device: torch.device | str | None = None) -> int:
    """Decode workers for a model on ``device``: with the model on the CPU, the cores up to
    ``MAX_CPU_DECODE_WORKERS``; beside a GPU, every core but the one feeding it."""
    cores = os.cpu_count() or 1
    if device is not None and str(device).startswith("cuda"):
        return max(1, min(MAX_GPU_DECODE_WORKERS, cores - 1))
    return max(1, min(MAX_CPU_DECODE_WORKERS, cores))


def hash_folder(
    root: Path,
    store: Store,
    spec: ModelSpec,
    *,
    device: torch.device | str,
    weights: Path | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    include_hidden: bool = False,
    exclude: tuple[str, ...] = (),
    progress: Progress | None = None,
    model_factory: Callable[[], EmbeddingModel] | None = None,
    scanned: ScanResult | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    export: Path | None = None,
) -> HashReport:
    """Embed every new or changed image under ``root`` and store the vectors. ``engine``
    ``ray``: decoded and embedded by actors on a Ray cluster (``distributed.embedding``),
    written here, batch by batch, as locally. ``export`` (with ``ray``): the workers write
    Parquet shards to that folder instead, for ``dedup import`` (``embed.shards``)."""
    if export is not None and engine != "ray":
        raise UsageError("--export needs --engine ray (a local hash writes the database)")
    started = time.perf_counter()
    progress = progress or Progress()
    found = (
        scanned
        if scanned is not None
        else scan(root, include_hidden=include_hidden, exclude=[store.path], skip=exclude)
    )
    report = HashReport(
        root=str(root),
        database=str(store.path),
        model=spec.key,
        device=str(device),
        scanned=len(found.files),
        skipped_symlinks=found.skipped_symlinks,
        skipped_hidden=found.skipped_hidden,
        skipped_excluded=found.skipped_excluded,
        scan_errors=list(found.errors),
    )
    known = store.model_id(spec.key)
    states = store.file_states(known[0] if known else None)
    todo = [f for f in found.files if needs_work(f, states.get(f.path))]
    for f in found.files:
        state = states.get(f.path)
        if state is not None and not needs_work(f, state):
            if state.error is not None:
                report.known_bad += 1
            else:
                report.unchanged += 1
    if todo and engine == "ray":
        from dedup_cli.distributed.embedding import (
            embedded_batches,
            embedding_dataset,
            export_shards,
        )

        report.device = f"ray ({device})"
        if export is not None:
            check_empty(export)
        dataset = embedding_dataset(
            todo,
            spec,
            device=str(device),
            weights=weights,
            batch_size=batch_size,
            address=ray_address,
            model_factory=model_factory,
        )
        if export is not None:
            report.exported = export_shards(dataset, root=root, folder=export, spec=spec)
            report.export = str(export)
        else:
            _write_all(embedded_batches(dataset, todo), store, spec, len(todo), report, progress)
    elif todo:
        # Resolved only now, so a rerun with nothing to embed never imports torch.
        device = resolve_device(device)
        report.device = str(device)
        if device.type == "cpu":
            keep_freed_memory()
        model = model_factory() if model_factory else load_model(spec, device, weights)
        workers_now = default_workers(device) if workers is None else workers
        batches = _local_batches(todo, model, batch_size, workers_now)
        _write_all(batches, store, spec, len(todo), report, progress)
    report.regions_completed = complete_regions(
        store, found.files, default_workers() if workers is None else workers, progress
    )
    report.seconds = time.perf_counter() - started
    return report


def check_empty(folder: Path) -> None:
    """An export goes to a new or empty folder: shards of two runs would mix."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise UsageError(f"--export {folder} is not empty (shards of another run would mix)")


REGIONS_SIZE = 224  # the decode size ``complete_regions`` reads older files at (the models')
REGIONS_BATCH = 256  # files decoded, then written, at a time


def complete_regions(
    store: Store, scanned: Sequence[ScannedFile], workers: int, progress: Progress
) -> int:
    """Look for pictures inside the files an older version hashed (``media.regions``), once:
    a file whose stored thumbnail is not light enough holds none and is not read; the
    others are decoded again (never embedded), and what they show is written only where
    the file still has the content hash it was hashed with (else none). Returns how many
    were decoded."""
    missing = store.files_without_regions()
    if not missing:
        return 0
    dark = [
        (path, content, b"")
        for path, (content, thumbnail) in missing.items()
        if not may_hold_pictures(thumbnail)
    ]
    store.write_regions(dark)
    settled = {path for path, _, _ in dark}
    light = [f for f in scanned if f.path in missing and f.path not in settled]
    if not light:
        return 0
    dataset = DecodeDataset(light, REGIONS_SIZE)
    progress.start(len(light), "pictures inside files hashed by an older version")
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, len(light), REGIONS_BATCH):
                batch = range(start, min(start + REGIONS_BATCH, len(light)))
                items = list(pool.map(dataset.__getitem__, batch))
                # A file that fails to decode now, or whose content changed without its
                # size or mtime (hashed again only when they change), is settled as
                # holding none: looked at once, not on every run.
                store.write_regions(
                    [
                        (
                            it["path"],
                            missing[it["path"]][0],
                            it["regions"]
                            if it["error"] is None and it["hash"] == missing[it["path"]][0]
                            else b"",
                        )
                        for it in items
                    ]
                )
                progress.advance(len(items))
    finally:
        progress.finish()
    return len(light)


@dataclass
class EmbeddedBatch:
    """One batch back from the model: each file's decoded facts (``DecodeDataset`` items),
    the vectors of those that decoded, and the model's dimension."""

    items: list[dict[str, Any]]
    vectors: dict[str, Any]  # path -> float32 vector
    dimension: int


Batches = Iterator[EmbeddedBatch]


def _local_batches(
    todo: list[ScannedFile], model: EmbeddingModel, batch_size: int, workers: int
) -> Batches:
    """(items, vectors by path) batch by batch: DataLoader workers decode, the model runs
    here."""
    from torch.utils.data import DataLoader

    dataset = DecodeDataset(todo, model.preprocessing.size)
    loader: DataLoader[Any] = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=_worker_init if workers else None,
        pin_memory=str(getattr(model, "device", "cpu")).startswith("cuda"),
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    for pixels, items in loader:
        vectors_by_path = {}
        if pixels is not None:
            vectors = model.embed_batch(pixels)
            good = [it for it in items if it["pixels"] is not None]
            vectors_by_path = {it["path"]: vectors[k] for k, it in enumerate(good)}
        yield EmbeddedBatch(items, vectors_by_path, model.dimension)


def _write_all(
    batches: Batches,
    store: Store,
    spec: ModelSpec,
    total: int,
    report: HashReport,
    progress: Progress,
) -> None:
    """Write each batch in its own transaction as it comes (a killed run loses at most the
    batches in flight); the model is registered with the first. An item marked
    ``not_recorded`` (a Ray worker could not find the file, or read another one than this
    machine sees) is reported with that reason and never written: the next run tries again."""
    progress.start(total)
    model_id: int | None = None
    try:
        for batch in batches:
            items, vectors_by_path = batch.items, batch.vectors
            if model_id is None:
                model_id = store.ensure_model(
                    spec.key, batch.dimension, spec.preprocessing.to_json()
                )
            present = [it for it in items if not it.get("not_recorded")]
            facts = [
                FileFacts(
                    it["path"],
                    it["size"],
                    it["mtime_ns"],
                    it["hash"],
                    it["width"],
                    it["height"],
                    it["error"],
                    it["thumbnail"],
                    it["regions"],
                )
                for it in present
            ]
            store.write_batch(model_id, facts, vectors_by_path)
            for it in items:
                if it.get("not_recorded"):
                    report.failed.append((it["path"], it["not_recorded"]))
                elif it["error"] is not None:
                    report.failed.append((it["path"], it["error"]))
            report.embedded += len(vectors_by_path)
            progress.advance(len(items))
    finally:
        progress.finish()


@dataclass
class EmbedOptions:
    """How to embed: shared by ``hash`` and the embedding step of every job."""

    device: torch.device | str  # a string is resolved only when a model must run
    weights: Path | None = None
    batch_size: int = 32
    workers: int | None = None
    include_hidden: bool = False
    exclude: tuple[str, ...] = ()  # glob patterns of files and folders not to scan
    engine: str = "local"  # where the work runs (config.ENGINES)
    ray_address: str | None = None  # --engine ray: auto, HOST:PORT, or None for a local Ray
    export: Path | None = None  # hash --engine ray --export: Parquet shards, not the store


def embed_root(
    root: Path,
    store: Store,
    spec: ModelSpec,
    options: EmbedOptions,
    progress: Progress | None = None,
    scanned: ScanResult | None = None,
) -> HashReport:
    """Embed every new or changed image under ``root`` (``scanned``: a scan already made)."""
    return hash_folder(
        root,
        store,
        spec,
        device=options.device,
        weights=options.weights,
        batch_size=options.batch_size,
        workers=options.workers,
        include_hidden=options.include_hidden,
        exclude=options.exclude,
        progress=progress,
        scanned=scanned,
        engine=options.engine,
        ray_address=options.ray_address,
        export=options.export,
    )
