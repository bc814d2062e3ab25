from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import brute_force_pairs
from dedup_cli.search.exact import block_rows, similar_pairs


def unit_rows(seed: int, n: int, dim: int, planted: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    for k in range(min(planted, n // 2)):  # near copies of earlier rows
        vectors[n - 1 - k] = vectors[k] + rng.normal(scale=0.05, size=dim)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def as_set(pairs, margin_from: float | None = None, vectors=None):  # type: ignore[no-untyped-def]
    out = set()
    for a, b, s in zip(pairs.left.tolist(), pairs.right.tolist(), pairs.similarity.tolist()):
        if margin_from is not None and abs(s - margin_from) < 1e-5:
            continue
        out.add((a, b))
    return out


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 70),
    dim=st.integers(2, 24),
    block=st.integers(1, 80),
    threshold=st.floats(0.0, 0.999),
    planted=st.integers(0, 10),
    precision=st.sampled_from(["fp32", "bf16", "auto"]),
)
def test_chunked_search_equals_brute_force(
    seed: int, n: int, dim: int, block: int, threshold: float, planted: int, precision: str
) -> None:
    """Reduced-precision screening is re-scored exactly: same pairs as brute force."""
    vectors = unit_rows(seed, n, dim, planted)
    chunked = similar_pairs(vectors, threshold, block=block, screen_precision=precision)
    reference = brute_force_pairs(vectors, threshold)
    # Pairs within float rounding of the threshold may legitimately differ.
    assert as_set(chunked, threshold) == as_set(reference, threshold)
    assert np.all(chunked.left < chunked.right)
    assert np.all(chunked.similarity >= threshold)
    np.testing.assert_allclose(
        chunked.similarity,
        np.einsum("ij,ij->i", vectors[chunked.left], vectors[chunked.right]),
        atol=1e-5,
    )


def test_planted_copies_are_found() -> None:
    vectors = unit_rows(7, 500, 64, planted=20)
    pairs = as_set(similar_pairs(vectors, 0.95, block=37))
    assert {(k, 499 - k) for k in range(20)} <= pairs


def test_block_rows_bounds_memory() -> None:
    assert block_rows(1_000_000, 256 * 1024 * 1024) * 1_000_000 * 4 <= 256 * 1024 * 1024
    assert block_rows(10) == 8192


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_precision_gpu_search_is_rescored_exactly() -> None:
    vectors = unit_rows(3, 3000, 128, planted=50)
    cpu = similar_pairs(vectors, 0.9)
    gpu = similar_pairs(vectors, 0.9, device=torch.device("cuda"))
    assert as_set(cpu, 0.9) == as_set(gpu, 0.9)
    np.testing.assert_allclose(cpu.similarity, gpu.similarity, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bounded_gpu_searches_merge_on_the_device_and_find_the_cpu_pairs() -> None:
    from dedup_cli.search.exact import nearest_cross_pairs, nearest_pairs, nearest_pairs_of_rows

    vectors = unit_rows(3, 3000, 128, planted=50)
    cuda = torch.device("cuda")
    for search in (
        lambda device: nearest_pairs(vectors, 0.9, 4, block=256, device=device),
        lambda device: nearest_pairs_of_rows(vectors, np.arange(500), 0.9, 4, device=device),
        lambda device: nearest_cross_pairs(vectors[:1500], vectors[1500:], 0.9, 4, device=device),
    ):
        cpu, gpu = search(None), search(cuda)
        assert as_set(cpu, 0.9) == as_set(gpu, 0.9)
        np.testing.assert_allclose(cpu.similarity, gpu.similarity, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_half_precision_matrix_is_searched_without_widening_it_whole(precision: str) -> None:
    """A large collection is held in float16; search and re-scoring use its values
    (widened a slice at a time), so the pairs are those of the float16 rows."""
    vectors = unit_rows(3, 400, 48, planted=30).astype(np.float16)
    widened = vectors.astype(np.float32)
    found = similar_pairs(vectors, 0.9, block=64, screen_precision=precision)
    assert as_set(found, 0.9) == as_set(brute_force_pairs(widened, 0.9), 0.9)
    assert len(found) >= 30
    np.testing.assert_allclose(
        found.similarity,
        np.einsum("ij,ij->i", widened[found.left], widened[found.right]),
        atol=1e-6,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_pairs_of_rows_are_the_pairs_that_touch_them(dtype: type) -> None:
    """``find --new-only``: every pair with at least one of the given rows, none other."""
    from dedup_cli.search.exact import pairs_of_rows

    vectors = unit_rows(5, 300, 32, planted=40).astype(dtype)
    rows = np.array([0, 3, 7, 259, 260, 299, 150])
    everything = brute_force_pairs(vectors.astype(np.float32), 0.9)
    expected = {p for p in as_set(everything, 0.9) if p[0] in rows or p[1] in rows}
    found = pairs_of_rows(vectors, rows, 0.9, block=50)
    assert as_set(found, 0.9) == expected and len(expected) >= 4
    assert list(zip(found.left.tolist(), found.right.tolist())) == sorted(as_set(found))
