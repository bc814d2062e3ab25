"""What a user waits for on a folder already hashed: ``dedup find`` (and ``--help``) start-up.

Writes N small distinct photos (gradients and shapes, every tenth with a re-encoded copy),
hashes them once, then times fresh processes of ``dedup --help`` and ``dedup find FOLDER
--json``: wall time, the child's own peak RSS (``os.wait4``), and whether torch was imported
(the child reports ``sys.modules``). Below 50,000 files ``find`` should not start torch.

    python benchmarks/bench_startup.py --n 2000
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CHILD = (
    "import sys\n"
    "from dedup_cli.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:])\n"
    "except SystemExit as exit:\n"
    "    code = exit.code\n"
    "else:\n"
    "    code = 0\n"
    "sys.stderr.write('\\nTORCH=%s CODE=%s\\n' % ('torch' in sys.modules, code))\n"
)


def write_photos(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, 160)[None, :, None]
        pixels = (a * (1 - ramp) + b * ramp).repeat(120, axis=0).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x, y = (int(v) for v in rng.integers(0, 140, 2))
            draw.ellipse(
                (x, y, x + 30, y + 20), fill=tuple(int(v) for v in rng.integers(0, 256, 3))
            )
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=92)
        (root / f"p{k:05d}.jpg").write_bytes(buffer.getvalue())
        if k % 10 == 0:
            image.save(root / f"p{k:05d}_copy.jpg", "JPEG", quality=60)


def timed(args: list[str]) -> tuple[float, float, bool]:
    """(wall seconds, peak RSS MB, torch imported) of one fresh ``dedup`` process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    err = child.stderr.read() if child.stderr else ""
    flag = [line for line in err.splitlines() if line.startswith("TORCH=")]
    if os.waitstatus_to_exitcode(status) != 0 or not flag or "CODE=0" not in flag[0]:
        raise SystemExit(f"dedup {' '.join(args)} failed:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, flag[0].startswith("TORCH=True")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dedup-startup-") as tmp:
        root = Path(tmp) / "photos"
        write_photos(root, args.n)
        hashed = timed(["hash", str(root), "--json", "--quiet"])
        print(f"{args.n} photos (+ {args.n // 10} copies); hash {hashed[0]:.1f} s")
        for label, command in (
            ("dedup --help", ["--help"]),
            ("dedup find (hashed)", ["find", str(root), "--json"]),
        ):
            runs = [timed(command) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(f"{label:22s} {wall:6.2f} s  peak {rss:6.0f} MB  torch imported: {runs[0][2]}")


if __name__ == "__main__":
    main()
