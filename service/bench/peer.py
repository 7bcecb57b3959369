"""The peer of the benchmark: LangChain's FAISS vector store over the same chunks and MiniLM model."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

from index.evaluation.datasets import EvalQuestion
from index.evaluation.metrics import first_hit, hit_at
from index.evaluation.runner import is_hit
from index.storage.store import IndexData
from service.bench.scale import percentiles


def run_peer(data: IndexData, questions: list[EvalQuestion]) -> tuple[dict, Callable[[str], object]]:
    """Build time and hit@1 of LangChain FAISS + HuggingFaceEmbeddings (MiniLM), and its one-question search.

    Latency is measured by the caller, interleaved with ours (``interleaved_latency``).
    """
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document as LCDocument
    from langchain_huggingface import HuggingFaceEmbeddings

    from index.models.encoders import minilm_path

    embeddings = HuggingFaceEmbeddings(model_name=str(minilm_path()), model_kwargs={"device": "cpu"})
    embeddings.embed_query("warm up")
    chunks = data.chunks
    docs = []
    for row in range(len(chunks)):
        doc = data.documents[int(chunks.doc[row])]
        start, end = int(chunks.start[row]), int(chunks.end[row])
        docs.append(
            LCDocument(page_content=doc.text[start:end], metadata={"doc_id": doc.doc_id, "start": start, "end": end})
        )
    began = time.perf_counter()
    store = FAISS.from_documents(docs, embeddings)
    build_s = time.perf_counter() - began
    vectors = embeddings.embed_documents([q.question for q in questions])  # = embed_query, batched
    ranks = []
    for question, vector in zip(questions, vectors, strict=True):
        found = store.similarity_search_by_vector(vector, k=20)
        flags = []
        for lc in found:
            meta = lc.metadata
            passage = SimpleNamespace(doc_id=meta["doc_id"])
            flags.append(is_hit(question, passage, meta["start"], meta["end"], lc.page_content))
        ranks.append(first_hit(flags))
    result = {
        "name": "langchain FAISS + HuggingFaceEmbeddings (minilm)",
        "chunks": len(docs),
        "build_s": round(build_s, 2),
        "chunks_per_s": round(len(docs) / build_s, 1),
        "hit@1": round(hit_at(ranks, 1), 4),
        "hit@5": round(hit_at(ranks, 5), 4),
        "questions": len(questions),
    }
    return result, lambda question: store.similarity_search_with_score(question, k=5)


def interleaved_latency(searches: dict[str, Callable[[str], object]], questions: list[str]) -> dict[str, dict]:
    """Wall and CPU percentiles of each search over the same questions, taken in turns.

    Each question goes to every system back to back, the first one rotating, so
    that a slow spell of the shared machine falls on all of them alike.
    """
    names = list(searches)
    for question in questions[:10]:
        for name in names:
            searches[name](question)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for i, question in enumerate(questions):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0, c0 = time.perf_counter(), time.thread_time()
            searches[name](question)
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.thread_time() - c0) * 1000)
    return {name: {"search": percentiles(wall[name]), "search_cpu": percentiles(cpu[name])} for name in names}
