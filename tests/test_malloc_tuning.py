"""The allocator settings of the long CPU loops are undone before the proofs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dedup_cli.malloc_tuning import give_back_freed_memory, keep_freed_memory

psutil = pytest.importorskip("psutil")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_memory_kept_by_a_search_loop_is_handed_back_before_the_proofs() -> None:
    """With freed memory kept (as the search and the model keep it), a freed 400 MB block
    stays resident; ``give_back_freed_memory`` returns it. Left kept, the 100,000-photo
    find sat at 4 GB through its proofs."""
    if not keep_freed_memory():
        pytest.skip("not glibc")
    process = psutil.Process()
    try:
        before = process.memory_info().rss
        block = np.ones(400 * 2**20, dtype=np.uint8)
        assert process.memory_info().rss > before + 300 * 2**20
        del block
        kept = process.memory_info().rss
        assert kept > before + 300 * 2**20  # freed, but still held by the process
    finally:
        assert give_back_freed_memory()
    assert process.memory_info().rss < kept - 300 * 2**20
