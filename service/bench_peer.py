"""The peer of the benchmark: LangChain's FAISS vector store over the same chunks and MiniLM model."""

from __future__ import annotations

import time
from types import SimpleNamespace

from index.evaluation.datasets import EvalQuestion
from index.evaluation.metrics import first_hit, hit_at
from index.evaluation.runner import is_hit
from index.store import IndexData
from service.bench_scale import percentiles


def run_peer(data: IndexData, questions: list[EvalQuestion], latency_questions: list[str]) -> dict:
    """Build time, single-query latency and hit@1 of LangChain FAISS + HuggingFaceEmbeddings (MiniLM)."""
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document as LCDocument
    from langchain_huggingface import HuggingFaceEmbeddings

    from index.encoders import minilm_path

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
    for question in latency_questions[:10]:
        store.similarity_search_with_score(question, k=5)
    timings, cpu = [], []
    for question in latency_questions:
        t0, c0 = time.perf_counter(), time.thread_time()
        store.similarity_search_with_score(question, k=5)
        timings.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
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
    return {
        "name": "langchain FAISS + HuggingFaceEmbeddings (minilm)",
        "chunks": len(docs),
        "build_s": round(build_s, 2),
        "chunks_per_s": round(len(docs) / build_s, 1),
        "search": percentiles(timings),
        "search_cpu": percentiles(cpu),
        "hit@1": round(hit_at(ranks, 1), 4),
        "hit@5": round(hit_at(ranks, 5), 4),
        "questions": len(questions),
    }
