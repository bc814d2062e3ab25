"""On a CUDA machine: hashing throughput against the model alone, and exact search at 1M.

    python benchmarks/bench_gpu.py --small 4000 --large 300 --batches 64,256 --search 1000000x768

hash     the corpus of ``bench_hash.py`` (distinct JPEGs from real photos, grain, EXIF turns:
         ``--small`` at 800x600, ``--large`` at 4000x3000) hashed by ``embed.pipeline
         .hash_folder`` on ``cuda`` into a fresh database, for each batch size and decode
         worker count; img/s is embedded files over the whole run (scan, model load and
         database writes included). ``model`` is ``EffnetModel.embed_batch`` alone on
         preloaded uint8 batches of the same size, in the same precision (the pipeline's
         default on CUDA: fp16), timed with the GPU synchronised.
search   exact search on N synthetic unit vectors (``bench_ann.make``: 1 % planted pairs at
         cosine 0.76-0.99) on the GPU in fp16: ``search.exact.nearest_pairs`` (each row's 16
         nearest, what ``find`` runs) and ``similar_pairs`` (every pair over 0.75), with the
         planted pairs found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
DEVICE = os.environ.get("BENCH_DEVICE", "cuda")  # cpu: a smoke test of this script


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def model_rate(batch: int, seconds: float = 4.0) -> dict[str, Any]:
    import torch

    from dedup_cli.models import get_spec, load_model

    spec = get_spec("effnet")
    model = load_model(spec, torch.device(DEVICE))
    size = model.preprocessing.size
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    if DEVICE == "cuda":
        images = images.pin_memory()
    for _ in range(5):
        model.embed_batch(images)
    sync()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.embed_batch(images)  # returns numpy: synchronises
        done += batch
    elapsed = time.perf_counter() - started
    return {"batch": batch, "precision": getattr(model, "precision", "?"), "img_s": done / elapsed}


def pipeline_rate(root: Path, batch: int, workers: int) -> dict[str, Any]:
    from dedup_cli.embed.pipeline import hash_folder
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "x.db") as store:
        report = hash_folder(
            root, store, get_spec("effnet"), device=DEVICE, batch_size=batch, workers=workers
        )
    return {
        "batch": batch,
        "workers": workers,
        "embedded": report.embedded,
        "seconds": round(report.seconds, 2),
        "img_s": round(report.images_per_second, 1),
    }


def search(n: int, dim: int) -> dict[str, Any]:
    import torch
    from bench_ann import make

    from dedup_cli.search.exact import nearest_pairs, similar_pairs

    vectors, planted = make(n, dim)
    device = torch.device(DEVICE)
    out: dict[str, Any] = {"n": n, "dim": dim, "planted": len(planted)}
    nearest_pairs(vectors[:20000], 0.75, 16, device=device)  # warm-up: kernels, allocator
    for name, run in (
        ("nearest16", lambda: nearest_pairs(vectors, 0.75, 16, device=device)),
        ("all_pairs", lambda: similar_pairs(vectors, 0.75, device=device)),
    ):
        sync()
        started = time.perf_counter()
        pairs = run()
        sync()
        seconds = time.perf_counter() - started
        found = set(zip(pairs.left.tolist(), pairs.right.tolist()))
        hit = sum((min(a, b), max(a, b)) in found for a, b in planted)
        out[name] = {"seconds": round(seconds, 2), "pairs": len(pairs), "planted_found": hit}
        del pairs
    if DEVICE == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=4000)
    ap.add_argument("--large", type=int, default=300)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--workers", default="8,15")
    ap.add_argument("--search", default="1000000x768")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_gpu"))
    args = ap.parse_args()
    import torch
    from bench_hash import build_corpus

    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"
    print("device:", name, "torch", torch.__version__, "cpus", os.cpu_count(), flush=True)
    results: dict[str, Any] = {}
    batches = [int(b) for b in args.batches.split(",")]
    results["model"] = [model_rate(b) for b in batches]
    print(json.dumps(results["model"]), flush=True)
    for name, count, width, height in (
        ("small", args.small, 800, 600),
        ("large", args.large, 4000, 3000),
    ):
        if count == 0:
            continue
        folder = args.workdir / name
        built = build_corpus(folder, count, width, height, 6, 0.1, 0)
        print(name, "corpus", json.dumps(built), flush=True)
        rows = []
        for batch in batches:
            for workers in (int(w) for w in args.workers.split(",")):
                rows.append(pipeline_rate(folder, batch, workers))
                print(name, json.dumps(rows[-1]), flush=True)
        results[name] = rows
    if args.search:
        n, dim = (int(x) for x in args.search.split("x"))
        results["search"] = search(n, dim)
        print(json.dumps(results["search"]), flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out, "bench_gpu.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
