"""``dedup find`` end to end on a million-file folder: wall time, peak memory, recall.

Builds a folder of N one-byte ``.jpg`` files and a database that already holds their facts
and synthetic unit embeddings (random rows, 1% planted near-duplicate pairs with cosine
spread over 0.76-0.99, as ``bench_ann.py``), registered under a real model of that dimension
(``clip-b32`` for 512, ``effnet`` for 1280), so ``find`` scans, sees every file unchanged,
loads, searches, tries to confirm and plans, exactly as on a real collection, without a
model. The pixel checks fail on the fake files, so the run uses ``--no-verify`` unless
``--verify`` is given; the search and memory are the same either way.

Then ``--new`` more files are added (with their vectors, 10% planted as copies of old
rows) and ``find --new-only`` is timed: it compares only them against everything, through
the kept index. Last, a whole ``find`` again, with the kept index updated, not rebuilt.

``find`` runs as a child process: its peak RSS is its own ``ru_maxrss`` (``os.wait4``).

    python benchmarks/bench_find_scale.py --n 1000000 --dim 512 --workdir /tmp/scale512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ann import THRESHOLD, make

MODELS = {512: "clip-b32", 768: "clip-l14", 1024: "dinov3", 1280: "effnet"}


def name(k: int) -> str:
    return f"d{k // 1000:04d}/{k:08d}.jpg"


def build(root: Path, vectors: np.ndarray, first: int, model: str) -> None:
    """Files ``first .. first + len(vectors)`` and their rows in the database."""
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store
    from dedup_cli.store.database import FileFacts, default_db_path

    spec = get_spec(model)
    with Store(default_db_path(root)) as store:
        model_id = store.ensure_model(spec.key, vectors.shape[1], spec.preprocessing.to_json())
        batch = 8192
        for start in range(0, len(vectors), batch):
            facts, by_path = [], {}
            for k in range(start, min(start + batch, len(vectors))):
                path = name(first + k)
                file = root / path
                file.parent.mkdir(exist_ok=True)
                file.write_bytes(b"x")
                info = file.stat()
                facts.append(
                    FileFacts(
                        path,
                        info.st_size,
                        info.st_mtime_ns,
                        f"{first + k:032x}",
                        64,
                        64,
                        None,
                        None,
                    )
                )
                by_path[path] = vectors[k]
            store.write_batch(model_id, facts, by_path)


def run_find(root: Path, model: str, *extra: str) -> dict[str, object]:
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dedup_cli",
                "find",
                str(root),
                "--model",
                model,
                "--json",
                "--threshold",
                str(THRESHOLD),
                "--workers",
                "0",
                *extra,
            ],
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
        _pid, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        text, errors = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise SystemExit(f"find failed ({child.returncode}): {errors[-2000:]}")
    document = json.loads(text)
    pairs = set()
    for group in document["groups"]:
        members = [group["keep"], *group["remove"]]
        rows = sorted(int(Path(p).stem) for p in members)
        pairs.update((a, b) for i, a in enumerate(rows) for b in rows[i + 1 :])
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "pairs": pairs,
        "stats": document["stats"],
        "index_file": document.get("index_file"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, required=True, help="kept for reruns")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--index", default="auto")
    args = parser.parse_args()
    model = MODELS[args.dim]
    root = args.workdir
    vectors, planted = make(args.n, args.dim)
    if not (root / "image_database.db").exists():
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build(root, vectors, 0, model)
        print(f"built {args.n} files and rows in {time.perf_counter() - started:.0f} s")
    verify = [] if args.verify else ["--no-verify"]
    full = run_find(root, model, "--index", args.index, *verify)
    found = full.pop("pairs")
    recall = len(found & planted) / len(planted)  # type: ignore[operator]
    print(
        f"find {args.n} x {args.dim} --index {args.index}: {full['seconds']} s, peak RSS "
        f"{full['peak_rss_mb']} MB, planted recall {recall:.4f} ({len(planted)} planted, "
        f"{len(found)} found)"
    )  # type: ignore[arg-type]
    print("  stats:", json.dumps(full["stats"]), json.dumps(full["index_file"]))
    if args.new:
        rng = np.random.default_rng(1)
        fresh, _ = make(args.new, args.dim, seed=2)
        sources = rng.choice(args.n, args.new // 10, replace=False)
        copies = np.arange(0, args.new // 10)  # the first 10% are copies of old rows
        noise = rng.standard_normal((len(sources), args.dim)).astype(np.float32) * 0.02
        rows = vectors[sources] + noise
        fresh[copies] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        if not (root / name(args.n)).exists():
            build(root, fresh, args.n, model)
        new_pairs = {(int(s), args.n + int(c)) for s, c in zip(sources, copies)}
        new = run_find(root, model, "--index", args.index, "--new-only", *verify)
        got = new.pop("pairs")
        recall = len(got & new_pairs) / len(new_pairs)  # type: ignore[operator]
        grouped = {row for pair in got for row in pair}  # type: ignore[attr-defined]
        in_groups = sum(1 for _s, c in new_pairs if c in grouped) / len(new_pairs)
        print(
            f"find --new-only ({args.new} new of {args.n + args.new}): {new['seconds']} s, "
            f"peak RSS {new['peak_rss_mb']} MB, recall of the new copies {recall:.4f} "
            f"(in a group at all: {in_groups:.4f}; a copy whose source has a planted "
            f"look-alike may be grouped with the look-alike instead)"
        )
        print("  stats:", json.dumps(new["stats"]), json.dumps(new["index_file"]))
        again = run_find(root, model, "--index", args.index, *verify)
        got = again.pop("pairs")
        recall = len(got & (planted | new_pairs)) / len(planted | new_pairs)  # type: ignore[operator]
        print(
            f"find again, all {args.n + args.new} files: {again['seconds']} s, peak RSS "
            f"{again['peak_rss_mb']} MB, planted recall {recall:.4f}"
        )
        print("  stats:", json.dumps(again["stats"]), json.dumps(again["index_file"]))
    os.sync()


if __name__ == "__main__":
    main()
