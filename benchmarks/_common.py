"""Helpers shared by the benchmark scripts: machine facts, a CPU-capacity probe, tables,
and running a measurement in a fresh subprocess (so memory peaks, torch thread settings and
allocator state never leak from one case into the next)."""

from __future__ import annotations

import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    # Asked in a subprocess: importing torch here would inflate the parent's RSS, and with it
    # the ru_maxrss that every child inherits across fork + exec.
    probe = (
        "import json, torch; bf = None\n"
        "try: bf = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())\n"
        "except Exception: pass\n"
        "print(json.dumps({'torch': torch.__version__, "
        "'torch_threads': torch.get_num_threads(), 'bf16': bf}))"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        info.update(json.loads(out.strip().splitlines()[-1]))
    except (subprocess.CalledProcessError, ValueError, IndexError):
        info["torch"] = None
    try:
        import PIL

        info["pillow"] = PIL.__version__
    except ImportError:
        pass
    return info


def print_machine(info: dict[str, Any]) -> None:
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))


def _spin(seconds: float, out: Any) -> None:
    count = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10_000):
            count += 1
    out.put(count)


def cpu_capacity(seconds: float = 2.0) -> float:
    """How many CPUs' worth of work two busy processes really get (2.0 = two full cores).

    On a shared VM the second vCPU is not always there; this is printed next to every
    benchmark so that numbers from different moments can be compared honestly.
    """
    ctx = mp.get_context("fork")
    q: Any = ctx.Queue()
    p = ctx.Process(target=_spin, args=(seconds, q))
    p.start()
    p.join()
    single = q.get()
    procs = [ctx.Process(target=_spin, args=(seconds, q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    double = q.get() + q.get()
    return double / single if single else 0.0


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text (and Markdown-compatible) table."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)
    ]
    lines = [
        f"\n### {title}\n",
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for r in cells:
        lines.append(
            "| "
            + " | ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths))
            + " |"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    t = text.replace(",", "").replace("%", "").replace(".", "", 1).replace("-", "", 1)
    return t.isdigit()


def run_child(
    script: Path, payload: dict[str, Any], env: dict[str, str] | None = None, timeout: float = 900
) -> dict[str, Any]:
    """Run ``script --child JSON`` in a fresh interpreter; it prints one JSON line last."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(script), "--child", json.dumps(payload)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {payload}\n{proc.stderr[-3000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


def glibc_keep_heap() -> bool:
    """The allocator change proposed in docs/benchmarks.md: keep freed memory in the heap.

    glibc returns large freed blocks to the kernel (munmap / heap trim) and the next batch
    faults them back in page by page; with torch's per-layer activation buffers that is
    ~100k page faults per batch of 32. ``M_MMAP_MAX = 0`` keeps every allocation in the heap
    and a 1 GiB ``M_TRIM_THRESHOLD`` stops the heap top being handed back.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
