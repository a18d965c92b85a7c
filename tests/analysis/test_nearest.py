"""Exact k-NN: both backends equal numpy brute force; a planted copy is its own nearest neighbour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcgan_viz.analysis.nearest import NearestIndex, faiss_available, open_index, pixel_features

torch.set_num_threads(1)


def _brute(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(((queries[:, None, :].astype(np.float64) - base[None].astype(np.float64)) ** 2).sum(-1))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, 1)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(500, 24)).astype(np.float32), rng.normal(size=(40, 24)).astype(np.float32)


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=pytest.mark.skipif(
    not faiss_available(), reason="faiss not installed"))])
def test_exact_matches_brute_force(backend: str) -> None:
    base, queries = _data()
    got = NearestIndex(base, backend).search(queries, 5)
    idx, dist = _brute(base, queries, 5)
    np.testing.assert_array_equal(got.indices, idx)
    np.testing.assert_allclose(got.distances, dist, rtol=1e-5)


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed")
def test_faiss_equals_torch_including_ties_and_exact_ivf() -> None:
    base, queries = _data(1)
    base[100:110] = base[5]  # ties: lower index must win in both backends
    queries[:3] = base[5]
    a = NearestIndex(base, "torch").search(queries, 4)
    b = NearestIndex(base, "faiss").search(queries, 4)
    c = NearestIndex(base, "faiss", ivf_lists=4, nprobe=4).search(queries, 4)
    for other in (b, c):
        np.testing.assert_array_equal(a.indices, other.indices)
        np.testing.assert_array_equal(a.distances, other.distances)
    np.testing.assert_array_equal(a.indices[0], [5, 100, 101, 102])


def test_copy_found_distinct_not(tmp_path) -> None:
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, size=(64, 32, 32, 1), dtype=np.uint8)
    index = open_index(tmp_path, "px", lambda: pixel_features(train, 8), "torch", data="t")
    copies = pixel_features(train[[3, 7]], 8)
    fresh = pixel_features(rng.integers(0, 256, size=(2, 32, 32, 1), dtype=np.uint8), 8)
    found = index.search(np.concatenate([copies, fresh]), 1)
    np.testing.assert_array_equal(found.indices[:2, 0], [3, 7])
    assert found.distances[:2, 0].max() == 0 and found.distances[2:, 0].min() > 0.5
    again = open_index(tmp_path, "px", lambda: pytest.fail("cache miss"), "torch", data="t")
    np.testing.assert_array_equal(again.base, index.base)
