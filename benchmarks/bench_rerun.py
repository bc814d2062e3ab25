"""A rerun of ``hash`` on an unchanged folder versus the first run (target: < 5 %).

Makes a folder of small images (default 10,000 JPEGs of 64x64, each with its own gradient,
shapes and grain, in sub-folders of 1,000), then:

  1. the first run: ``dedup hash FOLDER --db DB --json`` with the real ``effnet`` model, in a
     fresh process (the process wall time and the report's own ``seconds``);
  2. reruns of the same command on the unchanged folder (median of ``--reruns``);
  3. the library-level rerun in one warm process: ``Store(db)`` + ``hash_folder`` (median),
     with its parts (scan, file_states) timed on their own.

The ratio is rerun / first run, both for the command (what a user waits for, including the
Python and torch start-up) and for ``hash_folder`` itself.

    python benchmarks/bench_rerun.py                 # 10,000 files (~2-3 min)
    python benchmarks/bench_rerun.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_capacity, machine_info, print_machine, run_child, table

SCRIPT = Path(__file__).resolve()


def make_folder(folder: Path, n: int, side: int, fmt: str, seed: int = 0) -> float:
    """n distinct small images; returns seconds taken."""
    import numpy as np
    from PIL import Image

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    for i in range(n):
        sub = folder / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
        img = c0 + (c1 - c0) * ((t - t.min()) / (np.ptp(t) + 1e-6))
        for _ in range(int(rng.integers(1, 4))):  # a few rectangles
            x0, y0 = rng.integers(0, side - 8, size=2)
            w, h = rng.integers(4, side // 2, size=2)
            img[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 255, size=3)
        img += rng.normal(0, 6, size=img.shape).astype(np.float32)
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        if fmt == "png":
            pil.save(sub / f"img_{i:06d}.png", "PNG", compress_level=1)
        else:
            pil.save(sub / f"img_{i:06d}.jpg", "JPEG", quality=90)
    return time.perf_counter() - started


def run_cli(folder: Path, db: Path, extra: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dedup_cli", "hash", str(folder), "--db", str(db), "--json", *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dedup hash failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    return {
        "wall": wall,
        "seconds": report["seconds"],
        "embedded": report["embedded"],
        "unchanged": report["unchanged"],
        "scanned": report["scanned"],
        "failed": len(report["failed"]),
    }


def child_library(p: dict[str, Any]) -> dict[str, Any]:
    """Warm-process rerun: Store open + hash_folder, and its parts on their own."""
    import torch

    from dedup_cli.embed.pipeline import hash_folder
    from dedup_cli.media.scan import scan
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store

    folder, db = Path(p["folder"]), Path(p["db"])
    spec = get_spec("effnet")
    totals, hashing, scans, states = [], [], [], []
    report = None
    for _ in range(p["repeat"]):
        t0 = time.perf_counter()
        with Store(db) as store:
            t1 = time.perf_counter()
            report = hash_folder(folder, store, spec, device=torch.device("cpu"))
            t2 = time.perf_counter()
        totals.append(t2 - t0)
        hashing.append(t2 - t1)
        t3 = time.perf_counter()
        scan(folder)
        scans.append(time.perf_counter() - t3)
        with Store(db) as store:
            t4 = time.perf_counter()
            known = store.model_id(spec.key)
            store.file_states(known[0] if known else None)
            states.append(time.perf_counter() - t4)
    assert report is not None
    return {
        "total": statistics.median(totals),
        "hash_folder": statistics.median(hashing),
        "scan": statistics.median(scans),
        "file_states": statistics.median(states),
        "embedded": report.embedded,
        "unchanged": report.unchanged,
    }


def import_seconds(modules: str) -> float:
    """What the command costs before it does anything: Python + the given imports."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of image files")
    ap.add_argument("--side", type=int, default=64, help="image width and height")
    ap.add_argument("--format", choices=["jpg", "png"], default="jpg")
    ap.add_argument("--reruns", type=int, default=3)
    ap.add_argument("--workers", type=int, help="--workers for the command (default: its own)")
    ap.add_argument("--workdir", type=Path, help="keep folder and database here")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(child_library(payload)), flush=True)
        return
    info = machine_info()
    print_machine(info)
    print(f"cpu capacity (2 busy processes): {cpu_capacity():.2f} CPUs", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dedup-bench-rerun-"))
    folder, db = workdir / "photos", workdir / "db" / "dedup.db"
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    try:
        if folder.exists():
            shutil.rmtree(folder)
        if db.parent.exists():
            shutil.rmtree(db.parent)
        made = make_folder(folder, args.n, args.side, args.format)
        print(
            f"made {args.n} {args.side}x{args.side} {args.format} files in {made:.1f} s", flush=True
        )
        os.sync()
        first = run_cli(folder, db, extra)
        print(
            f"first run: {first['wall']:.1f} s wall, hash_folder {first['seconds']:.1f} s, "
            f"{first['embedded']} embedded",
            flush=True,
        )
        reruns = [run_cli(folder, db, extra) for _ in range(args.reruns)]
        for r in reruns:
            assert r["embedded"] == 0 and r["unchanged"] == args.n, r
        rerun_wall = statistics.median(r["wall"] for r in reruns)
        rerun_seconds = statistics.median(r["seconds"] for r in reruns)
        lib = run_child(SCRIPT, {"folder": str(folder), "db": str(db), "repeat": args.reruns})
        startup = statistics.median(
            import_seconds("dedup_cli.cli, dedup_cli.jobs.find, torch") for _ in range(3)
        )
        startup_no_torch = statistics.median(
            import_seconds("dedup_cli.cli, dedup_cli.jobs.find") for _ in range(3)
        )
        rows = [
            [
                "dedup hash (process wall)",
                first["wall"],
                rerun_wall,
                f"{100 * rerun_wall / first['wall']:.2f}%",
            ],
            [
                "hash_folder (report seconds)",
                first["seconds"],
                rerun_seconds,
                f"{100 * rerun_seconds / first['seconds']:.2f}%",
            ],
            [
                "Store open + hash_folder, warm process",
                first["seconds"],
                lib["total"],
                f"{100 * lib['total'] / first['seconds']:.2f}%",
            ],
        ]
        table(
            f"First run vs rerun on an unchanged folder ({args.n:,} files, "
            f"{args.side}x{args.side} {args.format}, effnet on CPU)",
            ["measure", "first run s", "rerun s", "rerun / first"],
            rows,
        )
        table(
            "Where the rerun's time goes (median)",
            ["part", "seconds"],
            [
                ["python + import dedup_cli.cli, service, torch", startup],
                ["python + import dedup_cli.cli, service (no torch)", startup_no_torch],
                ["scan (stat of every file)", lib["scan"]],
                ["Store.file_states (one query)", lib["file_states"]],
                ["hash_folder total (scan + states + compare)", lib["hash_folder"]],
                ["first run throughput, images/s", first["embedded"] / first["seconds"]],
            ],
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "machine": info,
                        "first": first,
                        "reruns": reruns,
                        "library": lib,
                        "startup": startup,
                        "startup_no_torch": startup_no_torch,
                    },
                    indent=1,
                )
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
