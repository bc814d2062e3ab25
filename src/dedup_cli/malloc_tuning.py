"""glibc allocator settings for the CPU model and search loops.

glibc serves torch's large activation buffers with mmap and returns them on free, then trims
the heap top; every layer of every batch then faults its memory back in page by page (about
4,000 page faults per image for ``effnet``, half of the CPU time spent in the kernel).
Keeping freed memory in the heap makes ``embed_batch`` 2.3x faster on the CPU and removes
6 M page faults from a 100k search, with the same peak RSS (``docs/benchmarks.md``).
The settings are process-wide, so only the long CPU loops call ``keep_freed_memory``, and
``give_back_freed_memory`` ends them before the proofs: left on, the heap only grew through
the proof stage's many threads (a 100,000-photo ``find`` sat at 4 GB).
"""

from __future__ import annotations

import os
import sys
from typing import Any

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULT_MMAP_MAX = 65536
_GLIBC_DEFAULT_TRIM_THRESHOLD = 128 * 1024


def _libc() -> Any:
    """glibc, or None off Linux and on other C libraries (musl and friends)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _mallopt(option: int, value: int) -> bool:
    libc = _libc()
    try:
        return libc is not None and bool(libc.mallopt(option, value))
    except AttributeError:  # a C library without mallopt: nothing to tune
        return False


def keep_freed_memory() -> bool:
    """Stop glibc handing freed blocks back to the kernel; idempotent, a no-op off glibc."""
    return _mallopt(_M_MMAP_MAX, 0) and _mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def one_arena_environment() -> dict[str, str]:
    """Environment variables for a process whose model runs outside its main thread: a Ray
    Data actor calls its function in a thread of its own, and glibc gives each thread its own
    arena, which ``keep_freed_memory`` does not hold as it holds the main heap. Read at the
    process's start, one arena serves every thread (``effnet``, one thread, batch 32: 18.5 ms
    a photo in the main thread, 23.6 in a thread with its own arena, 18.9 with one arena).
    A value the user set is kept."""
    return {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "1")}


def default_malloc() -> bool:
    """glibc's own behaviour, for decode workers that allocate whole images and exit."""
    return _mallopt(_M_MMAP_MAX, _GLIBC_DEFAULT_MMAP_MAX) and _mallopt(
        _M_TRIM_THRESHOLD, _GLIBC_DEFAULT_TRIM_THRESHOLD
    )


def give_back_freed_memory() -> bool:
    """glibc's own behaviour again, and every whole free page handed back to the kernel:
    called when a long CPU loop is over (the search), before work that allocates in many
    threads (the proofs). A no-op off glibc."""
    if not default_malloc():
        return False
    _libc().malloc_trim(0)
    return True
