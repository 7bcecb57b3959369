"""Recall@10 of the IVF store against exact search, for several probe counts (docs/performance.md).

`.venv/bin/python eval/ivf_probes.py INDEX_DIR [SIZES] [sentences]` tiles the passage (or sentence) vectors
of a built index (e.g. one that `qa eval ../shared/eval/piaf-dev.json` cached under var/cache/eval/) to each size as
`qa bench` does (noisy copies), stores them as `qa build` would, and asks the bench's 600 latency
questions (PIAF, XQuAD en and es) with 1/48, 1/24, 1/18 and 1/12 of the lists probed, and with
the default (`FaissVectorStore.approximate`). SIZES defaults to 50000,100000,1000000.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from index.evaluation.datasets import squad_documents
from index.models.encoders import load_encoder
from index.storage.store import read_index, resolve_live
from index.storage.vectorstore import FaissVectorStore
from service.bench.run import EVAL, SIGMA, latency_questions
from service.bench.scale import perturbed

K = 10


def exact_top(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The ids of each query's K best vectors by inner product, in blocks of 100 queries."""
    tops = []
    for at in range(0, len(queries), 100):
        scores = queries[at : at + 100] @ vectors.T
        tops.append(np.argpartition(-scores, K - 1, axis=1)[:, :K])
    return np.concatenate(tops)


def probe_table(base: np.ndarray, queries: np.ndarray, size: int) -> list[str]:
    """One markdown row per probe count at ``size`` vectors."""
    rng = np.random.default_rng(1)
    vectors = perturbed(base, 0, max(1, round(size / len(base))), SIGMA, rng)
    truth = exact_top(queries, vectors)
    store = FaissVectorStore.approximate(vectors[rng.permutation(len(vectors))[:200_000]], total=len(vectors))
    store.add(np.arange(len(vectors)), vectors)
    index, default = store.faiss_index, store.faiss_index.nprobe
    rows = []
    for nprobe in sorted({default, *(max(1, index.nlist // share) for share in (48, 24, 18, 12))}):
        index.nprobe = nprobe
        began = time.perf_counter()
        for query in queries[:300]:
            store.search(query[None, :], K)
        ms = (time.perf_counter() - began) / 300 * 1000
        found = store.search(queries, K)[1]
        recall = np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)])
        mark = " (default)" if nprobe == default else ""
        rows.append(f"| {len(vectors):,} | {index.nlist} | {nprobe}{mark} | {recall:.3f} | {ms:.2f} |")
    return rows


def main(folder: Path, sizes: list[int], table: str) -> None:
    data = read_index(resolve_live(folder))
    encoder = load_encoder(data.manifest.settings.model)
    _, piaf = squad_documents(EVAL / "piaf-dev.json")
    questions, _ = latency_questions(piaf, (400, 100, 100))
    queries = encoder.encode_queries(questions).astype(np.float32)
    spans, vectors = (
        (data.sentences, data.sentence_vectors) if table == "sentences" else (data.chunks, data.chunk_vectors)
    )
    base = vectors.get(spans.ids).astype(np.float32)
    print(f"{data.manifest.settings.model}, {table}, {len(questions)} questions\n")
    print("| vectors | lists | probed | recall@10 | ms per search (mean of 300) |\n|---|---|---|---|---|")
    for size in sizes:
        print("\n".join(probe_table(base, queries, size)), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sizes = sys.argv[2] if len(sys.argv) > 2 else "50000,100000,1000000"
    main(Path(sys.argv[1]), [int(s) for s in sizes.split(",")], sys.argv[3] if len(sys.argv) > 3 else "passages")
