"""What the round-2 trust checks cost: re-reading exact copies before they may group, and
re-reading copy and keeper (plus a byte comparison) at the moment of each removal.

A folder of N distinct photos, each with C byte-identical copies, is embedded once; then
``find`` runs with the proof on (default settings), and a ``delete`` of every planned copy
runs through ``act.execute.execute_plan`` (the path the CLI takes), timed per removal.

    python benchmarks/bench_trust.py                 # 500 photos x 2 copies, 640 px JPEGs
    python benchmarks/bench_trust.py --photos 2000 --copies 1 --side 1600
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_folder(root: Path, photos: int, copies: int, side: int) -> int:
    """Distinct smooth random pictures as JPEGs, each with ``copies`` byte copies."""
    rng = np.random.default_rng(0)
    total = 0
    for k in range(photos):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        folder = root / f"f{k // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for c in range(copies + 1):
            (folder / f"p{k:05d}_{c}.jpg").write_bytes(data)
            total += len(data)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--side", type=int, default=640)
    args = parser.parse_args()

    import torch

    from dedup_cli.act.execute import execute_plan
    from dedup_cli.confirm.rederive import rederive_shared_hashes
    from dedup_cli.embed.collection import load_collection
    from dedup_cli.embed.pipeline import EmbedOptions, embed_root
    from dedup_cli.jobs.find import find_duplicates
    from dedup_cli.media.scan import scan
    from dedup_cli.models import get_spec
    from dedup_cli.store import Store, default_db_path

    work = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    try:
        root = work / "photos"
        size = make_folder(root, args.photos, args.copies, args.side)
        files = args.photos * (args.copies + 1)
        spec = get_spec("effnet")
        options = EmbedOptions(device=torch.device("cpu"), workers=0)
        with Store(default_db_path(root)) as store:
            embed_root(root.resolve(), store, spec, options)
            found = scan(root.resolve(), exclude=[store.path])
            table = load_collection(root.resolve(), store, spec, found).files
            started = time.perf_counter()
            rederive_shared_hashes([table])
            rederive_seconds = time.perf_counter() - started
            started = time.perf_counter()
            result = find_duplicates(root, store, spec, options)
            find_seconds = time.perf_counter() - started
            plan = result.plan
            started = time.perf_counter()
            report = execute_plan(plan, store, "delete")
            act_seconds = time.perf_counter() - started
        print(
            f"{files} files ({size / 1e6:.0f} MB), {args.photos} photos x {args.copies + 1} "
            f"byte-identical copies, {args.side} px JPEGs"
        )
        print(
            f"find (proof on): {find_seconds:.2f} s, of which re-reading the exact copies "
            f"{rederive_seconds:.2f} s ({result.rederived.read} files, "
            f"{result.rederived.differed} stored hashes wrong); "
            f"groups {len(plan.groups)}, planned removals {plan.files_to_remove}"
        )
        removed = len(report.done)
        print(
            f"delete with re-checks (copy and keeper re-read, hashed, compared byte for byte, "
            f"folder locks): {act_seconds:.2f} s for {removed} removals = "
            f"{1000 * act_seconds / max(removed, 1):.2f} ms per removal; skipped "
            f"{len(report.skipped)}, failed {len(report.failed)}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
