"""Hashing throughput of the default model (``effnet``) on the CPU: decode, model, pipeline.

Builds a corpus of distinct JPEGs from real photos (scikit-image and scikit-learn sample
images, cropped, upscaled, colour-jittered, with sensor-like grain so file sizes are
realistic) in two sizes, then measures on the same files:

  D   single-process decode rate: imageio.read_file + imageio.decode(data, 224); also the
      full DecodeDataset item (adds the xxh3 content hash), Pillow without draft mode, and
      simplejpeg's scaled decode when installed
  D2  the pipeline's DataLoader alone (DecodeDataset + collate, N workers, no model)
  M   EffnetModel.embed_batch on preloaded uint8 batches (auto = bf16 where supported, and
      fp32), each configuration in a fresh process
  C   the serial ceiling 1 / (1/D + 1/M)
  P   dedup_cli.embed.pipeline.hash_folder into a fresh Store (embedded / report.seconds), each
      run in a fresh process; P/C is the pipeline's efficiency (target >= 90 %)

Rows marked "keep-heap" / "heap" / "heap+nice" apply, from outside src/, the changes
proposed in docs/benchmarks.md, to show what they are worth: glibc's allocator kept from
handing freed memory back to the kernel (mallopt, in the process that runs the model), and
decode workers niced so the model gets the CPU first.

    python benchmarks/bench_hash.py                 # defaults: 150 + 600 files
    python benchmarks/bench_hash.py --n-large 40 --n-small 200 --repeat 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    cpu_capacity,
    glibc_keep_heap,
    machine_info,
    print_machine,
    run_child,
    table,
)

SIZE = 224
SCRIPT = Path(__file__).resolve()


# ----------------------------------------------------------------------------- corpus


def _base_images() -> list[Any]:
    import skimage.data as data
    from sklearn.datasets import load_sample_images

    names = [
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
    ]
    images = [getattr(data, n)() for n in names]
    images += list(load_sample_images().images)
    return [im[..., :3] for im in images]


_BASES: list[Any] = []


def _make_one(job: tuple[int, int, int, int, str, float]) -> int:
    """One distinct JPEG: crop, upscale, jitter, grain; some with an EXIF rotation tag."""
    import numpy as np
    from PIL import Image

    index, width, height, grain, path, rotate_fraction = job
    if not _BASES:
        _BASES.extend(_base_images())
    rng = np.random.default_rng(index)
    base = _BASES[index % len(_BASES)]
    bh, bw = base.shape[:2]
    # A 4:3 crop covering 55-100 % of the limiting side, at a random place.
    cw = int(min(bw, bh * 4 / 3) * rng.uniform(0.55, 1.0))
    ch = int(cw * 3 / 4)
    x0 = int(rng.integers(0, bw - cw + 1))
    y0 = int(rng.integers(0, bh - ch + 1))
    crop = base[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    img = Image.fromarray(np.ascontiguousarray(crop)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    arr = np.asarray(img).astype(np.int16)
    gain = rng.uniform(0.85, 1.15, size=3)
    offset = rng.uniform(-12, 12, size=3)
    arr = arr * gain + offset
    if grain:
        tile = rng.integers(-grain, grain + 1, size=(1024, 1024, 3), dtype=np.int16)
        reps = (height // 1024 + 2, width // 1024 + 2, 1)
        oy, ox = int(rng.integers(0, 1024)), int(rng.integers(0, 1024))
        arr = arr + np.tile(tile, reps)[oy : oy + height, ox : ox + width]
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    if rng.random() < rotate_fraction:
        exif[0x0112] = 6  # rotated 90 degrees, as phones write portrait shots
    out.save(path, "JPEG", quality=90, exif=exif.tobytes())
    return os.path.getsize(path)


def build_corpus(
    folder: Path, count: int, width: int, height: int, grain: int, rotate_fraction: float, seed: int
) -> dict[str, float]:
    import multiprocessing as mp

    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) == count:
        sizes = [p.stat().st_size for p in existing]
        return {"files": count, "mean_mb": statistics.mean(sizes) / 1e6, "seconds": 0.0}
    for p in existing:
        p.unlink()
    jobs = [
        (seed + i, width, height, grain, str(folder / f"img_{i:05d}.jpg"), rotate_fraction)
        for i in range(count)
    ]
    started = time.perf_counter()
    with mp.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        sizes = pool.map(_make_one, jobs, chunksize=4)
    return {
        "files": count,
        "mean_mb": statistics.mean(sizes) / 1e6,
        "seconds": time.perf_counter() - started,
    }


# ----------------------------------------------------------------------------- decode (D)


def _files(folder: Path) -> list[Any]:
    from dedup_cli.media.scan import scan

    return scan(folder).files


def _post(img: Any) -> tuple[Any, bytes]:
    """What imageio.decode does after decoding: squash to SIZE, thumbnail, numpy."""
    import numpy as np
    from PIL import Image

    from dedup_cli.media.decode import THUMBNAIL_SIDE

    square = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    thumb = square.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    return np.asarray(square, dtype=np.uint8), thumb.tobytes()


def decode_pillow_nodraft(data: bytes) -> Any:
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return _post(img.convert("RGB"))


def decode_simplejpeg(data: bytes, fast: bool) -> Any:
    import simplejpeg
    from PIL import Image

    arr = simplejpeg.decode_jpeg(
        data, colorspace="RGB", fastdct=fast, fastupsample=fast, min_width=SIZE, min_height=SIZE
    )
    return _post(Image.fromarray(arr))


def _rate(func: Any, items: list[Any], passes: int) -> float:
    """Best images/s over ``passes`` passes (the VM's noise only ever slows things down)."""
    best = 0.0
    for _ in range(passes):
        started = time.perf_counter()
        for it in items:
            func(it)
        best = max(best, len(items) / (time.perf_counter() - started))
    return best


def measure_decode(
    folder: Path, passes: int, nodraft_limit: int
) -> tuple[list[list[Any]], dict[str, float]]:
    from dedup_cli.embed.pipeline import DecodeDataset
    from dedup_cli.media.decode import content_hash, decode, read_file

    files = _files(folder)
    paths = [f.absolute for f in files]
    for p in paths:  # warm the page cache
        read_file(p)
    rows: list[list[Any]] = []
    rates: dict[str, float] = {}

    def add(key: str, label: str, rate: float, n: int) -> None:
        rates[key] = rate
        rows.append([label, n, rate, 1000.0 / rate])

    add(
        "imageio",
        "imageio.read_file + imageio.decode (draft)",
        _rate(lambda p: decode(read_file(p)[0], SIZE), paths, passes),
        len(paths),
    )
    dataset = DecodeDataset(files, SIZE)
    add(
        "dataset",
        "DecodeDataset item (+ xxh3 hash)",
        _rate(lambda i: dataset[i], list(range(len(files))), passes),
        len(files),
    )
    sub = paths[:nodraft_limit]
    add(
        "nodraft",
        "Pillow full decode, no draft",
        _rate(lambda p: decode_pillow_nodraft(read_file(p)[0]), sub, 1),
        len(sub),
    )
    try:
        import simplejpeg  # noqa: F401

        add(
            "simplejpeg",
            "simplejpeg scaled decode",
            _rate(lambda p: decode_simplejpeg(read_file(p)[0], False), paths, passes),
            len(paths),
        )
        add(
            "simplejpeg_fast",
            "simplejpeg scaled, fastdct+fastupsample",
            _rate(lambda p: decode_simplejpeg(read_file(p)[0], True), paths, passes),
            len(paths),
        )
    except ImportError:
        rows.append(["simplejpeg (not installed)", 0, 0.0, 0.0])
    # Where the time of one imageio.decode goes (ms per image, same steps as the source).
    steps = _decode_breakdown(paths, content_hash)
    return rows, {**rates, **{f"step_{k}": v for k, v in steps.items()}}


def _decode_breakdown(paths: list[Path], content_hash: Any) -> dict[str, float]:
    import numpy as np
    from PIL import Image

    from dedup_cli.media.decode import THUMBNAIL_SIDE, read_file

    totals = dict.fromkeys(
        ["read", "xxh3", "open+exif", "draft+decode", "resize", "thumbnail", "asarray"], 0.0
    )
    for path in paths:
        t0 = time.perf_counter()
        data = read_file(path)[0]
        t1 = time.perf_counter()
        content_hash(data)
        t2 = time.perf_counter()
        img = Image.open(io.BytesIO(data))
        img.getexif().get(0x0112)
        t3 = time.perf_counter()
        img.draft("RGB", (SIZE, SIZE))
        img = img.convert("RGB") if img.mode != "RGB" else img
        img.load()
        t4 = time.perf_counter()
        square = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
        t5 = time.perf_counter()
        thumb = (
            square.convert("L")
            .resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
            .tobytes()
        )
        t6 = time.perf_counter()
        np.asarray(square, dtype=np.uint8)
        t7 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
            totals[key] += dt
        del thumb
    return {k: 1000.0 * v / len(paths) for k, v in totals.items()}


# ----------------------------------------------------------------------------- children


def _rusage() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "user": me.ru_utime + kids.ru_utime,
        "sys": me.ru_stime + kids.ru_stime,
        "minflt": float(me.ru_minflt + kids.ru_minflt),
    }


def _setup(payload: dict[str, Any]) -> dict[str, Any]:
    """Apply a case's process settings before torch allocates anything."""
    applied: dict[str, Any] = {}
    if payload.get("keep_heap"):
        applied["keep_heap"] = glibc_keep_heap()
    import torch

    if payload.get("threads"):
        torch.set_num_threads(int(payload["threads"]))
    applied["threads"] = torch.get_num_threads()
    return applied


def child_model(payload: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    applied = _setup(payload)
    import torch

    from dedup_cli.media.decode import decode, read_file
    from dedup_cli.models import get_spec
    from dedup_cli.models.effnet import EffnetModel

    spec = get_spec("effnet")
    t0 = time.perf_counter()
    model = EffnetModel(spec, torch.device("cpu"), None, precision=payload["precision"])
    load_s = time.perf_counter() - t0
    batch = int(payload["batch"])
    files = _files(Path(payload["folder"]))[: 2 * batch]
    files = (files * (2 * batch // len(files) + 1))[: 2 * batch]
    pixels = np.stack([decode(read_file(f.absolute)[0], SIZE).pixels for f in files])
    tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    batches = [tensor[i : i + batch] for i in range(0, len(tensor) - batch + 1, batch)]
    for b in batches[:1] * 3:
        model.embed_batch(b)
    times: list[float] = []
    before = _rusage()
    started = time.perf_counter()
    k = 0
    while time.perf_counter() - started < float(payload["seconds"]) or len(times) < 4:
        t = time.perf_counter()
        model.embed_batch(batches[k % len(batches)])
        times.append(time.perf_counter() - t)
        k += 1
    after = _rusage()
    total = sum(times)
    return {
        **applied,
        "precision": model.precision,
        "load_s": load_s,
        "batches": len(times),
        "mean_rate": batch * len(times) / total,
        "median_rate": batch / statistics.median(times),
        "cpu_s_per_img": (after["user"] + after["sys"] - before["user"] - before["sys"])
        / (batch * len(times)),
        "sys_share": (after["sys"] - before["sys"])
        / max(1e-9, after["user"] + after["sys"] - before["user"] - before["sys"]),
        "faults_per_img": (after["minflt"] - before["minflt"]) / (batch * len(times)),
    }


def child_loader(payload: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's DataLoader exactly as pipeline._embed_all builds it, without a model."""
    _setup({"threads": payload.get("threads")})
    from torch.utils.data import DataLoader

    from dedup_cli.embed.pipeline import DecodeDataset, _worker_init, collate

    files = _files(Path(payload["folder"]))
    workers = int(payload["workers"])
    started = time.perf_counter()
    loader = DataLoader(
        DecodeDataset(files, SIZE),
        batch_size=int(payload["batch"]),
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=_worker_init if workers else None,
        pin_memory=False,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    n = 0
    first = None
    for pixels, _items in loader:
        if first is None:
            first = time.perf_counter() - started
        n += 0 if pixels is None else int(pixels.shape[0])
    seconds = time.perf_counter() - started
    return {"images": n, "seconds": seconds, "rate": n / seconds, "first_batch_s": first}


def child_pipeline(payload: dict[str, Any]) -> dict[str, Any]:
    applied = _setup(payload)
    import torch

    from dedup_cli.embed.pipeline import Progress, hash_folder
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store

    class Clock(Progress):
        def __init__(self) -> None:
            self.marks: list[float] = []

        def start(self, total: int) -> None:
            self.marks.append(time.perf_counter())

        def advance(self, count: int) -> None:
            self.marks.append(time.perf_counter())

    import dedup_cli.embed.pipeline as pipeline
    from dedup_cli.models import load_model

    if payload.get("nice"):  # decode workers yield the CPU to the model (proposed change)
        stock_init = pipeline._worker_init

        def nice_init(worker_id: int) -> None:
            os.nice(int(payload["nice"]))
            stock_init(worker_id)

        pipeline._worker_init = nice_init  # type: ignore[assignment]

    spent = {"model": 0.0, "store": 0.0}

    class Timed:
        """The real model, with the time spent in embed_batch added up."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            for attr in ("name", "dimension", "preprocessing", "default_threshold", "device"):
                setattr(self, attr, getattr(inner, attr))

        def embed_batch(self, images: Any) -> Any:
            t = time.perf_counter()
            out = self.inner.embed_batch(images)
            spent["model"] += time.perf_counter() - t
            return out

    spec = get_spec("effnet")
    device = torch.device("cpu")
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="dedup-bench-db-") as tmp:
        store = Store(Path(tmp) / "bench.db")
        stock_write = store.write_batch

        def timed_write(*a: Any, **k: Any) -> None:
            t = time.perf_counter()
            stock_write(*a, **k)
            spent["store"] += time.perf_counter() - t

        store.write_batch = timed_write  # type: ignore[method-assign]
        before = _rusage()
        t0 = time.perf_counter()
        report = hash_folder(
            Path(payload["folder"]),
            store,
            spec,
            device=device,
            batch_size=int(payload["batch"]),
            workers=int(payload["workers"]),
            progress=clock,
            model_factory=lambda: Timed(load_model(spec, device)),
        )
        wall = time.perf_counter() - t0
        after = _rusage()
        store.close()
    marks = clock.marks
    return {
        **applied,
        "embedded": report.embedded,
        "failed": len(report.failed),
        "seconds": report.seconds,
        "wall": wall,
        "rate": report.images_per_second,
        "setup_s": marks[0] - t0 if marks else 0.0,
        "first_batch_s": marks[1] - marks[0] if len(marks) > 1 else 0.0,
        "model_s": spent["model"],
        "store_s": spent["store"],
        "cpu_s": after["user"] + after["sys"] - before["user"] - before["sys"],
        "sys_share": (after["sys"] - before["sys"])
        / max(1e-9, after["user"] + after["sys"] - before["user"] - before["sys"]),
    }


CHILDREN = {"model": child_model, "loader": child_loader, "pipeline": child_pipeline}


# ----------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-large", type=int, default=150, help="~12 MP JPEGs (4000x3000, q90)")
    ap.add_argument("--n-small", type=int, default=600, help="~0.5 MP JPEGs (800x600, q90)")
    ap.add_argument("--workers", type=_ints, default=[0, 1, 2], help="pipeline workers to try")
    ap.add_argument("--batches", type=_ints, default=[32, 64], help="pipeline batch sizes")
    ap.add_argument("--repeat", type=int, default=2, help="runs per pipeline case (median)")
    ap.add_argument("--model-seconds", type=float, default=8.0, help="timed seconds per M case")
    ap.add_argument("--decode-passes", type=int, default=2, help="best-of passes for D")
    ap.add_argument(
        "--nodraft-limit", type=int, default=40, help="files decoded without draft (slow on 12 MP)"
    )
    ap.add_argument("--no-tuned", action="store_true", help="skip the 'tuned' experiment rows")
    ap.add_argument("--only", choices=["large", "small"], help="one corpus only")
    ap.add_argument("--workdir", type=Path, help="keep the corpus here (reused if complete)")
    ap.add_argument("--json", type=Path, help="also write all results as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(CHILDREN[payload.pop("kind")](payload)), flush=True)
        return

    info = machine_info()
    print_machine(info)
    cap0 = cpu_capacity()
    print(f"cpu capacity (2 busy processes): {cap0:.2f} CPUs", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dedup-bench-hash-"))
    corpora = [
        ("large", "12 MP", args.n_large, 4000, 3000, 12),
        ("small", "0.5 MP", args.n_small, 800, 600, 6),
    ]
    corpora = [c for c in corpora if args.only in (None, c[0]) and c[2] > 0]
    results: dict[str, Any] = {"machine": info, "cpu_capacity_start": cap0, "corpora": {}}
    try:
        for key, label, count, w, h, grain in corpora:
            folder = workdir / key
            built = build_corpus(
                folder, count, w, h, grain, 0.25, seed=1000 if key == "large" else 5000
            )
            print(
                f"\n## corpus {label}: {count} files {w}x{h} q90, mean {built['mean_mb']:.2f} MB "
                f"(built in {built['seconds']:.1f} s) in {folder}",
                flush=True,
            )
            results["corpora"][key] = run_corpus(args, key, label, folder, built)
        results["cpu_capacity_end"] = cpu_capacity()
        print(f"\ncpu capacity at the end: {results['cpu_capacity_end']:.2f} CPUs")
        summary(results)
    finally:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def run_corpus(
    args: argparse.Namespace, key: str, label: str, folder: Path, built: dict[str, float]
) -> dict[str, Any]:
    out: dict[str, Any] = {"built": built}
    n = built["files"]
    # D
    rows, rates = measure_decode(folder, args.decode_passes, args.nodraft_limit)
    table(
        f"D: single-process decode, {label} ({n} files, warm page cache)",
        ["decoder", "files", "images/s", "ms/image"],
        rows,
    )
    steps = {k[5:]: v for k, v in rates.items() if k.startswith("step_")}
    table(
        f"imageio.decode step by step, {label} (ms per image)",
        list(steps),
        [[v for v in steps.values()]],
    )
    out["decode"] = rates
    # D2
    loader_rows = []
    out["loader"] = {}
    for workers in sorted({0, 1, 2, *args.workers}):
        r = run_child(
            SCRIPT, {"kind": "loader", "folder": str(folder), "workers": workers, "batch": 32}
        )
        out["loader"][workers] = r
        loader_rows.append([workers, r["rate"], r["first_batch_s"], r["seconds"]])
    table(
        f"D2: pipeline DataLoader alone (batch 32, no model), {label}",
        ["workers", "images/s", "first batch s", "total s"],
        loader_rows,
    )
    # M
    model_cases = [
        ("auto", 32, None, False),
        ("auto", 32, 1, False),
        ("auto", 64, None, False),
        ("fp32", 32, None, False),
        ("fp32", 32, 1, False),
    ]
    if not args.no_tuned:
        model_cases += [
            ("auto", 32, None, True),
            ("auto", 32, 1, True),
            ("auto", 64, None, True),
            ("fp32", 32, None, True),
        ]
    m_rows = []
    out["model"] = []
    if key == "large" or "model" not in _MODEL_CACHE:  # the model rate does not depend on file size
        for precision, batch, threads, keep in model_cases:
            r = run_child(
                SCRIPT,
                {
                    "kind": "model",
                    "folder": str(folder),
                    "precision": precision,
                    "batch": batch,
                    "threads": threads,
                    "keep_heap": keep,
                    "seconds": args.model_seconds
                    if precision == "auto"
                    else args.model_seconds / 2,
                },
            )
            r["tuned"] = keep
            r["batch"] = batch
            out["model"].append(r)
        _MODEL_CACHE["model"] = out["model"]
    else:
        out["model"] = _MODEL_CACHE["model"]
    for r in out["model"]:
        m_rows.append(
            [
                r["precision"],
                r["batch"],
                r["threads"],
                "keep-heap" if r["tuned"] else "stock",
                r["mean_rate"],
                r["median_rate"],
                1000 * r["cpu_s_per_img"],
                f"{100 * r['sys_share']:.0f}%",
                r["faults_per_img"],
                r["load_s"],
            ]
        )
    table(
        "M: EffnetModel.embed_batch on preloaded uint8 batches (fresh process per row)",
        [
            "precision",
            "batch",
            "threads",
            "allocator",
            "images/s (mean)",
            "images/s (median batch)",
            "CPU ms/img",
            "sys share",
            "page faults/img",
            "load s",
        ],
        m_rows,
    )
    # P
    cases = [(w, b, False, None) for b in args.batches for w in args.workers]
    if not args.no_tuned:
        # keep-heap allocator alone; with a decode worker per core niced; with 1 torch thread.
        cases += [
            (0, 32, "heap", None),
            (2, 32, "heap", None),
            (2, 32, "heap+nice", None),
            (2, 32, "heap", 1),
        ]
    runs: dict[tuple[Any, ...], list[dict[str, Any]]] = {c: [] for c in cases}
    for _ in range(args.repeat):
        for case in cases:
            w, b, variant, threads = case
            runs[case].append(
                run_child(
                    SCRIPT,
                    {
                        "kind": "pipeline",
                        "folder": str(folder),
                        "workers": w,
                        "batch": b,
                        "keep_heap": bool(variant),
                        "nice": 10 if variant == "heap+nice" else 0,
                        "threads": threads,
                    },
                )
            )
    p_rows = []
    out["pipeline"] = []
    for case, rs in runs.items():
        w, b, variant, _threads = case
        rate = statistics.median(r["rate"] for r in rs)
        rec = {
            "workers": w,
            "batch": b,
            "tuned": bool(variant),
            "variant": variant or "stock",
            "threads": rs[0]["threads"],
            "rate": rate,
            "runs": rs,
        }
        out["pipeline"].append(rec)

        def med(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r[key] for r in rs)

        p_rows.append(
            [
                w,
                b,
                rs[0]["threads"],
                variant or "stock",
                rate,
                " / ".join(f"{r['rate']:.1f}" for r in rs),
                med("seconds"),
                med("setup_s"),
                med("first_batch_s"),
                med("model_s"),
                med("store_s"),
                med("seconds") - med("model_s") - med("store_s"),
                med("cpu_s") / n * 1000,
                f"{100 * med('sys_share'):.0f}%",
            ]
        )
    table(
        f"P: hash_folder into a fresh Store, {label} ({n} files; median of {args.repeat})",
        [
            "workers",
            "batch",
            "torch threads",
            "variant",
            "P images/s",
            "runs",
            "seconds",
            "until model loaded s",
            "first batch s",
            "in embed_batch s",
            "in write_batch s",
            "rest s",
            "CPU ms/img",
            "sys share",
        ],
        p_rows,
    )
    # C and P/C
    d_best_key = max(
        (k for k in ("imageio", "nodraft", "simplejpeg", "simplejpeg_fast") if k in rates),
        key=lambda k: rates[k],
    )
    stock_m = [r for r in out["model"] if not r["tuned"]]
    m_stock = max(stock_m, key=lambda r: r["mean_rate"])
    tuned_m = [r for r in out["model"] if r["tuned"]]
    stock_p = max((r for r in out["pipeline"] if not r["tuned"]), key=lambda r: r["rate"])
    c_rows = []

    def ceiling(label_: str, d_key: str, m: dict[str, Any], p: dict[str, Any]) -> None:
        d = rates[d_key]
        c = 1.0 / (1.0 / d + 1.0 / m["mean_rate"])
        # Two cores, perfect overlap: the CPU seconds of one decode plus one model image.
        c2 = min(2.0 / (1.0 / d + m["cpu_s_per_img"]), m["mean_rate"] * 2, d * 2)
        c_rows.append(
            [
                label_,
                f"{d_key} {d:.0f}",
                f"{m['precision']} b{m['batch']} t{m['threads']} {m['mean_rate']:.0f}",
                c,
                f"{p['variant']} w{p['workers']} b{p['batch']} t{p['threads']} {p['rate']:.1f}",
                f"{100 * p['rate'] / c:.0f}%",
                c2,
                f"{100 * p['rate'] / c2:.0f}%",
            ]
        )

    ceiling("stock, D = best decoder", d_best_key, m_stock, stock_p)
    ceiling("stock, D = imageio.decode", "imageio", m_stock, stock_p)
    ceiling("stock, D = DecodeDataset", "dataset", m_stock, stock_p)
    if tuned_m:
        m_tuned = max(tuned_m, key=lambda r: r["mean_rate"])
        tuned_p = max((r for r in out["pipeline"] if r["tuned"]), key=lambda r: r["rate"])
        ceiling("tuned, D = DecodeDataset", "dataset", m_tuned, tuned_p)
        ceiling("tuned P vs stock ceiling", "dataset", m_stock, tuned_p)
    table(
        f"Ceiling C = 1/(1/D + 1/M) and P/C, {label}",
        [
            "case",
            "D images/s",
            "M images/s",
            "C images/s",
            "best P",
            "P/C",
            "C2 (2 CPUs) images/s",
            "P/C2",
        ],
        c_rows,
    )
    out["ceiling"] = c_rows
    return out


_MODEL_CACHE: dict[str, Any] = {}


def summary(results: dict[str, Any]) -> None:
    rows = []
    for key, r in results["corpora"].items():
        for row in r["ceiling"]:
            rows.append([key, *row])
    table("Summary", ["corpus", "case", "D", "M", "C", "best P", "P/C", "C2", "P/C2"], rows)


if __name__ == "__main__":
    main()
