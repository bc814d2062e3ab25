"""Approximate search (``find --index ann``: the cell join) against exact search on synthetic
embeddings.

Unit rows (random, so ordinary neighbours are nearly orthogonal) with 1% planted near-
duplicate pairs whose cosine is spread uniformly over [threshold + 0.01, 0.99]. Each case runs
in a fresh subprocess and prints wall time, peak RSS (the matrix included) and recall:
against the planted pairs, and against exact search (all of it where exact runs, else the
exact partners of 2,000 sampled rows, found by one matrix product).

    python benchmarks/bench_ann.py --cases 100000x512,100000x1280,1000000x512
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from typing import Any

import numpy as np

THRESHOLD = 0.75


def make(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 16384):
        chunk = rng.standard_normal((min(16384, n - start), dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + len(chunk)] = chunk
    planted = n // 100
    rows = rng.permutation(n)[: 2 * planted]
    sources, copies = rows[:planted], rows[planted:]
    cosine = rng.uniform(THRESHOLD + 0.01, 0.99, planted).astype(np.float32)
    noise = rng.standard_normal((planted, dim), dtype=np.float32)
    noise -= np.einsum("ij,ij->i", noise, out[sources])[:, None] * out[sources]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out[copies] = cosine[:, None] * out[sources] + np.sqrt(1 - cosine**2)[:, None] * noise
    return out, {(int(min(a, b)), int(max(a, b))) for a, b in zip(sources, copies)}


def child(params: dict[str, Any], queue: Any) -> None:
    from dedup_cli.malloc_tuning import keep_freed_memory
    from dedup_cli.search.cells import ann_pairs
    from dedup_cli.search.exact import similar_pairs

    keep_freed_memory()
    n, dim, method = params["n"], params["dim"], params["method"]
    vectors, planted = make(n, dim)
    started = time.perf_counter()
    if method == "exact":
        pairs = similar_pairs(vectors, THRESHOLD)
    else:
        pairs = ann_pairs(
            vectors, THRESHOLD, nprobe=params["nprobe"], cells_per_sqrt_n=params["cells"]
        )
    seconds = time.perf_counter() - started
    found = set(zip(pairs.left.tolist(), pairs.right.tolist()))
    result = {
        "seconds": round(seconds, 1),
        "pairs": len(found),
        "planted_recall": round(len(found & planted) / len(planted), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if method == "ann":
        # Exact partners of sampled rows, by one product each: the reference for recall.
        rng = np.random.default_rng(1)
        sample = np.sort(rng.choice(n, min(n, 2000), replace=False))
        exact: set[tuple[int, int]] = set()
        for start in range(0, len(sample), 500):
            rows = sample[start : start + 500]
            sims = vectors[rows] @ vectors.T
            r, c = np.nonzero(sims >= THRESHOLD)
            for i, j in zip(rows[r].tolist(), c.tolist()):
                if i != j:
                    exact.add((min(i, j), max(i, j)))
        sampled = set(sample.tolist())
        got = {p for p in found if p[0] in sampled or p[1] in sampled}
        result["sampled_exact_pairs"] = len(exact)
        result["recall_vs_exact_sample"] = round(len(got & exact) / max(1, len(exact)), 4)
        result["extra_vs_exact_sample"] = len(got - exact)
    queue.put(result)


def run(params: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=child, args=(params, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return {**params, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="100000x512,100000x1280,1000000x512")
    parser.add_argument("--nprobe", type=int, default=64)
    parser.add_argument("--cells", type=float, default=4.0, help="nlist = CELLS * sqrt(N)")
    parser.add_argument("--exact-up-to", type=int, default=200_000)
    parser.add_argument("--no-exact", action="store_true", help="ann only")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = []
    print(
        "| N x dim | method | seconds | peak RSS MB | pairs | recall (planted) | recall vs exact |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for case in args.cases.split(","):
        n, dim = (int(v) for v in case.split("x"))
        methods = ["ann"] + (["exact"] if n <= args.exact_up_to and not args.no_exact else [])
        exact_pairs = None
        for method in reversed(methods):  # exact first, so ann can be compared with it
            r = run(
                {"n": n, "dim": dim, "method": method, "nprobe": args.nprobe, "cells": args.cells}
            )
            results.append(r)
            if method == "exact":
                exact_pairs = r["pairs"]
            vs = r.get("recall_vs_exact_sample", "")
            if method == "ann" and exact_pairs is not None:
                vs = f"{vs} (pairs {r['pairs']} of {exact_pairs})"
            print(
                f"| {n} x {dim} | {method} | {r['seconds']} | {r['peak_rss_mb']} | {r['pairs']} "
                f"| {r['planted_recall']} | {vs} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
