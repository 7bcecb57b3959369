"""Synthetic large indexes for the benchmark, and the in-process measurements made on them.

A real index of a few hundred chunks is tiled ``copies`` times: every copy
repeats the documents (new ids, same text) and their span tables. Copy 0 keeps
the real vectors; the other copies get each vector plus gaussian noise
(``sigma`` per dimension), L2-normalised again. The BM25 matrix is tiled the
same way (term weights kept as in the real index). Stores are chosen as the
builder chooses them: exact below ``ann_threshold``, IVF-SQ8 above. Each
tiled document gets a synthetic ``published`` day, one of ``DAYS`` in turn,
so that a one-day filter keeps 1 % of the documents and a 50-day one half.

Run as ``python -m service.bench.scale spec.json`` in a child process so each
size gets its own peak RSS; it prints one JSON object.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from index.search.filters import parse_filters
from index.storage.lexical import LexicalIndex
from index.storage.manifest import Manifest
from index.storage.store import IndexData, new_build_folder, publish, read_index, resolve_live, write_index
from index.storage.vectorstore import FaissVectorStore
from index.text.corpus import Document
from index.text.tables import SpanTable

BLOCK = 131_072  # vectors generated per step
RECALL_K = 10
DAYS = 100  # synthetic publication days, one per document in turn
FIRST_DAY = date(2026, 1, 1)
FILTERS = {  # share of the documents kept -> the filter that keeps it
    "1%": {"published": {"gte": FIRST_DAY.isoformat(), "lte": FIRST_DAY.isoformat()}},
    "50%": {"published": {"gte": FIRST_DAY.isoformat(), "lte": (FIRST_DAY + timedelta(days=49)).isoformat()}},
}


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM (peak resident set) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(ms: list[float]) -> dict:
    values = np.asarray(ms, dtype=np.float64)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "mean_ms": round(float(values.mean()), 2),
    }


def timed_searches(searcher, questions: list[str], filters: dict | None = None) -> tuple[list[float], list[float]]:
    """Wall and CPU (this thread) milliseconds of ``searcher.search(q, 5, filters)`` for each question."""
    wall, cpu = [], []
    for question in questions:
        t0, c0 = time.perf_counter(), time.thread_time()
        searcher.search(question, 5, filters)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return wall, cpu


def tile_table(table: SpanTable, copies: int, n_docs: int) -> SpanTable:
    n = len(table)
    doc = (table.doc[None, :] + n_docs * np.arange(copies)[:, None]).ravel()
    ids = np.arange(n * copies, dtype=np.int64)
    return SpanTable(ids, doc, np.tile(table.start, copies), np.tile(table.end, copies))


def tile_lexical(lexical: LexicalIndex, copies: int, n_rows: int) -> LexicalIndex:
    """The BM25 matrix of ``copies`` repetitions of the corpus (column-wise tiling of the CSC arrays)."""
    model = copy.copy(lexical.bm25)
    scores = model.scores
    indptr = np.asarray(scores["indptr"], dtype=np.int64)
    lengths = np.diff(indptr)
    new_indptr = np.concatenate([[0], np.cumsum(lengths * copies)])
    token = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(token)) - indptr[token]
    base = new_indptr[token] + pos
    total = int(new_indptr[-1])
    index_dtype = np.int32 if n_rows * copies < 2**31 else np.int64
    data = np.empty(total, dtype=scores["data"].dtype)
    indices = np.empty(total, dtype=index_dtype)
    for c in range(copies):
        where = base + c * lengths[token]
        data[where] = scores["data"]
        indices[where] = scores["indices"] + c * n_rows
    model.scores = {"data": data, "indices": indices, "indptr": new_indptr, "num_docs": n_rows * copies}
    if getattr(model, "nonoccurrence_array", None) is not None:
        model.nonoccurrence_array = np.asarray(model.nonoccurrence_array)
    return LexicalIndex(model, lexical.langs, lexical.analyzer)


def perturbed(base: np.ndarray, first_copy: int, last_copy: int, sigma: float, rng) -> np.ndarray:
    block = np.tile(base, (last_copy - first_copy, 1))
    start = 1 if first_copy == 0 else 0  # copy 0 keeps the real vectors
    noisy = block[start * len(base) :]
    noisy += rng.normal(0.0, sigma, noisy.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return block


def tile_store(base: np.ndarray, copies: int, ann_threshold: int, sigma: float, seed: int, queries: np.ndarray | None):
    """A store of the tiled vectors, and its stats (kind, memory, recall@10 against exact search)."""
    rng = np.random.default_rng(seed)
    nb, dim = base.shape
    total = nb * copies
    began = time.perf_counter()
    if total >= ann_threshold:
        rows = rng.integers(0, nb, size=min(total, 200_000))
        sample = base[rows] + rng.normal(0.0, sigma, (len(rows), dim)).astype(np.float32)
        sample /= np.linalg.norm(sample, axis=1, keepdims=True)
        store = FaissVectorStore.approximate(sample, total=total)
    else:
        store = FaissVectorStore.exact(dim)
    best_s = np.full((len(queries), RECALL_K), -np.inf, np.float32) if queries is not None else None
    best_i = np.full((len(queries), RECALL_K), -1, np.int64) if queries is not None else None
    per_block = max(1, BLOCK // nb)
    for c0 in range(0, copies, per_block):
        c1 = min(copies, c0 + per_block)
        vectors = perturbed(base, c0, c1, sigma, rng)
        ids = np.arange(c0 * nb, c1 * nb, dtype=np.int64)
        store.add(ids, vectors)
        if queries is not None and store.kind != "flat":
            scores = queries @ vectors.T
            top = np.argpartition(-scores, RECALL_K - 1, axis=1)[:, :RECALL_K]
            cand_s = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], axis=1)
            cand_i = np.concatenate([best_i, ids[top]], axis=1)
            keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :RECALL_K]
            best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
    stats = {"kind": store.kind, "vectors": total, "build_s": round(time.perf_counter() - began, 1)}
    stats.update(store_memory(store))
    if queries is not None and store.kind != "flat":
        index = store.faiss_index
        stats.update({"nlist": int(index.nlist), "nprobe": int(index.nprobe)})
        single = []
        for q in queries:
            t0 = time.perf_counter()
            store.search(q[None, :], RECALL_K)
            single.append((time.perf_counter() - t0) * 1000)
        _, found = store.search(queries, RECALL_K)
        hits = [len(set(f.tolist()) & set(t.tolist())) / RECALL_K for f, t in zip(found, best_i, strict=True)]
        stats["recall@10"] = round(float(np.mean(hits)), 4)
        stats["search_p50_ms"] = round(float(np.percentile(single, 50)), 3)
    elif store.kind == "flat":
        stats["recall@10"] = 1.0
    return store, stats


def store_memory(store: FaissVectorStore) -> dict:
    """Bytes of codes, ids and coarse centroids, beside what a flat float32 store would take."""
    index, n = store.faiss_index, len(store)
    flat = n * (store.dim * 4 + 8)
    if store.kind == "flat":
        return {"memory_mb": round(flat / 2**20, 1), "flat_memory_mb": round(flat / 2**20, 1)}
    used = n * (index.code_size + 8 + 16) + index.nlist * store.dim * 4  # + ~16 B/entry of id hash map
    return {"memory_mb": round(used / 2**20, 1), "flat_memory_mb": round(flat / 2**20, 1)}


def scaled_index(base: IndexData, copies: int, ann_threshold: int, sigma: float, queries: np.ndarray | None):
    """The tiled IndexData and the stats of its two vector stores."""
    nd = len(base.documents)
    documents = [
        Document(doc.doc_id if c == 0 else f"{doc.doc_id}~{c}", doc.title, doc.text, _dated(doc, c * nd + row))
        for c in range(copies)
        for row, doc in enumerate(base.documents)
    ]
    hashes = {doc.doc_id: base.manifest.documents[doc.doc_id.split("~")[0]] for doc in documents}
    chunks = tile_table(base.chunks, copies, nd)
    sentences = tile_table(base.sentences, copies, nd)
    chunk_store, chunk_stats = tile_store(
        base.chunk_vectors.get(base.chunks.ids), copies, ann_threshold, sigma, 1, queries
    )
    sentence_store, sentence_stats = tile_store(
        base.sentence_vectors.get(base.sentences.ids), copies, ann_threshold, sigma, 2, queries
    )
    lexical = tile_lexical(base.lexical, copies, len(base.chunks))
    cognates = tile_lexical(base.cognates, copies, len(base.chunks))
    sentence_lexical = tile_lexical(base.sentence_lexical, copies, len(base.sentences))
    manifest = Manifest(
        settings=base.manifest.settings,
        documents=hashes,
        counts={"documents": len(documents), "chunks": len(chunks), "sentences": len(sentences)},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    data = IndexData(
        manifest, documents, base.doc_langs * copies, chunks, sentences, chunk_store, sentence_store,
        lexical, cognates, sentence_lexical, base.vocabulary,  # copies repeat the texts: the same words
        np.tile(base.chunk_hubness, copies), np.tile(base.sentence_hubness, copies),  # near copies: near hubness
    )
    return data, {"chunk_store": chunk_stats, "sentence_store": sentence_stats}


def _dated(doc: Document, number: int) -> dict:
    return {**doc.metadata, "published": (FIRST_DAY + timedelta(days=number % DAYS)).isoformat()}


def filtered_latency(searcher, questions: list[str], warmup: list[str]) -> dict:
    """p50/p99 of searches with each of ``FILTERS`` and without, interleaved question by question (the order
    rotating) so that all meet the same load of the shared machine; each filter's p50 over the unfiltered one."""
    variants = {"none": None, **FILTERS}
    for filters in variants.values():
        for question in warmup:  # also computes and caches each filter's rows
            searcher.search(question, 5, filters)
    wall: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i, question in enumerate(questions):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            wall[name] += timed_searches(searcher, [question], variants[name])[0]
    out = {"unfiltered": percentiles(wall["none"])}
    for name, filters in FILTERS.items():
        allowed = searcher.shards[0].allowed(parse_filters(filters))
        out[name] = {
            "filters": filters,
            "document_share": round(allowed.documents / len(searcher.data.documents), 4),
            "passages": allowed.count,
            "search": percentiles(wall[name]),
            "p50_vs_unfiltered": round(float(np.median(wall[name]) / np.median(wall["none"])), 3),
        }
    return out


def measure(spec: dict) -> dict:
    """Build one synthetic size, time ``Searcher.search`` over the questions, optionally save it."""
    from index.models.encoders import load_encoder
    from index.searcher import Searcher

    base = read_index(resolve_live(Path(spec["base_index"])))
    questions = spec["questions"]
    encoder = load_encoder(spec["model"])
    copies = max(1, round(spec["chunks"] / len(base.chunks)))
    queries = encoder.encode_queries(questions)
    began = time.perf_counter()
    data, stats = scaled_index(base, copies, spec["ann_threshold"], spec["sigma"], queries)
    out = {"target_chunks": spec["chunks"], "copies": copies, "chunks": len(data.chunks)}
    out.update({"sentences": len(data.sentences), "documents": len(data.documents)})
    out["synthesis_s"] = round(time.perf_counter() - began, 1)
    out.update(stats)
    searcher = Searcher(data, encoder, _params(spec))
    for question in spec["warmup"]:
        searcher.search(question, 5)
    profile = _profiler(spec)
    timings, cpu = timed_searches(searcher, questions)
    if profile is not None:
        profile.stop()
        Path(spec["profile"]).write_text(profile.output_text(unicode=False, color=False, show_all=False))
    out["search"] = percentiles(timings)
    out["search_cpu"] = percentiles(cpu)
    out["filtered"] = filtered_latency(searcher, questions, spec["warmup"])
    out["peak_rss_mb"] = round(peak_rss_mb(), 0)
    if spec.get("save_to"):
        target = Path(spec["save_to"])
        folder = new_build_folder(target)
        write_index(data, folder)
        publish(folder, target)
    return out


def _params(spec: dict):
    from index.config import SearchParams

    return SearchParams(**spec.get("search", {}))


def _profiler(spec: dict):
    if not spec.get("profile"):
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    return profiler


if __name__ == "__main__":
    result = measure(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    print(json.dumps(result))
