"""glibc allocator settings for the CPU model and search loops.

glibc serves torch's large activation buffers with mmap and returns them on free, then trims
the heap top; every layer of every batch then faults its memory back in page by page (about
4,000 page faults per image for ``effnet``, half of the CPU time spent in the kernel).
Keeping freed memory in the heap makes ``embed_batch`` 2.3x faster on the CPU and removes
6 M page faults from a 100k search, with the same peak RSS (``docs/benchmarks.md``).
The settings are process-wide, so only the long CPU loops call ``keep_freed_memory``.
"""

from __future__ import annotations

import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULT_MMAP_MAX = 65536
_GLIBC_DEFAULT_TRIM_THRESHOLD = 128 * 1024


def _mallopt(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(option, value))
    except (OSError, AttributeError):  # musl and friends: nothing to tune
        return False


def keep_freed_memory() -> bool:
    """Stop glibc handing freed blocks back to the kernel; idempotent, a no-op off glibc."""
    return _mallopt(_M_MMAP_MAX, 0) and _mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def default_malloc() -> bool:
    """glibc's own behaviour, for decode workers that allocate whole images and exit."""
    return _mallopt(_M_MMAP_MAX, _GLIBC_DEFAULT_MMAP_MAX) and _mallopt(
        _M_TRIM_THRESHOLD, _GLIBC_DEFAULT_TRIM_THRESHOLD
    )
