"""Approximate search: every pair it returns is exact, and it finds (nearly) all of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import brute_force_pairs
from dedup_cli.cli import app
from dedup_cli.search.cells import ann_pairs
from dedup_cli.search.exact import similar_pairs


def planted(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    for k in range(0, n // 10):  # 10% of rows are near copies, cosine 0.76-0.99
        i, j = 2 * k, 2 * k + 1
        cosine = rng.uniform(0.76, 0.99)
        noise = rng.standard_normal(dim).astype(np.float32)
        noise -= (noise @ rows[i]) * rows[i]
        noise /= np.linalg.norm(noise)
        rows[j] = cosine * rows[i] + np.sqrt(1 - cosine**2) * noise
    return rows


def as_set(pairs) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    return set(zip(pairs.left.tolist(), pairs.right.tolist()))


def test_ann_returns_exact_pairs_with_high_recall() -> None:
    rows = planted(20_000, 256)
    exact = similar_pairs(rows, 0.75)
    approximate = ann_pairs(rows, 0.75)
    found, truth = as_set(approximate), as_set(exact)
    assert found <= truth  # never a pair exact search would not return
    assert len(found & truth) / len(truth) >= 0.99
    assert len(truth) >= 1000
    # Scores are the exact float32 cosines, sorted by (i, j) like exact search.
    index = {p: k for k, p in enumerate(zip(exact.left.tolist(), exact.right.tolist()))}
    for k, p in enumerate(zip(approximate.left.tolist(), approximate.right.tolist())):
        assert abs(float(approximate.similarity[k]) - float(exact.similarity[index[p]])) < 1e-5
    assert list(zip(approximate.left, approximate.right)) == sorted(found)


def test_ann_on_tiny_and_degenerate_inputs() -> None:
    assert len(ann_pairs(np.zeros((1, 8), np.float32), 0.5)) == 0
    rows = planted(40, 16)
    assert as_set(ann_pairs(rows, 0.75)) == as_set(brute_force_pairs(rows, 0.75))


def test_index_choice() -> None:
    from dedup_cli.search.candidates import ANN_CUTOVER, choose_index

    assert ANN_CUTOVER is not None
    assert choose_index("auto", 2_000, None) == "exact"  # small: exact
    assert choose_index("auto", ANN_CUTOVER, None) == "ann"
    assert choose_index("auto", ANN_CUTOVER, torch_device("cuda")) == "exact"  # GPU: exact
    assert choose_index("ann", 10, None) == "ann" and choose_index("exact", 10**7, None) == "exact"
    with pytest.raises(Exception, match="--index must be one of"):
        choose_index("hnsw", 10, None)


def torch_device(kind: str):  # type: ignore[no-untyped-def]
    import torch

    return torch.device(kind)


def test_find_with_the_approximate_index_groups_the_same(library: Path) -> None:
    runner = CliRunner()

    def groups(*extra: str) -> list:  # type: ignore[type-arg]
        result = runner.invoke(app, ["find", str(library), "--json", "--workers", "0", *extra])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["groups"]  # type: ignore[no-any-return]

    assert groups("--index", "ann") == groups("--index", "exact")


def test_a_pair_found_from_either_row_counts() -> None:
    """Rows 10 and 11: 10 finds only itself, 11 finds 3 and 10. The pair (3, 11) was found
    only from its larger row; it must be kept (it was dropped once)."""
    from dedup_cli.search.cells import undirected

    queries = np.array([10, 11, 11], dtype=np.int64)
    found = np.array([10, 3, 10], dtype=np.int64)
    left, right = undirected(queries, found)
    assert sorted(zip(left.tolist(), right.tolist())) == [(3, 11), (10, 11)]


def test_ann_takes_a_half_precision_matrix() -> None:
    rows = planted(5_000, 64).astype(np.float16)
    truth = as_set(brute_force_pairs(rows.astype(np.float32), 0.8))
    found = as_set(ann_pairs(rows, 0.8))
    assert found <= truth and len(found) / len(truth) >= 0.99 and len(truth) >= 300


def test_find_on_a_half_precision_collection_groups_the_same(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``HALF_PRECISION_ABOVE_BYTES`` the matrix is float16; the groups do not change."""
    import dedup_cli.embed.collection as collection

    runner = CliRunner()
    args = ["find", str(library), "--json", "--workers", "0"]
    full = runner.invoke(app, args)
    monkeypatch.setattr(collection, "HALF_PRECISION_ABOVE_BYTES", 0)
    loaded: list[np.dtype] = []
    original = collection.Store.read_collection

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        result = original(self, *a, **k)
        loaded.append(result.matrix.dtype)
        return result

    monkeypatch.setattr(collection.Store, "read_collection", spy)
    half = runner.invoke(app, args)
    assert full.exit_code == 0 == half.exit_code, half.stderr
    assert loaded == [np.dtype(np.float16)]
    half_groups, full_groups = json.loads(half.stdout)["groups"], json.loads(full.stdout)["groups"]
    strip = lambda gs: [  # noqa: E731
        {k: v for k, v in g.items() if "similar" not in k and k != "remove_files"} for g in gs
    ]
    assert full_groups and strip(half_groups) == strip(full_groups)
    removals = [
        (f, r)
        for g, h in zip(half_groups, full_groups)
        for f, r in zip(g["remove_files"], h["remove_files"])
    ]
    assert len(removals) == sum(len(g["remove_files"]) for g in full_groups)
    for f, r in removals:
        assert (f["path"], f["method"]) == (r["path"], r["method"])
        assert abs(f["similarity"] - r["similarity"]) < 0.002


def test_ann_between_two_collections_returns_exact_cross_pairs() -> None:
    from dedup_cli.search.cells import ann_cross_pairs

    def cross_pairs(left: np.ndarray, right: np.ndarray, threshold: float) -> set[tuple[int, int]]:
        scores = left.astype(np.float64) @ right.astype(np.float64).T
        return {(int(i), int(j)) for i, j in zip(*np.nonzero(scores >= threshold))}

    rows = planted(6_000, 64, seed=4)
    a, b = rows[0::2], rows[1::2]  # each planted pair is split across the two sides
    truth = cross_pairs(a, b, 0.8)
    for left, right in ((a, b[:500]), (a[:500], b), (b, a[:700])):  # either side larger
        found = ann_cross_pairs(left, right, 0.8)
        exact = cross_pairs(left, right, 0.8)
        assert as_set(found) <= exact and len(as_set(found)) >= 0.99 * len(exact)
        assert list(zip(found.left.tolist(), found.right.tolist())) == sorted(as_set(found))
    assert len(truth) >= 250


def test_cross_with_the_approximate_index_groups_the_same(tmp_path: Path, library: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(library / "trip", other)
    runner = CliRunner()

    def cross(index: str) -> dict:  # type: ignore[type-arg]
        args = ["cross", str(library), str(other), "--json", "--workers", "0", "--index", index]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    exact, approximate = cross("exact"), cross("ann")
    assert (exact["stats"]["index"], approximate["stats"]["index"]) == ("exact", "ann")
    assert approximate["groups"] == exact["groups"] and len(exact["groups"]) >= 3


def test_new_rows_look_in_more_cells_when_they_are_few() -> None:
    from dedup_cli.search.cells import NEW_ONLY_NPROBE, new_only_probes

    assert new_only_probes(1, 1_000_000, 4000) == 4000  # one new file: against everything
    assert new_only_probes(1000, 1_000_000, 4000) == 2000  # half the collection each
    assert new_only_probes(100_000, 1_000_000, 4000) == NEW_ONLY_NPROBE  # the floor
    assert new_only_probes(10, 100, 2) == 2


def test_padding_rounds_shapes_up_and_keeps_the_rows() -> None:
    """oneDNN keeps one primitive per matrix shape: the cell join rounds its shapes up so
    a million-row join does not hold 1.4 GB of them (padding rows are dropped again)."""
    from dedup_cli.search.cells import _padded

    rows = np.array([7, 3, 9], dtype=np.int64)
    padded = _padded(rows, 4)
    assert padded.tolist() == [7, 3, 9, 7] and padded.dtype == np.int64
    assert _padded(np.arange(8), 4).tolist() == list(range(8))
    assert len(_padded(np.arange(300), 256)) == 512


def test_the_cell_join_reads_a_read_only_matrix_in_place() -> None:
    """Vectors shared from Ray's object store (or loaded read-only) are not copied by each
    join: a copy per task was the whole matrix again."""
    from dedup_cli.search.cells import _tensor

    rows = np.ones((1000, 8), dtype=np.float32)
    rows.flags.writeable = False
    assert _tensor(rows).data_ptr() == rows.ctypes.data
