"""One acting dedup at a time per folder: planning-and-acting is a critical section.

Two runs that plan on the same photos with different keep rules would each remove the other's
keeper. While a run plans and acts on a root it holds an exclusive ``flock`` on the root
folder itself and a shared one on every folder above it, so a run on ``/photos`` and one on
``/photos/2020`` exclude each other while runs on two unrelated folders do not. The lock
lives on the folder (not in a file we write), so it holds across databases, users and
``--db`` choices, and the kernel releases it when the process dies: a run that was killed
never blocks the next one.

Paths can hide that two roots overlap (a bind mount shows one folder at two places, and the
folders *above* each differ). So at the moment of acting each removal also takes an
exclusive lock on the very folders it touches (the copy's and the keeper's), by descriptor:
two runs can never act in one folder at once, whatever paths led them there.

Locks are keyed by the folder's identity (device, inode), so one taken again by the same
process nests (``find`` takes the root before planning, the action takes it again, a removal
takes its folder), and acquisition is all-or-nothing with retries, so runs taking several
folders in different orders cannot deadlock.
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
_Key = tuple[int, int]  # (st_dev, st_ino) of a folder
_held: dict[_Key, tuple[int, int, int]] = {}  # folder -> (fd, flock mode, depth)
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


def _open_folder(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # an unreadable ancestor: left out


def is_held_elsewhere(root: Path) -> bool:
    """Whether another process holds ``root`` right now; this process's locks do not
    count."""
    fd = _open_folder(os.path.realpath(root))
    if fd is None:
        return False
    try:
        info = os.fstat(fd)
        with _guard:
            if (info.st_dev, info.st_ino) in _held:
                return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False
    finally:
        os.close(fd)  # releases the probe's lock


@contextmanager
def acting_on(roots: Iterable[Path], timeout: float | None = None) -> Iterator[None]:
    """Hold the roots for planning and acting; waits up to ``timeout`` seconds (default:
    ``DEDUP_LOCK_TIMEOUT``, 10 s) for another run to finish, then raises ``BusyError``."""
    roots = list(roots)
    folders: list[tuple[int, int]] = []
    try:
        for path, mode in sorted(_wanted(roots).items()):
            fd = _open_folder(path)
            if fd is not None:
                folders.append((fd, mode))
        names = ", ".join(str(r) for r in roots)
        with holding(folders, timeout, names):
            yield
    finally:
        for fd, _mode in folders:
            os.close(fd)


@contextmanager
def holding_folders(fds: Iterable[int], timeout: float | None = None) -> Iterator[None]:
    """Hold the open folders ``fds`` exclusively (the folders a removal touches)."""
    with holding([(fd, fcntl.LOCK_EX) for fd in fds], timeout, "this folder"):
        yield


@contextmanager
def holding(folders: list[tuple[int, int]], timeout: float | None, names: str) -> Iterator[None]:
    """Hold ``(descriptor, mode)`` folders; the descriptors stay the caller's."""
    wait = busy_timeout_ms() / 1000 if timeout is None else timeout
    deadline = time.monotonic() + wait
    taken: list[_Key] = []
    while not _take_all(folders, taken):
        if time.monotonic() >= deadline:
            raise BusyError(
                f"another dedup run is acting on {names} (or a folder containing it); waited "
                f"{wait:g} s: try again when it has finished (DEDUP_LOCK_TIMEOUT sets the wait)"
            )
        time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        _release(taken)


def _take_all(folders: list[tuple[int, int]], taken: list[_Key]) -> bool:
    """Take every lock or none."""
    with _guard:
        for fd, mode in sorted(folders, key=lambda f: _key(f[0])):
            key = _key(fd)
            if key in _held:
                held_fd, held_mode, depth = _held[key]
                if held_mode == fcntl.LOCK_SH and mode == fcntl.LOCK_EX:
                    try:  # upgrade without waiting (flock may drop the shared lock to wait)
                        fcntl.flock(held_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        _release_locked(taken)
                        return False
                    held_mode = fcntl.LOCK_EX
                _held[key] = (held_fd, held_mode, depth + 1)
                taken.append(key)
                continue
            mine = os.dup(fd)  # our own descriptor: the lock lives exactly as long as we hold
            try:
                fcntl.flock(mine, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(mine)
                _release_locked(taken)
                return False
            except OSError:  # a file system without flock: nothing to hold
                os.close(mine)
                mine = -1
            _held[key] = (mine, mode, 1)
            taken.append(key)
    return True


def _key(fd: int) -> _Key:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _release(taken: list[_Key]) -> None:
    with _guard:
        _release_locked(taken)


def _release_locked(taken: list[_Key]) -> None:
    for key in reversed(taken):
        fd, mode, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, mode, depth - 1)
            continue
        del _held[key]
        if fd >= 0:
            os.close(fd)  # closing our descriptor releases its flock
    taken.clear()
