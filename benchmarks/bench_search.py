"""``similar_pairs`` on synthetic unit-norm embeddings, and loading them from the Store.

Search cases: N random L2-normalised float32 rows (dimension 1280 = effnet, 512 = CLIP
B/32-sized) in which a fraction of rows are replaced by noisy copies of other rows, with the
noise scaled so that the copy's cosine to its source is about 0.97. ``similar_pairs`` runs at
a threshold of 0.90; the table gives the wall time, the peak RSS (whole process, and the rise
during the search measured by a sampling thread), the pairs found and the recall of the
planted pairs. Random high-dimensional rows are almost orthogonal, so every extra pair found
would be a bug.

Store cases: N FileFacts rows (with a 32x32 thumbnail) and their vectors are written with
``Store.write_batch`` in batches of 32, as ``hash`` does, then read back the way ``find``
does before searching: ``file_states``, ``file_rows`` for every path, and
``load_embeddings`` restricted to those paths.

Every case runs in a fresh subprocess so peak memory figures are separate.

    python benchmarks/bench_search.py                      # 10k and 100k
    python benchmarks/bench_search.py --n 10000 --dims 512 --store-n 0
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import tempfile
import threading
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

SCRIPT = Path(__file__).resolve()


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class PeakSampler:
    """Samples this process's RSS every few milliseconds while a block runs."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def make_embeddings(
    n: int, dim: int, dup_fraction: float, cosine: float, seed: int = 0
) -> tuple[Any, set[tuple[int, int]]]:
    """Unit rows; ``dup_fraction * n`` rows are replaced by noisy copies of other rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 8192):  # chunked so generation never needs float64 N x dim
        chunk = rng.standard_normal((min(8192, n - start), dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + len(chunk)] = chunk
    planted = round(n * dup_fraction)
    rows = rng.permutation(n)[: 2 * planted]
    sources, copies = rows[:planted], rows[planted:]
    # For a unit v and isotropic noise of norm s (nearly orthogonal to v in high dimension),
    # cos(v, v + noise) = 1 / sqrt(1 + s^2).
    scale = (1.0 / cosine**2 - 1.0) ** 0.5
    noise = rng.standard_normal((planted, dim), dtype=np.float32)
    noise *= scale / np.linalg.norm(noise, axis=1, keepdims=True)
    dup = out[sources] + noise
    dup /= np.linalg.norm(dup, axis=1, keepdims=True)
    out[copies] = dup
    pairs = {(int(min(a, b)), int(max(a, b))) for a, b in zip(sources, copies)}
    return out, pairs


def child_search(p: dict[str, Any]) -> dict[str, Any]:
    if p.get("keep_heap"):
        glibc_keep_heap()
    import numpy as np
    import torch

    from dedup_cli.search import exact as search
    from dedup_cli.search.exact import block_rows, similar_pairs

    budget = getattr(search, "memory_budget", None)  # newer src sizes blocks to free RAM
    block = block_rows(p["n"], budget(torch.device("cpu"))) if budget else block_rows(p["n"])

    vectors, planted = make_embeddings(p["n"], p["dim"], p["dup_fraction"], p["cosine"])
    planted_sims = np.array([float(vectors[a] @ vectors[b]) for a, b in planted])
    before = _rss_mb()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with PeakSampler() as sampler:
        started = time.perf_counter()
        pairs = similar_pairs(vectors, p["threshold"], device=torch.device("cpu"))
        seconds = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    found = set(zip(pairs.left.tolist(), pairs.right.tolist()))
    hit = len(found & planted)
    return {
        "seconds": seconds,
        "pairs": len(pairs),
        "planted": len(planted),
        "hit": hit,
        "recall": hit / len(planted) if planted else 1.0,
        "extra": len(found - planted),
        "planted_cos_mean": float(planted_sims.mean()),
        "planted_cos_min": float(planted_sims.min()),
        "block": block,
        "block_mb": block * p["n"] * 4 / 2**20,
        "threads": torch.get_num_threads(),
        "user_s": cpu1.ru_utime - cpu0.ru_utime,
        "sys_s": cpu1.ru_stime - cpu0.ru_stime,
        "minflt": cpu1.ru_minflt - cpu0.ru_minflt,
        "matrix_mb": vectors.nbytes / 2**20,
        "rss_before_mb": before,
        "search_peak_mb": sampler.peak / 2**20,
        "maxrss_mb": _maxrss_mb(),
    }


def child_store(p: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from dedup_cli.store import Store
    from dedup_cli.store.database import FileFacts

    n, dim = p["n"], p["dim"]
    vectors, _ = make_embeddings(n, dim, 0.0, 1.0)
    rng = np.random.default_rng(1)
    thumbs = rng.integers(0, 256, size=(64, 1024), dtype=np.uint8)
    paths = [f"album_{i // 1000:03d}/IMG_{i:07d}.jpg" for i in range(n)]
    out: dict[str, Any] = {"n": n, "dim": dim}
    with tempfile.TemporaryDirectory(prefix="dedup-bench-store-") as tmp:
        db = Path(tmp) / "bench.db"
        store = Store(db)
        model_id = store.ensure_model("effnet" if dim == 1280 else f"bench{dim}", dim, "{}")
        batch = p["write_batch"]
        started = time.perf_counter()
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            facts = [
                FileFacts(
                    paths[i],
                    1_000_000 + i,
                    1_700_000_000_000_000_000 + i,
                    f"{i:032x}",
                    4000,
                    3000,
                    None,
                    thumbs[i % 64].tobytes(),
                )
                for i in range(start, stop)
            ]
            store.write_batch(model_id, facts, {paths[i]: vectors[i] for i in range(start, stop)})
        out["write_s"] = time.perf_counter() - started
        out["write_rows_per_s"] = n / out["write_s"]
        store.close()
        out["db_mb"] = db.stat().st_size / 2**20
        del vectors
        # A fresh Store, as a later ``find`` would open it.
        base_rss = _rss_mb()
        with PeakSampler() as sampler:  # what find does before it searches
            t0 = time.perf_counter()
            store = Store(db)
            known = store.model_id("effnet" if dim == 1280 else f"bench{dim}")
            assert known is not None
            t1 = time.perf_counter()
            states = store.file_states(known[0])
            t2 = time.perf_counter()
            rows = store.file_rows(set(states))
            t3 = time.perf_counter()
            names, matrix = store.load_embeddings(known[0], known[1], set(rows))
            t4 = time.perf_counter()
        assert len(names) == n and matrix.shape == (n, dim)
        matrix_mb = matrix.nbytes / 2**20
        del names, matrix, rows, states
        t5a = time.perf_counter()
        names_all, _matrix_all = store.load_embeddings(known[0], known[1])
        t5 = time.perf_counter()
        store.close()
        assert len(names_all) == n
        out.update(
            open_s=t1 - t0,
            file_states_s=t2 - t1,
            file_rows_s=t3 - t2,
            load_paths_s=t4 - t3,
            load_all_s=t5 - t5a,
            read_total_s=t4 - t0,
            rss_before_mb=base_rss,
            read_peak_mb=sampler.peak / 2**20,
            matrix_mb=matrix_mb,
            maxrss_mb=_maxrss_mb(),
        )
    return out


CHILDREN = {"search": child_search, "store": child_store}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=_ints, default=[10_000, 100_000], help="rows per search case")
    ap.add_argument("--dims", type=_ints, default=[1280, 512])
    ap.add_argument("--threshold", type=float, default=0.90)
    ap.add_argument("--dup-fraction", type=float, default=0.01, help="rows that get a copy")
    ap.add_argument("--cosine", type=float, default=0.97, help="planted copy's cosine")
    ap.add_argument(
        "--store-n",
        type=_ints,
        default=[10_000, 100_000],
        help="rows for the Store write/load cases (0 to skip)",
    )
    ap.add_argument("--store-dim", type=int, default=1280)
    ap.add_argument("--write-batch", type=int, default=32, help="rows per write_batch call")
    ap.add_argument("--no-search", action="store_true", help="only the Store cases")
    ap.add_argument(
        "--keep-heap",
        choices=["no", "yes", "both"],
        default="both",
        help="also run each search with the proposed glibc allocator setting",
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(CHILDREN[payload.pop("kind")](payload)), flush=True)
        return
    info = machine_info()
    print_machine(info)
    print(f"cpu capacity (2 busy processes): {cpu_capacity():.2f} CPUs", flush=True)
    results: dict[str, Any] = {"machine": info, "search": [], "store": []}
    rows = []
    heaps = {"no": [False], "yes": [True], "both": [False, True]}[args.keep_heap]
    for n, dim, keep in itertools.product([] if args.no_search else args.n, args.dims, heaps):
        r = run_child(
            SCRIPT,
            {
                "kind": "search",
                "n": n,
                "dim": dim,
                "threshold": args.threshold,
                "keep_heap": keep,
                "dup_fraction": args.dup_fraction,
                "cosine": args.cosine,
            },
            timeout=3600,
        )
        r.update(n=n, dim=dim, keep_heap=keep)
        results["search"].append(r)
        rows.append(
            [
                n,
                dim,
                "keep-heap" if keep else "stock",
                r["seconds"],
                f"{r['user_s']:.1f} / {r['sys_s']:.1f}",
                r["minflt"],
                r["pairs"],
                r["planted"],
                f"{100 * r['recall']:.1f}%",
                r["extra"],
                f"{r['planted_cos_mean']:.3f}",
                r["block"],
                r["block_mb"],
                r["matrix_mb"],
                r["rss_before_mb"],
                r["search_peak_mb"] - r["rss_before_mb"],
                r["maxrss_mb"],
            ]
        )
        print(f"  search n={n} dim={dim} keep_heap={keep}: {r['seconds']:.2f} s", flush=True)
    if rows:
        table(
            f"similar_pairs, threshold {args.threshold}, {100 * args.dup_fraction:g}% rows "
            f"planted at cosine ~{args.cosine} (fresh process per row)",
            [
                "N",
                "dim",
                "allocator",
                "seconds",
                "CPU user / sys s",
                "page faults",
                "pairs found",
                "planted",
                "recall",
                "extra pairs",
                "planted cos",
                "block rows",
                "first block MB",
                "matrix MB",
                "RSS before MB",
                "search RSS rise MB",
                "peak RSS MB",
            ],
            rows,
        )
    rows = []
    for n in [x for x in args.store_n if x > 0]:
        r = run_child(
            SCRIPT,
            {"kind": "store", "n": n, "dim": args.store_dim, "write_batch": args.write_batch},
            timeout=3600,
        )
        results["store"].append(r)
        rows.append(
            [
                n,
                r["dim"],
                r["write_s"],
                r["write_rows_per_s"],
                r["db_mb"],
                r["open_s"],
                r["file_states_s"],
                r["file_rows_s"],
                r["load_paths_s"],
                r["load_all_s"],
                r["read_total_s"],
                r["rss_before_mb"],
                r["read_peak_mb"] - r["rss_before_mb"],
                r["maxrss_mb"],
            ]
        )
        print(
            f"  store n={n}: write {r['write_s']:.1f} s, read {r['read_total_s']:.2f} s", flush=True
        )
    if rows:
        table(
            f"Store: write_batch ({args.write_batch} rows per call) then read back as find does",
            [
                "N",
                "dim",
                "write s",
                "rows/s",
                "db MB",
                "open s",
                "file_states s",
                "file_rows s",
                "load_embeddings(paths) s",
                "load_embeddings() s",
                "open..load total s",
                "RSS before MB",
                "read RSS rise MB",
                "peak RSS MB",
            ],
            rows,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
