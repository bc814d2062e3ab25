"""Measures the search and store changes proposed in docs/benchmarks.md against the current
code, without touching src/: each proposal is a copy of the current function with the change.

  search  similar_pairs as it is; the same loop with ``del scores, mask`` at the end of each
          block (the previous block is no longer alive while the next one is multiplied);
          and a bfloat16 screen with a 256 MB block, re-scored exactly in float32 (what the
          GPU path already does with float16) -- time, RSS rise, and whether the pairs are
          identical to the current result
  load    Store.load_embeddings as it is, and a version that counts the rows first, fills an
          exactly sized matrix, and reads through the raw sqlite3 cursor

    python benchmarks/bench_proposals.py search --n 100000 --dim 512
    python benchmarks/bench_proposals.py load --n 100000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, print_machine, run_child, table
from bench_search import PeakSampler, _rss_mb, make_embeddings

SCRIPT = Path(__file__).resolve()
BF16_MARGIN = 0.02  # bf16 dot products of unit rows were off by < 0.0025 here


def pairs_del_blocks(vectors: Any, threshold: float) -> set[tuple[int, int]]:
    """Current CPU loop, but the block's scores and mask are freed before the next block."""
    import numpy as np
    import torch

    from dedup_cli.search import exact as search

    n = vectors.shape[0]
    budget = getattr(search, "memory_budget", None)
    block = search.block_rows(
        n, budget(torch.device("cpu")) if budget else search.DEFAULT_BLOCK_BYTES
    )
    matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    out: set[tuple[int, int]] = set()
    with torch.inference_mode():
        for start in range(0, n, block):
            scores = matrix[start : start + block] @ matrix[start:].T
            mask = scores >= threshold
            rows, cols = torch.nonzero(mask, as_tuple=True)
            del mask
            keep = cols > rows
            rows, cols = rows[keep], cols[keep]
            _exact = scores[rows, cols].numpy()
            del scores
            out.update(zip((rows.numpy() + start).tolist(), (cols.numpy() + start).tolist()))
    return out


def pairs_bf16_screen(vectors: Any, threshold: float) -> set[tuple[int, int]]:
    """bfloat16 products with a margin, then exact float32 re-scoring of the candidates."""
    import numpy as np
    import torch

    from dedup_cli.search import exact as search

    n = vectors.shape[0]
    block = search.block_rows(n, search.DEFAULT_BLOCK_BYTES)
    matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(torch.bfloat16)
    out: set[tuple[int, int]] = set()
    with torch.inference_mode():
        for start in range(0, n, block):
            scores = matrix[start : start + block] @ matrix[start:].T
            rows, cols = torch.nonzero(scores >= threshold - BF16_MARGIN, as_tuple=True)
            del scores
            keep = cols > rows
            i = rows[keep].numpy().astype(np.int64) + start
            j = cols[keep].numpy().astype(np.int64) + start
            exact = np.einsum("ij,ij->i", vectors[i], vectors[j])
            ok = exact >= threshold
            out.update(zip(i[ok].tolist(), j[ok].tolist()))
    return out


def child_search(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    from dedup_cli.search.exact import similar_pairs

    vectors, _planted = make_embeddings(p["n"], p["dim"], 0.01, 0.97)
    if p["variant"] == "current":

        def run() -> set[tuple[int, int]]:
            pairs = similar_pairs(vectors, p["threshold"], device=torch.device("cpu"))
            return set(zip(pairs.left.tolist(), pairs.right.tolist()))
    elif p["variant"] == "del":

        def run() -> set[tuple[int, int]]:
            return pairs_del_blocks(vectors, p["threshold"])
    else:

        def run() -> set[tuple[int, int]]:
            return pairs_bf16_screen(vectors, p["threshold"])

    before = _rss_mb()
    with PeakSampler() as sampler:
        started = time.perf_counter()
        found = run()
        seconds = time.perf_counter() - started
    reference = similar_pairs(vectors, p["threshold"], device=torch.device("cpu"))
    same = found == set(zip(reference.left.tolist(), reference.right.tolist()))
    return {
        "seconds": seconds,
        "rise_mb": sampler.peak / 2**20 - before,
        "pairs": len(found),
        "same": same,
    }


def load_proposed(
    store: Any, model_id: int, dimension: int, paths: set[str] | None = None
) -> tuple[list[str], Any]:
    """Count first, fill an exactly sized matrix, read with the raw sqlite3 cursor."""
    import numpy as np

    sql = (
        "SELECT f.path, e.vector FROM embeddings e JOIN files f ON f.id = e.file_id "
        "WHERE e.model_id = ? AND f.error IS NULL ORDER BY f.path"
    )
    with store._begin() as conn:
        raw = conn.connection.driver_connection
        (count,) = raw.execute(
            "SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (model_id,)
        ).fetchone()
        matrix = np.empty((count, dimension), dtype=np.float32)
        names: list[str] = []
        for path, blob in raw.execute(sql, (model_id,)):
            if paths is not None and path not in paths:
                continue
            matrix[len(names)] = np.frombuffer(blob, dtype="<f4")
            names.append(path)
    return names, matrix if len(names) == count else matrix[: len(names)].copy()


def child_load(p: dict[str, Any]) -> dict[str, Any]:
    from dedup_cli.store import Store

    want = set(_paths(p["n"]))  # find passes every present path
    store = Store(Path(p["db"]))
    before = _rss_mb()
    with PeakSampler() as sampler:
        started = time.perf_counter()
        if p["variant"] == "current":
            names, matrix = store.load_embeddings(1, p["dim"], want)
        else:
            names, matrix = load_proposed(store, 1, p["dim"], want)
        seconds = time.perf_counter() - started
    held = matrix.base.nbytes if matrix.base is not None else matrix.nbytes
    store.close()
    return {
        "seconds": seconds,
        "rise_mb": sampler.peak / 2**20 - before,
        "rows": len(names),
        "held_mb": held / 2**20,
        "checksum": float(matrix[:: max(1, len(names) // 97)].sum()),
    }


def _paths(n: int) -> list[str]:
    return [f"album_{i // 1000:03d}/IMG_{i:07d}.jpg" for i in range(n)]


def build_store(db: Path, n: int, dim: int) -> list[str]:
    from dedup_cli.store import Store
    from dedup_cli.store.database import FileFacts

    vectors, _ = make_embeddings(n, dim, 0.0, 1.0)
    paths = _paths(n)
    store = Store(db)
    model_id = store.ensure_model("effnet", dim, "{}")
    assert model_id == 1
    for start in range(0, n, 1000):
        stop = min(n, start + 1000)
        store.write_batch(
            model_id,
            [
                FileFacts(paths[i], 1, 1, f"{i:032x}", 1, 1, None, bytes(1024))
                for i in range(start, stop)
            ],
            {paths[i]: vectors[i] for i in range(start, stop)},
        )
    store.close()
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["search", "load"], nargs="?", default="search")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threshold", type=float, default=0.90)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import json

        payload = json.loads(args.child)
        kind = payload.pop("kind")
        print(json.dumps((child_search if kind == "search" else child_load)(payload)), flush=True)
        return
    print_machine(machine_info())
    rows = []
    if args.what == "search":
        for variant in ("current", "del", "bf16"):
            r = run_child(
                SCRIPT,
                {
                    "kind": "search",
                    "variant": variant,
                    "n": args.n,
                    "dim": args.dim,
                    "threshold": args.threshold,
                },
                timeout=3600,
            )
            rows.append(
                [
                    variant,
                    args.n,
                    args.dim,
                    r["seconds"],
                    r["rise_mb"],
                    r["pairs"],
                    "yes" if r["same"] else "NO",
                ]
            )
        table(
            "similar_pairs: current vs proposed (fresh process per row)",
            ["variant", "N", "dim", "seconds", "RSS rise MB", "pairs", "same pairs"],
            rows,
        )
    else:
        tmp = Path(tempfile.mkdtemp(prefix="dedup-bench-load-"))
        try:
            db = tmp / "bench.db"
            build_store(db, args.n, 1280)
            for variant in ("current", "proposed", "current", "proposed"):
                r = run_child(
                    SCRIPT,
                    {"kind": "load", "variant": variant, "db": str(db), "dim": 1280, "n": args.n},
                )
                rows.append(
                    [
                        variant,
                        r["rows"],
                        r["seconds"],
                        r["rise_mb"],
                        r["held_mb"],
                        f"{r['checksum']:.4f}",
                    ]
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        table(
            "Store.load_embeddings(paths): current vs proposed (fresh process per row)",
            ["variant", "rows", "seconds", "RSS rise MB", "buffer kept MB", "checksum"],
            rows,
        )


if __name__ == "__main__":
    main()
