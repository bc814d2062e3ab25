"""One acting dedup at a time per folder tree: planning-and-acting is a critical section.

Two runs that plan on the same photos with different keep rules would each remove the other's
keeper. While a run plans and acts on a root it holds an exclusive ``flock`` on the root
folder itself and a shared one on every folder above it, so a run on ``/photos`` and one on
``/photos/2020`` exclude each other while runs on two unrelated folders do not. The lock
lives on the folder (not in a file we write), so it holds across databases, users and
``--db`` choices, and it is released by the kernel when the process dies: a run that was
killed never blocks the next one.

Locks taken again by the same process nest (``find`` takes it before planning, the action
takes it again), and acquisition is all-or-nothing with retries, so two runs taking several
roots in different orders cannot deadlock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dedup_cli.errors import DedupError
from dedup_cli.store.database import busy_timeout_ms

_POLL_SECONDS = 0.05
_held: dict[str, tuple[int, int, int]] = {}  # real path -> (fd, flock mode, depth)
_guard = threading.Lock()


class BusyError(DedupError):
    """Another dedup run holds the folder."""


def _wanted(roots: Iterable[Path]) -> dict[str, int]:
    """Every folder to lock and how: the roots exclusively, their ancestors shared."""
    wanted: dict[str, int] = {}
    for root in roots:
        real = Path(os.path.realpath(root))
        wanted[str(real)] = fcntl.LOCK_EX
        for parent in real.parents:
            wanted.setdefault(str(parent), fcntl.LOCK_SH)
    return wanted


def _try_lock(path: str, mode: int) -> int | None:
    """An open descriptor holding ``mode`` on ``path``, None when another process holds
    it, or -1 when the folder cannot be opened (an unreadable ancestor: left out)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return -1
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:  # a file system without flock: nothing to hold
        os.close(fd)
        return -1
    return fd


def is_held_elsewhere(root: Path) -> bool:
    """Whether another process holds ``root`` (or a folder above or below that it
    locks) right now; this process's own locks do not count."""
    real = os.path.realpath(root)
    with _guard:
        if real in _held:
            return False
    fd = _try_lock(real, fcntl.LOCK_EX)
    if fd is None:
        return True
    if fd >= 0:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return False


@contextmanager
def acting_on(roots: Iterable[Path], timeout: float | None = None) -> Iterator[None]:
    """Hold the roots for planning and acting; waits up to ``timeout`` seconds (default:
    ``DEDUP_LOCK_TIMEOUT``, 10 s) for another run to finish, then raises ``BusyError``."""
    roots = list(roots)
    wanted = _wanted(roots)
    wait = busy_timeout_ms() / 1000 if timeout is None else timeout
    deadline = time.monotonic() + wait
    taken: list[str] = []
    while True:
        blocked = _take_all(wanted, taken)
        if blocked is None:
            break
        if time.monotonic() >= deadline:
            names = ", ".join(str(r) for r in roots)
            raise BusyError(
                f"another dedup run is acting on {names} (or a folder containing it); waited "
                f"{wait:g} s: try again when it has finished (DEDUP_LOCK_TIMEOUT sets the wait)"
            )
        time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        _release(taken)


def _take_all(wanted: dict[str, int], taken: list[str]) -> str | None:
    """Take every lock or none; the path that was busy, or None when all are held."""
    with _guard:
        for path in sorted(wanted):
            mode = wanted[path]
            if path in _held:
                fd, held_mode, depth = _held[path]
                if held_mode == fcntl.LOCK_SH and mode == fcntl.LOCK_EX:
                    try:  # upgrade; flock may drop the shared lock while it waits: no wait
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        _release_locked(taken)
                        return path
                    held_mode = fcntl.LOCK_EX
                _held[path] = (fd, held_mode, depth + 1)
                taken.append(path)
                continue
            fd_or_none = _try_lock(path, mode)
            if fd_or_none is None:
                _release_locked(taken)
                return path
            _held[path] = (fd_or_none, mode, 1)
            taken.append(path)
    return None


def _release(taken: list[str]) -> None:
    with _guard:
        _release_locked(taken)


def _release_locked(taken: list[str]) -> None:
    for path in reversed(taken):
        fd, mode, depth = _held[path]
        if depth > 1:
            _held[path] = (fd, mode, depth - 1)
            continue
        del _held[path]
        if fd >= 0:
            os.close(fd)  # closing the descriptor releases its flock
    taken.clear()
