"""Re-derive from the files what the database only claims, before it can decide anything.

The database is a cache that may have come with the folder, been edited, or gone stale
without a new mtime (bit rot, a sync tool that keeps timestamps). A stored content hash may
*propose* that two files are byte-identical; before such a claim can group two files as
``exact`` (and so plan a removal without any pixel proof) both files are read again and
hashed in this run. Only files whose stored hash is shared with another file are read, so
the cost is the exact copies themselves, not the collection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dedup_cli.media.fsops import Pinned


@dataclass
class RederivedHashes:
    """How many files were read again, and how many stored hashes were wrong."""

    read: int = 0
    differed: int = 0
    unreadable: int = 0


class HashColumn(Protocol):
    """What this needs of a file table: a resolved root, relative paths, a hash list."""

    root: Path
    paths: list[str]
    content_hashes: list[str | None]


def rederive_shared_hashes(
    tables: Sequence[HashColumn], among: Collection[str] | None = None
) -> RederivedHashes:
    """Re-hash, in place, every file whose stored content hash another file shares (within
    a table or across tables); ``among``: only these stored hashes (``--new-only`` looks
    only at sets that touch a new file). A file that cannot be read gets no hash (never
    exact)."""
    report = RederivedHashes()
    read: set[tuple[int, int]] = set()
    wanted = None if among is None else set(among)
    while True:  # a corrected hash may now equal another file's stored one: read that too
        counts = Counter(h for table in tables for h in table.content_hashes if h)
        pending = [
            (t, k)
            for t, table in enumerate(tables)
            for k, stored in enumerate(table.content_hashes)
            if stored
            and counts[stored] > 1
            and (t, k) not in read
            and (wanted is None or stored in wanted)
        ]
        if not pending:
            return report
        for t, k in pending:
            read.add((t, k))
            table, stored = tables[t], tables[t].content_hashes[k]
            report.read += 1
            try:
                with Pinned(table.root, table.paths[k]) as pinned:
                    fresh: str | None = pinned.snapshot().content_hash
            except OSError:
                fresh = None
                report.unreadable += 1
            if fresh != stored:
                report.differed += fresh is not None
                table.content_hashes[k] = fresh
                if wanted is not None and fresh is not None:
                    wanted.add(fresh)
