"""Fault campaign: kill and interrupt the real ``dedup`` at random points, many times, and
count crashes, damaged databases and lost files (docs/reliability.md quotes the output).

- ``hash-kill``: SIGKILL ``dedup hash`` once a random number of further files is saved;
  after each kill the database must pass ``PRAGMA integrity_check``; at the end one clean run
  must embed each remaining file exactly once.
- ``hash-int``: the same with SIGINT (Ctrl-C): exit code 130, one message, no traceback.
- ``move-kill``: SIGKILL ``dedup find --action move --yes`` after a random number of journal
  entries, then ``dedup undo``: every file must be back, byte for byte.

    python benchmarks/fault_campaign.py --runs 20
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEDUP = str(Path(sys.executable).with_name("dedup"))


def photo(seed: int, side: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)


def count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def integrity(db: Path) -> bool:
    with sqlite3.connect(db) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and children inherit that; give the
    # child the default disposition so that Python installs its Ctrl-C handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DEDUP, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_sigint,
    )


def hash_campaign(runs: int, sig: signal.Signals, rng: random.Random, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    crashes = bad_db = landed = wrong_exit = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        root.mkdir()
        total = 40 * runs
        for k in range(total):
            photo(k, 128).save(root / f"img_{k:04d}.jpg", quality=90)
        db = root / "image_database.db"
        for _ in range(runs):
            target = count(db, "embeddings") + rng.randint(1, 30)
            process = start("hash", str(root), "--workers", "0", "--batch-size", "4", env=env)
            while process.poll() is None and count(db, "embeddings") < target:
                time.sleep(0.002)
            if process.poll() is None:
                process.send_signal(sig)
                landed += 1
            _out, err = process.communicate(timeout=120)
            crashes += "Traceback" in err
            if sig == signal.SIGINT and process.returncode not in (0, 130):
                wrong_exit += 1
            bad_db += not integrity(db)
        saved = count(db, "embeddings")
        final = subprocess.run(
            [DEDUP, "hash", str(root), "--workers", "0", "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        crashes += "Traceback" in final.stderr
        with sqlite3.connect(db) as connection:
            rows, files = connection.execute(
                "SELECT COUNT(*), COUNT(DISTINCT file_id) FROM embeddings"
            ).fetchone()
    return {
        "runs": runs,
        "landed": landed,
        "crashes": crashes,
        "bad_db": bad_db,
        "wrong_exit": wrong_exit,
        "saved_before_final": saved,
        "exactly_once": rows == files == total,
        "files_lost": 0,
    }


def move_campaign(runs: int, rng: random.Random, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    crashes = bad_db = landed = lost = not_restored = 0
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "photos"
            root.mkdir()
            for k in range(8):
                photo(1000 * run + k, 96).save(root / f"img_{k}.jpg", quality=90)
                for c in range(12):
                    (root / f"copy_{k}_{c}.jpg").write_bytes((root / f"img_{k}.jpg").read_bytes())
            before = {p.name: p.read_bytes() for p in root.iterdir()}
            subprocess.run([DEDUP, "hash", str(root), "--workers", "0", "-q"], env=env, check=True)
            db = root / "image_database.db"
            process = start(
                "find",
                str(root),
                "--workers",
                "0",
                "--action",
                "move",
                "--to",
                str(Path(tmp) / "q"),
                "--yes",
                "--quiet",
                env=env,
            )
            target = rng.randint(1, 90)
            while process.poll() is None and count(db, "actions") < target:
                time.sleep(0.001)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                landed += 1
            _out, err = process.communicate(timeout=120)
            crashes += "Traceback" in err
            bad_db += not integrity(db)
            quarantined = {
                p.name: p.read_bytes() for p in (Path(tmp) / "q").rglob("*") if p.is_file()
            }
            present = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
            lost += sum(
                1 for n, b in before.items() if present.get(n) != b and quarantined.get(n) != b
            )
            undo = subprocess.run([DEDUP, "undo"], capture_output=True, text=True, env=env)
            crashes += "Traceback" in undo.stderr
            not_restored += (
                sum(1 for n, b in before.items() if (root / n).read_bytes() != b)
                if all((root / n).exists() for n in before)
                else len(before)
            )
    return {
        "runs": runs,
        "landed": landed,
        "crashes": crashes,
        "bad_db": bad_db,
        "files_lost": lost,
        "not_restored_after_undo": not_restored,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "DEDUP_STATE_DIR": state}
        for name, result in (
            ("hash-kill (SIGKILL)", hash_campaign(args.runs, signal.SIGKILL, rng, env)),
            ("hash-int (SIGINT)", hash_campaign(args.runs, signal.SIGINT, rng, env)),
            ("move-kill (SIGKILL) + undo", move_campaign(args.runs, rng, env)),
        ):
            print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
