"""One shared test suite, run against every vector store backend."""

from __future__ import annotations

import numpy as np
import pytest

import index.storage.vectorstore as vectorstore
from index.storage.vectorstore import FaissVectorStore, NumpyVectorStore, load_vector_store, new_vector_store

DIM = 32


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


VECTORS = unit_vectors(2000)


def make_exact():
    return FaissVectorStore.exact(DIM)


def make_ivf():
    return FaissVectorStore.approximate(VECTORS, nprobe=64)


def make_numpy():
    return NumpyVectorStore(DIM)


@pytest.fixture(params=[make_exact, make_ivf, make_numpy], ids=["faiss-flat", "faiss-ivf-sq8", "numpy"])
def store(request):
    return request.param()


def test_search_finds_each_vector_itself(store):
    ids = np.arange(1000, 3000, dtype=np.int64)
    store.add(ids, VECTORS)
    assert len(store) == 2000
    scores, found = store.search(VECTORS[:50], 5)
    assert (found[:, 0] == ids[:50]).mean() >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-5)  # best first


def test_removed_ids_are_never_returned(store):
    ids = np.arange(2000, dtype=np.int64)
    store.add(ids, VECTORS)
    removed = store.remove(np.arange(0, 2000, 2))
    assert removed == 1000 and len(store) == 1000
    _, found = store.search(VECTORS[:20], 10)
    assert not np.isin(found[found >= 0], np.arange(0, 2000, 2)).any()


def test_get_returns_stored_vectors(store):
    store.add(np.array([7, 9]), VECTORS[:2])
    got = store.get(np.array([9, 7]))
    assert np.allclose(got, VECTORS[[1, 0]], atol=0.05)


def test_save_and_load_round_trip(store, tmp_path):
    store.add(np.arange(500), VECTORS[:500])
    store.save(tmp_path)
    loaded = load_vector_store(tmp_path)
    assert len(loaded) == 500
    assert np.array_equal(loaded.search(VECTORS[:5], 3)[1], store.search(VECTORS[:5], 3)[1])


def test_small_stores_search_exactly_and_large_ones_approximately():
    assert new_vector_store(VECTORS, ann_threshold=10_000).kind == "flat"
    assert new_vector_store(VECTORS, ann_threshold=1_000).kind == "ivf-sq8"


@pytest.mark.parametrize("exact_rows", [0, 10_000], ids=["id-selector", "exact-subset"])
@pytest.mark.parametrize("kept", [5, 40, 1200])
def test_search_subset_returns_only_subset_ids_and_k_of_them(store, kept, exact_rows, monkeypatch):
    monkeypatch.setattr(vectorstore, "EXACT_SUBSET_ROWS", exact_rows)
    ids = np.arange(1000, 3000, dtype=np.int64)
    store.add(ids, VECTORS)
    subset = vectorstore.IdSubset(np.random.default_rng(1).choice(ids, kept, replace=False), len(ids))
    for query in VECTORS[:5]:
        scores, found = store.search_subset(query, 30, subset)
        assert found.shape == (1, min(30, kept)) and np.isin(found, subset.ids).all()
        assert np.all(np.diff(scores[0]) <= 1e-5)  # best first
        assert np.allclose(scores[0], store.get(found[0]) @ query, atol=0.02)
    assert store.search_subset(VECTORS[0], 30, vectorstore.IdSubset(np.zeros(0, dtype=np.int64), 2000))[1].size == 0
