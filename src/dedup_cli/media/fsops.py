"""File operations that cannot be redirected: every path is opened folder by folder from a
trusted base with ``O_NOFOLLOW``, and the final step acts relative to that folder's
descriptor.

A check by path and a later action by path leave a window in which a folder on the way can be
swapped for a symlink, and the action then lands outside the root. Here the folder that was
checked is the folder that is acted in: ``Pinned`` holds its descriptor, and removal, linking
and renaming use ``dir_fd``. A symlink anywhere below the base fails with ``UnsafePathError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import xxhash

NAME_MAX = 255  # bytes in one file name on ext4, XFS, btrfs, APFS, NTFS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: a FIFO swapped in for a photo must not hang the run (regular files ignore it).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_READ_CHUNK = 1 << 20


class UnsafePathError(OSError):
    """A path that leaves its base: ``..``, an absolute part, or a symlink on the way."""


@dataclass(frozen=True)
class FileSnapshot:
    """What a file was when it was read through its pinned folder."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    content_hash: str


def split_relative(relative: str | PurePosixPath) -> list[str]:
    """The parts of a relative path; refuses absolute paths, ``..`` and empty names."""
    text = str(relative)
    if not text or text.startswith("/"):
        raise UnsafePathError(errno.EINVAL, "not a relative path", text)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise UnsafePathError(errno.EINVAL, "path leaves its folder", text)
    return parts


def open_base(base: Path) -> int:
    """A descriptor of a trusted base folder (the resolved root or quarantine)."""
    return os.open(str(base), _DIR_FLAGS)


def _open_dir(parent_fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            pass
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(
                exc.errno, "a folder on the path is a symlink or not a folder", name
            ) from None
        raise


class Pinned:
    """The folder that holds ``name``, open by descriptor; close it (or use ``with``)."""

    def __init__(self, base: Path | int, relative: str, *, create: bool = False) -> None:
        """``base``: a trusted folder, by path or (better: it cannot be swapped) by an open
        descriptor, which stays the caller's."""
        parts = split_relative(relative)
        self.name = parts[-1]
        self.relative = relative
        fd = os.dup(base) if isinstance(base, int) else open_base(base)
        try:
            for part in parts[:-1]:
                child = _open_dir(fd, part, create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def lstat(self) -> os.stat_result:
        """The entry itself (a symlink is reported as one, never followed)."""
        return os.stat(self.name, dir_fd=self.fd, follow_symlinks=False)

    def exists(self) -> bool:
        try:
            self.lstat()
        except FileNotFoundError:
            return False
        return True

    def snapshot(self) -> FileSnapshot:
        """Read the whole file through the pinned folder and hash what was read; a symlink
        or anything but a regular file is refused."""
        try:
            fd = os.open(self.name, _FILE_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(exc.errno, "is a symlink", self.relative) from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePathError(errno.EINVAL, "not a regular file", self.relative)
            digest = xxhash.xxh3_128()
            while chunk := os.read(fd, _READ_CHUNK):
                digest.update(chunk)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if (after.st_size, after.st_mtime_ns) != (info.st_size, info.st_mtime_ns):
            raise OSError(errno.EAGAIN, "the file changed while it was read", self.relative)
        return FileSnapshot(
            info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, digest.hexdigest()
        )

    def open_read(self) -> BinaryIO:
        """The file open for reading (never through a symlink; only a regular file)."""
        fd = os.open(self.name, _FILE_FLAGS, dir_fd=self.fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePathError(errno.EINVAL, "not a regular file", self.relative)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read_bytes(self) -> bytes:
        fd = os.open(self.name, _FILE_FLAGS, dir_fd=self.fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePathError(errno.EINVAL, "not a regular file", self.relative)
            with os.fdopen(os.dup(fd), "rb") as handle:
                return handle.read()
        finally:
            os.close(fd)

    def same_bytes(self, other: Pinned) -> bool:
        """Whether the two files hold the same bytes, compared byte for byte (a 128-bit
        hash that is not cryptographic can be made to collide on purpose)."""
        mine = os.open(self.name, _FILE_FLAGS, dir_fd=self.fd)
        try:
            theirs = os.open(other.name, _FILE_FLAGS, dir_fd=other.fd)
            try:
                while True:
                    a, b = os.read(mine, _READ_CHUNK), os.read(theirs, _READ_CHUNK)
                    while a and b and len(a) != len(b):  # short reads: top up the shorter
                        if len(a) < len(b):
                            more = os.read(mine, len(b) - len(a))
                            if not more:
                                return False
                            a += more
                        else:
                            more = os.read(theirs, len(a) - len(b))
                            if not more:
                                return False
                            b += more
                    if a != b:
                        return False
                    if not a:
                        return True
            finally:
                os.close(theirs)
        finally:
            os.close(mine)

    def is_same(self, snapshot: FileSnapshot) -> bool:
        """The entry is still the very file (inode) that was hashed, unchanged."""
        try:
            now = self.lstat()
        except OSError:
            return False
        return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == (
            snapshot.device,
            snapshot.inode,
            snapshot.size,
            snapshot.mtime_ns,
        )

    def replace_with(
        self, data: bytes, *, like: os.stat_result | None = None, mtime_ns: int | None = None
    ) -> FileSnapshot:
        """Give ``name`` these bytes whole or not at all: a temporary file in the pinned
        folder, synced, renamed over it, with the extended attributes the file had.
        ``like``: the permissions (and owner, where allowed) to keep; ``mtime_ns``: the
        modification time to give it. Returns what is there now. A file with other hard
        links is refused (``EMLINK``): a new file would leave them behind."""
        if self.exists() and self.lstat().st_nlink > 1:
            raise OSError(errno.EMLINK, "it has other hard links; rewriting would split them")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        temporary = fit_name(f".{self.name}.{os.getpid()}.dedup-tmp")
        fd = os.open(temporary, flags, 0o600, dir_fd=self.fd)
        try:
            self._copy_attributes_to(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if like is not None:
                os.fchmod(fd, like.st_mode & 0o7777)
                with contextlib.suppress(OSError):
                    os.fchown(fd, like.st_uid, like.st_gid)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temporary, dir_fd=self.fd)
            raise
        os.close(fd)
        os.replace(temporary, self.name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        os.fsync(self.fd)
        return self.snapshot()

    def _copy_attributes_to(self, fd: int) -> None:
        """The file's extended attributes (tags, comments a desktop keeps there) onto
        ``fd``. A ``user.`` attribute that cannot be set stops the rewrite; system ones the
        process may not set are left to the file system."""
        try:
            source = os.open(self.name, _FILE_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return
        try:
            try:
                names = os.listxattr(source)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    return
                raise
            for name in names:
                value = os.getxattr(source, name)
                try:
                    os.setxattr(fd, name, value)
                except OSError:
                    if name.startswith("user."):
                        raise
        finally:
            os.close(source)

    def unlink(self) -> None:
        os.unlink(self.name, dir_fd=self.fd)


def fit_name(name: str, suffix_room: int = 0) -> str:
    """``name`` shortened (stem first, by UTF-8 bytes) so that ``suffix_room`` more bytes
    still fit in one file name."""
    limit = NAME_MAX - suffix_room
    if len(os.fsencode(name)) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(os.fsencode(ext)) > 16:
        stem, ext, dot = name, "", ""
    keep = limit - len(os.fsencode(dot + ext))
    shortened = os.fsencode(stem)[: max(keep, 1)].decode("utf-8", "ignore") or "_"
    return shortened + dot + ext


def free_name(folder: Pinned | int, name: str) -> str:
    """``name`` or ``name (2).ext`` … that does not exist in ``folder``, always a legal
    length (a 255-byte name gets a shorter stem rather than an error)."""
    fd = folder.fd if isinstance(folder, Pinned) else folder
    candidate = fit_name(name)
    stem, dot, ext = candidate.rpartition(".")
    if not dot:
        stem, ext = candidate, ""
    for n in range(1, 100_000):
        if n > 1:
            tail = f" ({n})" + (f".{ext}" if dot else "")
            candidate = fit_name(stem, len(os.fsencode(tail))) + tail
        try:
            os.stat(candidate, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
    raise OSError(errno.EEXIST, "no free name", name)


def transfer(source: Pinned, target_fd: int, target_name: str, snapshot: FileSnapshot) -> None:
    """Move ``source`` to ``target_name`` in the folder ``target_fd`` without ever
    overwriting anything there, and only if ``source`` is still the file of ``snapshot``.

    A hard link then an unlink on one file system (atomic, no overwrite); across file
    systems a copy into an exclusively created file, synced, then the unlink. The copy is
    checked against the snapshot's hash before the source goes."""
    try:
        os.link(
            source.name,
            target_name,
            src_dir_fd=source.fd,
            dst_dir_fd=target_fd,
            follow_symlinks=False,
        )
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        _copy_exclusive(source, target_fd, target_name, snapshot)
    if not source.is_same(snapshot):  # replaced between the hash and the link
        os.unlink(target_name, dir_fd=target_fd)
        raise OSError(errno.EAGAIN, "the file changed at the moment of acting", source.relative)
    source.unlink()


def _copy_exclusive(
    source: Pinned, target_fd: int, target_name: str, snapshot: FileSnapshot
) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    out = os.open(target_name, flags, 0o644, dir_fd=target_fd)
    digest = xxhash.xxh3_128()
    try:
        src = os.open(source.name, _FILE_FLAGS, dir_fd=source.fd)
        try:
            while chunk := os.read(src, _READ_CHUNK):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            info = os.fstat(src)
        finally:
            os.close(src)
        os.utime(out, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.fsync(out)
    except BaseException:
        os.close(out)
        os.unlink(target_name, dir_fd=target_fd)
        raise
    os.close(out)
    if digest.hexdigest() != snapshot.content_hash:
        os.unlink(target_name, dir_fd=target_fd)
        raise OSError(errno.EAGAIN, "the file changed while it was copied", source.relative)


def write_atomic(base: Path, relative: str, data: bytes) -> None:
    """Write ``base/relative`` whole or not at all (a temporary file renamed over it), with
    every folder on the way opened without following symlinks: a ``.dedup-runs`` planted as
    a symlink cannot make dedup write elsewhere."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    with Pinned(base, relative, create=True) as folder:
        temporary = fit_name(f".{folder.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, flags, 0o644, dir_fd=folder.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, folder.name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)


def same_folder(fd: int, path: Path) -> bool:
    """The folder at ``path`` (followed now) is still the one open as ``fd``."""
    try:
        by_path = os.stat(path)
    except OSError:
        return False
    by_fd = os.fstat(fd)
    return (by_path.st_dev, by_path.st_ino) == (by_fd.st_dev, by_fd.st_ino)
