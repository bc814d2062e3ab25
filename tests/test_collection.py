"""FileTable: file facts in columns, a FileInfo built only for the rows asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dedup_cli.embed.collection import FileTable
from dedup_cli.store.database import StoredCollection


def table(root: Path) -> FileTable:
    return FileTable(
        root,
        StoredCollection(
            paths=["a.jpg", "sub/b.png"],
            content_hashes=["h1", None],
            ids=np.array([7, 9]),
            sizes=np.array([100, 2_000_000_000_000]),
            mtimes_ns=np.array([1, 1_700_000_000_000_000_000]),
            widths=np.array([640, -1], np.int32),
            heights=np.array([480, -1], np.int32),
            seqs=np.array([1, 2]),
            matrix=np.zeros((2, 3), np.float32),
        ),
    )


def test_rows_become_file_infos(tmp_path: Path) -> None:
    files = table(tmp_path)
    assert len(files) == 2
    a, b = files[0], files[-1]
    assert (a.path, a.absolute, a.size, a.width, a.height) == (
        "a.jpg",
        tmp_path / "a.jpg",
        100,
        640,
        480,
    )
    assert (b.content_hash, b.width, b.height, b.root) == (None, None, None, tmp_path)
    assert b.size == 2_000_000_000_000 and type(b.size) is int
    assert b.mtime_ns == 1_700_000_000_000_000_000
    assert [f.path for f in files] == ["a.jpg", "sub/b.png"] == [f.path for f in files[0:2]]
    assert [f.path for f in [*files]] == files.paths
    with pytest.raises(IndexError):
        files[2]
