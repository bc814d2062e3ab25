"""Line art, documents and binary images: are their copies found, are different pages kept apart?

Builds the line-art family (``dedup_cli.media.lineart``: scikit-image's text, page, horse and
checkerboard, rendered text pages of different words in one layout, Pillow line drawings),
each original with every easy transform (and the hard ones with ``--hard``), runs
``dedup hash`` and ``dedup find --json`` as child processes (the proof on, default settings)
and scores the plan: a copy is found when one group holds it and its original; a group that
holds two different originals (or their copies) is a look-alike grouped.

    python benchmarks/bench_lineart.py
    python benchmarks/bench_lineart.py --hard --workdir /tmp/lineart
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from dedup_cli.media.lineart import line_art
from dedup_cli.media.transforms import EASY, HARD


def build(folder: Path, hard: bool) -> dict[str, tuple[str, str]]:
    """Write the corpus; returns each file's (original, transform)."""
    truth: dict[str, tuple[str, str]] = {}
    tiers = {"easy": EASY, **({"hard": HARD} if hard else {})}
    for name, image in line_art().items():
        path = folder / f"{name}.png"
        image.save(path)
        truth[path.name] = (name, "original")
        for tier in tiers.values():
            for transform, make in tier.items():
                data, ext = make(image)
                copy = folder / f"{name}__{transform}{ext}"
                copy.write_bytes(data)
                truth[copy.name] = (name, transform)
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hard", action="store_true", help="also the hard transforms")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lineart-"))
    folder = workdir / "lineart"
    folder.mkdir(parents=True, exist_ok=True)
    truth = build(folder, args.hard)
    dedup = [sys.executable, "-m", "dedup_cli"]
    started = time.perf_counter()
    subprocess.run([*dedup, "hash", str(folder), "-q"], check=True)
    hashed = time.perf_counter()
    found = subprocess.run(
        [*dedup, "find", str(folder), "--json", "-q"], check=True, capture_output=True, text=True
    )
    done = time.perf_counter()
    document = json.loads(found.stdout)
    print(f"{len(truth)} files; hash {hashed - started:.1f} s, find {done - hashed:.1f} s")
    group_of: dict[str, int] = {}
    mixed = 0
    for number, group in enumerate(document["groups"]):
        members = [Path(group["keep"]).name, *(Path(p).name for p in group["remove"])]
        originals = {truth[m][0] for m in members}
        mixed += len(originals) > 1
        for member in members:
            group_of[member] = number
    related = {
        frozenset((Path(r["a"]).name, Path(r["b"]).name)) for r in document.get("related", [])
    }
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for name, (original, transform) in truth.items():
        if transform == "original":
            continue
        home = f"{original}.png"
        grouped = name in group_of and group_of.get(home) == group_of[name]
        per[transform][0] += 1
        per[transform][1] += grouped
        per[transform][2] += grouped or frozenset((name, home)) in related
    print(f"{'transform':18} {'grouped':>9} {'found':>9}")
    for transform, (total, grouped, found_) in sorted(per.items()):
        print(f"{transform:18} {grouped:>4}/{total:<4} {found_:>4}/{total:<4}")
    total = sum(v[0] for v in per.values())
    print(
        f"all: grouped {sum(v[1] for v in per.values())}/{total}, "
        f"groups holding two originals (look-alikes grouped): {mixed}"
    )
    print("stats", json.dumps(document["stats"].get("proofs")))


if __name__ == "__main__":
    main()
