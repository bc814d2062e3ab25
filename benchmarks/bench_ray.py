"""``--engine ray`` against the local pipeline, on this machine.

    python benchmarks/bench_ray.py photos  --n 600 --workdir /tmp/bench_ray
    python benchmarks/bench_ray.py nodes   --workdir /tmp/bench_ray
    python benchmarks/bench_ray.py vectors --n 1000000 --dim 512

photos   a realistic folder (``bench_dense.write_realistic``: photos, bursts, a texture, 1 %
         planted copies of every easy and hard edit) hashed from a fresh database by the
         local pipeline and by a Ray of this machine's CPUs (started before the clock: its
         start is printed apart), each in a fresh process; then ``find`` (the proof on) on a
         copy of each database, local and ray, and whether the plans agree.
nodes    the same hashing on a cluster of 1 node of 1 CPU, then 2 nodes of 1 CPU each
         (``ray.cluster_utils.Cluster``): what a second node adds.
vectors  the cell join of ``find --index ann`` on N synthetic unit vectors
         (``bench_ann.make``: 1 % planted near-duplicates) locally (``search.cells.ann_pairs``)
         and on Ray (``distributed.search.ray_ann_pairs``), with each row's 16 nearest as
         ``find`` asks; pairs compared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, print_machine, table

SCRIPT = Path(__file__).resolve()


def child(task: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh process; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "_child", json.dumps(task)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _hash(task: dict[str, Any]) -> dict[str, Any]:
    from dedup_cli.embed.pipeline import hash_folder
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store

    started = 0.0
    engine = task["engine"]
    if engine == "ray":
        import ray

        t = time.perf_counter()
        if task.get("nodes"):
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            for _ in range(task["nodes"] - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False)
        else:
            ray.init(
                address="local", num_cpus=task["cpus"], include_dashboard=False, log_to_driver=False
            )
        started = time.perf_counter() - t
    db = Path(task["db"])
    db.unlink(missing_ok=True)
    with Store(db) as store:
        report = hash_folder(
            Path(task["root"]), store, get_spec("effnet"), device="cpu", engine=engine
        )
    if engine == "ray":
        ray.shutdown()
        if task.get("nodes"):
            cluster.shutdown()
    return {"embedded": report.embedded, "seconds": report.seconds, "ray_start": started}


def _find(task: dict[str, Any]) -> dict[str, Any]:
    from dedup_cli.embed.pipeline import EmbedOptions
    from dedup_cli.jobs.find import find_duplicates
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store

    started = 0.0
    if task["engine"] == "ray":
        import ray

        t = time.perf_counter()
        ray.init(
            address="local", num_cpus=task["cpus"], include_dashboard=False, log_to_driver=False
        )
        started = time.perf_counter() - t
    t = time.perf_counter()
    with Store(Path(task["db"])) as store:
        result = find_duplicates(
            Path(task["root"]),
            store,
            get_spec("effnet"),
            EmbedOptions(device="cpu", engine=task["engine"]),
        )
    seconds = time.perf_counter() - t
    groups = sorted(
        [g.keep.path, *sorted(r.file.path for r in g.remove)] for g in result.plan.groups
    )
    return {
        "seconds": seconds,
        "proof_seconds": result.proof_seconds,
        "ray_start": started,
        "groups": groups,
        "removals": sum(len(g.remove) for g in result.plan.groups),
        "proofs": result.proofs,
    }


def _vectors(task: dict[str, Any]) -> dict[str, Any]:
    import resource

    from bench_ann import make

    vectors, _ = make(task["n"], task["dim"])
    threshold, neighbours = 0.75, 16
    started = 0.0
    t = time.perf_counter()
    if task["engine"] == "ray":
        import ray

        from dedup_cli.distributed.search import ray_ann_pairs

        ray.init(
            address="local", num_cpus=task["cpus"], include_dashboard=False, log_to_driver=False
        )
        started = time.perf_counter() - t
        t = time.perf_counter()
        pairs = ray_ann_pairs(vectors, threshold, neighbours=neighbours)
    else:
        from dedup_cli.search.cells import ann_pairs

        pairs = ann_pairs(vectors, threshold, neighbours=neighbours)
    seconds = time.perf_counter() - t
    keys = (pairs.left.astype("int64") << 32) | pairs.right.astype("int64")
    out = Path(task["out"])
    import numpy as np

    np.save(out, np.sort(keys))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "ray_start": started, "pairs": len(pairs), "peak_mb": peak}


def photos(args: argparse.Namespace) -> None:
    from bench_dense import write_realistic

    work = Path(args.workdir)
    root = work / "photos"
    if not root.exists():
        root.mkdir(parents=True)
        print("corpus:", write_realistic(root, args.n))
    rows = []
    hashes: dict[str, list[float]] = {"local": [], "ray": []}
    for attempt in range(args.repeat):
        for engine in ("local", "ray"):
            db = work / f"{engine}.db"
            got = child(
                {"do": "hash", "engine": engine, "root": str(root), "db": str(db), "cpus": 2}
            )
            hashes[engine].append(got["seconds"])
            rate = got["embedded"] / got["seconds"]
            rows.append(
                [
                    f"hash {engine} #{attempt + 1}",
                    got["embedded"],
                    got["seconds"],
                    rate,
                    got["ray_start"],
                ]
            )
    found = {}
    for engine in ("local", "ray"):
        db = work / f"{engine}.db"
        copy = work / f"{engine}-find.db"
        shutil.copy(db, copy)
        found[engine] = child(
            {"do": "find", "engine": engine, "root": str(root), "db": str(copy), "cpus": 2}
        )
        got = found[engine]
        rows.append(
            [
                f"find {engine}",
                got["removals"],
                got["seconds"],
                got["proof_seconds"],
                got["ray_start"],
            ]
        )
    table("photos", ["run", "files / removals", "seconds", "img/s or proof s", "ray start s"], rows)
    best_local, best_ray = min(hashes["local"]), min(hashes["ray"])
    print(
        f"hash overhead of ray (best of {args.repeat}): {100 * (best_ray / best_local - 1):+.1f} %"
    )
    find_overhead = 100 * (found["ray"]["seconds"] / found["local"]["seconds"] - 1)
    print(f"find overhead of ray: {find_overhead:+.1f} %")
    print(
        "same plan:",
        found["ray"]["groups"] == found["local"]["groups"],
        "same proofs:",
        found["ray"]["proofs"] == found["local"]["proofs"],
    )


def nodes(args: argparse.Namespace) -> None:
    work = Path(args.workdir)
    root = work / "photos"
    rows = []
    for count in (1, 2):
        got = child(
            {
                "do": "hash",
                "engine": "ray",
                "nodes": count,
                "root": str(root),
                "db": str(work / f"nodes{count}.db"),
            }
        )
        rows.append(
            [
                f"{count} node(s) x 1 CPU",
                got["embedded"],
                got["seconds"],
                got["embedded"] / got["seconds"],
                got["ray_start"],
            ]
        )
    table("nodes", ["cluster", "files", "seconds", "img/s", "start s"], rows)


def vectors(args: argparse.Namespace) -> None:
    import numpy as np

    rows = []
    keys = {}
    for engine in ("local", "ray"):
        out = Path(args.workdir) / f"pairs-{engine}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        got = child(
            {
                "do": "vectors",
                "engine": engine,
                "n": args.n,
                "dim": args.dim,
                "cpus": 2,
                "out": str(out),
            }
        )
        keys[engine] = np.load(out)
        rows.append([engine, got["pairs"], got["seconds"], got["peak_mb"], got["ray_start"]])
    table(
        f"cell join, {args.n} x {args.dim}",
        ["engine", "pairs", "seconds", "driver peak MB", "ray start s"],
        rows,
    )
    same = np.intersect1d(keys["local"], keys["ray"])
    print(
        f"pairs in both: {len(same)}; only local: {len(keys['local']) - len(same)}; "
        f"only ray: {len(keys['ray']) - len(same)}"
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        task = json.loads(sys.argv[2])
        run = {"hash": _hash, "find": _find, "vectors": _vectors}[task["do"]]
        print(json.dumps(run(task)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["photos", "nodes", "vectors"])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/bench_ray")
    args = parser.parse_args()
    print_machine(machine_info())
    {"photos": photos, "nodes": nodes, "vectors": vectors}[args.what](args)


if __name__ == "__main__":
    main()
