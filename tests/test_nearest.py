"""Bounded neighbourhoods: the capped search proposes a subset of the exact answer, at most
``k`` per row, and everything where no row has more than ``k`` neighbours."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import brute_force_pairs
from dedup_cli.core.pairs import Pairs, kth_similarity
from dedup_cli.search.candidates import in_rows
from dedup_cli.search.cells import cell_join, nearest_cells, train_cells
from dedup_cli.search.exact import (
    nearest_cross_pairs,
    nearest_pairs,
    nearest_pairs_of_rows,
    undirected,
)


def clustered(seed: int, n: int, dim: int, cluster: int, spread: float) -> np.ndarray:
    """``n`` unit rows in clusters of ``cluster`` around random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // max(cluster, 1) + 1), dim))
    rows = centres[np.arange(n) // max(cluster, 1)] + rng.normal(scale=spread, size=(n, dim))
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def as_set(pairs: Pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.left.tolist(), pairs.right.tolist()))


def degrees(pairs: set[tuple[int, int]], n: int) -> np.ndarray:
    count = np.zeros(n, dtype=int)
    for a, b in pairs:
        count[a] += 1
        count[b] += 1
    return count


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 90),
    cluster=st.integers(1, 40),
    spread=st.floats(0.05, 1.0),
    k=st.integers(1, 12),
    block=st.integers(1, 50),
    threshold=st.floats(0.3, 0.98),
)
def test_bounded_search_is_a_subset_capped_per_row(
    seed: int, n: int, cluster: int, spread: float, k: int, block: int, threshold: float
) -> None:
    rows = clustered(seed, n, 16, cluster, spread)
    exact = as_set(brute_force_pairs(rows, threshold))
    found = nearest_pairs(rows, threshold, k, block=block)
    got = as_set(found)
    assert got <= exact
    assert np.all(found.left < found.right) and np.all(found.similarity >= threshold)
    # Each pair was one row's choice: no row chose more than k, so a row's pairs are at most
    # its own k plus those of the rows that chose it.
    assert len(got) <= k * n
    # A row whose neighbourhood fits (with some room for the bf16 screen near the cut) keeps
    # all of it.
    exact_degree = degrees(exact, n)
    loose = degrees(as_set(brute_force_pairs(rows, threshold - 0.03)), n)
    for a, b in exact:
        if loose[a] <= k and loose[b] <= k and exact_degree[a] and exact_degree[b]:
            assert (a, b) in got


def test_a_dense_cluster_proposes_pairs_in_proportion_to_its_rows() -> None:
    for n in (200, 400):
        rows = clustered(1, n, 32, n, 0.05)  # one cluster: every pair is in range
        assert len(brute_force_pairs(rows, 0.75)) == n * (n - 1) // 2
        found = nearest_pairs(rows, 0.75, 8)
        assert n * 8 // 2 <= len(found) <= n * 8
        # Nobody is left alone: every row keeps its own 8 nearest.
        assert np.all(degrees(as_set(found), n) >= 8)


def test_the_rows_nearest_neighbour_is_always_kept() -> None:
    rows = clustered(3, 300, 24, 300, 0.3)
    exact = brute_force_pairs(rows, 0.0)
    found = as_set(nearest_pairs(rows, 0.0, 3))
    similarity = rows @ rows.T
    np.fill_diagonal(similarity, -2)
    for i, j in enumerate(similarity.argmax(axis=1).tolist()):
        assert (min(i, j), max(i, j)) in found
    assert len(found) < len(exact) / 10


def test_new_rows_and_cross_search_are_bounded_subsets_too() -> None:
    rows = clustered(5, 240, 16, 60, 0.2)
    exact = as_set(brute_force_pairs(rows, 0.6))
    queries = np.arange(200, 240)
    some = as_set(nearest_pairs_of_rows(rows, queries, 0.6, 5))
    assert some <= exact and all(a >= 200 or b >= 200 for a, b in some)
    assert len(some) <= 5 * len(queries)
    left, right = rows[:120], rows[120:]
    across = nearest_cross_pairs(left, right, 0.6, 5)
    truth = {(a, b - 120) for a, b in exact if a < 120 <= b}
    got = as_set(across)
    assert got <= truth and len(got) <= 5 * 240
    assert all(i in {a for a, _ in got} for i, _ in truth)  # every left row with a match keeps one


def test_the_cell_join_caps_each_query_and_never_adds_a_pair() -> None:
    rows = clustered(9, 2000, 32, 400, 0.1)
    centroids = train_cells(rows, cells_per_sqrt_n=1)
    probes = nearest_cells(centroids, rows, 4)
    queries, found = cell_join(rows, probes[:, 0].copy(), np.arange(2000), probes, 0.8, None, 6)
    assert not np.any(queries == found)
    assert np.all(np.bincount(queries, minlength=2000) <= 6)
    left, right = undirected(queries, found)
    exact = as_set(brute_force_pairs(rows, 0.8))
    assert set(zip(left.tolist(), right.tolist())) <= exact | {
        (a, b) for a, b in zip(left.tolist(), right.tolist()) if rows[a] @ rows[b] >= 0.78
    }


def test_kth_similarity_is_the_kth_best_of_a_full_neighbourhood() -> None:
    pairs = Pairs(
        np.array([0, 0, 0, 1], dtype=np.int64),
        np.array([1, 2, 3, 2], dtype=np.int64),
        np.array([0.9, 0.8, 0.95, 0.85], dtype=np.float32),
    )
    level = kth_similarity(pairs, 5, 3)
    assert level[0] == np.float32(0.8)  # 0.95, 0.9, 0.8
    assert np.isneginf(level[1]) and np.isneginf(level[2])  # two pairs each: not full
    assert np.isneginf(level[3]) and np.isneginf(level[4])
    assert np.isneginf(kth_similarity(pairs, 5, 3, side="right")[2])


def test_pairs_found_among_some_rows_are_numbered_as_rows_of_the_whole() -> None:
    pairs = Pairs(np.array([0, 1]), np.array([2, 2]), np.array([0.9, 0.8], dtype=np.float32))
    whole = in_rows(pairs, np.array([7, 3, 5]))
    assert list(zip(whole.left.tolist(), whole.right.tolist())) == [(3, 5), (5, 7)]
    assert whole.similarity.tolist() == [np.float32(0.8), np.float32(0.9)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 90),
    cluster=st.integers(1, 40),
    spread=st.floats(0.05, 1.0),
    k=st.integers(1, 12),
    threshold=st.floats(0.3, 0.98),
)
def test_the_torch_free_search_of_a_small_collection_is_the_same_search(
    seed: int, n: int, cluster: int, spread: float, k: int, threshold: float
) -> None:
    """``nearest_pairs_small`` (faiss k-NN, what ``find`` runs below 50,000 files without
    starting torch) returns the pairs ``nearest_pairs`` does: each row's k nearest at or
    above the threshold, a subset of the exact answer. Rows with a tie at the k-th place
    may pick different neighbours; away from ties the two agree pair for pair."""
    from dedup_cli.search.nearest import nearest_pairs_small

    rows = clustered(seed, n, 16, cluster, spread)
    small = nearest_pairs_small(rows, threshold, k)
    torch_pairs = as_set(nearest_pairs(rows, threshold, k))
    got = as_set(small)
    assert got <= as_set(brute_force_pairs(rows, threshold))
    assert np.all(small.left < small.right) and np.all(small.similarity >= threshold)
    similarity = rows @ rows.T if n else np.zeros((0, 0))
    for a, b in got ^ torch_pairs:
        # A pair only one of the two proposes sits where a row's k-th and (k+1)-th
        # neighbours are all but tied (float32 against the bf16 screen re-scored).
        for owner in (a, b):
            ranked = np.sort(np.delete(similarity[owner], owner))[::-1]
            if len(ranked) > k:
                assert ranked[k - 1] - ranked[k] < 1e-2 or ranked[k] < threshold + 1e-2


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 70),
    m=st.integers(0, 70),
    spread=st.floats(0.05, 1.0),
    k=st.integers(1, 12),
    threshold=st.floats(0.3, 0.98),
)
def test_the_torch_free_cross_search_is_the_same_search(
    seed: int, n: int, m: int, spread: float, k: int, threshold: float
) -> None:
    """``nearest_cross_pairs_small`` (faiss k-NN both ways, what ``cross`` runs on two small
    folders without torch) returns what ``nearest_cross_pairs`` does, away from ties at the
    k-th place, and never a pair below the threshold."""
    from dedup_cli.search.nearest import nearest_cross_pairs_small

    rows = clustered(seed, n + m, 16, 8, spread)
    left, right = rows[:n], rows[n:]
    small = nearest_cross_pairs_small(left, right, threshold, k)
    got = {(int(i), int(j)) for i, j in zip(small.left, small.right)}
    reference = nearest_cross_pairs(left, right, threshold, k)
    expected = {(int(i), int(j)) for i, j in zip(reference.left, reference.right)}
    assert np.all(small.similarity >= threshold)
    assert len(got) == len(small)  # no pair twice
    similarity = left @ right.T if n and m else np.zeros((n, m))
    assert all(similarity[i, j] >= threshold - 1e-5 for i, j in got)
    for i, j in got ^ expected:
        near_tie = False
        for ranked in (np.sort(similarity[i])[::-1], np.sort(similarity[:, j])[::-1]):
            if len(ranked) > k:
                near_tie |= ranked[k - 1] - ranked[k] < 1e-2 or ranked[k] < threshold + 1e-2
        assert near_tie, (i, j)


@pytest.mark.parametrize("command", ["find", "cross"])
def test_a_job_on_hashed_folders_never_starts_torch(
    library: Path, tmp_path: Path, command: str
) -> None:
    import subprocess
    import sys

    from typer.testing import CliRunner

    from dedup_cli.cli import app

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(library / "coffee.jpg", other / "coffee_too.jpg")
    for folder in (library, other):
        hashed = CliRunner().invoke(app, ["hash", str(folder), "--workers", "0", "-q"])
        assert hashed.exit_code == 0
    folders = [str(library)] if command == "find" else [str(library), str(other)]
    script = (
        "import sys\n"
        "from dedup_cli.cli import app\n"
        "try:\n"
        "    app([*sys.argv[1:], '--json', '--workers', '0'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print('TORCH', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, command, *folders],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "TORCH False" in done.stderr, done.stderr[-2000:]
    assert '"groups"' in done.stdout


def test_the_bounded_searches_merge_where_they_multiply(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a GPU a block of scores is rows x N: copied to the host block by block it costs more
    # than the products (1M x 768 on an H200 never finished). Only each search's final table
    # of k + slack best per row may cross to the host.
    import torch

    moved: list[int] = []
    host = torch.Tensor.cpu

    def noting(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        moved.append(self.numel())
        return host(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.Tensor, "cpu", noting)
    rows = clustered(5, 600, 16, 30, 0.3)
    table = 600 * (4 + 8)  # rows x (neighbours + SCREEN_SLACK)
    assert len(nearest_pairs(rows, 0.6, 4, block=64)) > 0
    assert moved and max(moved) <= table
    moved.clear()
    nearest_pairs_of_rows(rows, np.arange(100), 0.6, 4, block=64)
    assert moved and max(moved) <= table
    moved.clear()
    nearest_cross_pairs(rows[:300], rows[300:], 0.6, 4, block=64)
    assert moved and max(moved) <= table


def test_only_a_cuda_search_merges_on_its_device() -> None:
    import torch

    from dedup_cli.search.exact import merge_device

    assert merge_device(torch.device("cuda:1")) == torch.device("cuda:1")
    # MPS shares memory with the host, and its top-k took at most 16 in earlier releases.
    assert merge_device(torch.device("mps")) == torch.device("cpu")
    assert merge_device(torch.device("cpu")) == torch.device("cpu")
