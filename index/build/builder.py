"""Building an index from documents, reusing what an earlier build already embedded."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from index.build.embedding import Embedder, LocalEmbedder
from index.config import Settings
from index.errors import IndexMismatchError, QAError
from index.models.encoders import Encoder, canonical_model_name
from index.storage.hubness import QuestionReference, carried_hubness, load_reference
from index.storage.lexical import LexicalIndex
from index.storage.manifest import BuildSettings, Manifest, check_compatible
from index.storage.sharding import join_shards, split_index
from index.storage.store import IndexData, build_lock, new_build_folder, publish, read_shards, resolve_live, write_index
from index.storage.vectorstore import FaissVectorStore, VectorStore
from index.storage.vocabulary import assemble_vocabulary, corpus_words
from index.text.corpus import Document, load_corpus, title_from_file_name
from index.text.language import detect_language
from index.text.spans import SPLITTER, Span, chunk_spans, split_sentences
from index.text.tables import SpanTable

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What a build did, for the CLI summary line and the API."""

    documents: int
    chunks: int
    sentences: int
    reused_documents: int
    embedded_texts: int
    seconds: float
    folder: Path | None = None
    warnings: list[str] = field(default_factory=list)
    actors: int | None = None  # encoder actors of a cluster build (None: embedded in this process)

    def summary(self) -> str:
        on = f" by {self.actors} encoder actor{'s' * (self.actors != 1)}" if self.actors is not None else ""
        return (
            f"indexed {self.documents} documents, {self.chunks} chunks in {self.seconds:.1f} s "
            f"({self.reused_documents} documents reused, {self.embedded_texts} texts embedded{on}, "
            f"{len(self.warnings)} files skipped)"
        )


@dataclass
class _DocSpans:
    chunks: list[Span]
    sentences: list[Span]
    chunk_ids: np.ndarray | None = None  # set when reused from the previous build
    sentence_ids: np.ndarray | None = None
    lang: str | None = None  # the language detected by the previous build


def question_reference(settings: Settings, encoder: Encoder) -> QuestionReference | None:
    """The question reference a build computes hubness with, if the model has one (see index.storage.hubness)."""
    return load_reference(settings.question_reference, canonical_model_name(settings.model), encoder.dim)


def build_settings(settings: Settings, encoder: Encoder) -> BuildSettings:
    """What an index built with these settings records, and must match to be loaded with them."""
    return _build_settings(settings, encoder, question_reference(settings, encoder))


def _build_settings(settings: Settings, encoder: Encoder, reference: QuestionReference | None) -> BuildSettings:
    return BuildSettings(
        model=canonical_model_name(settings.model),
        dim=encoder.dim,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        splitter=SPLITTER,
        title_in_passages=settings.title_in_passages,
        title_in_sentences=settings.title_in_sentences,
        reference=reference.digest if reference else "",
    )


def build_index(
    settings: Settings, encoder: Encoder, *, show_progress: bool = True, embedder: Embedder | None = None
) -> BuildReport:
    """Build the index at ``settings.index_dir`` from ``settings.corpus_dir`` and swap it in.

    ``embedder`` embeds the new texts (default: ``encoder`` in this process); ``encoder`` gives the dimension.
    """
    loaded = load_corpus(settings.corpus_dir)
    report = build_from_documents(loaded.documents, settings, encoder, show_progress=show_progress, embedder=embedder)
    report.warnings = loaded.warnings
    return report


def build_from_documents(
    documents: Sequence[Document],
    settings: Settings,
    encoder: Encoder,
    *,
    show_progress: bool = True,
    embedder: Embedder | None = None,
) -> BuildReport:
    """Index ``documents`` into a new build folder, then make it the live index (see ``build_index``)."""
    began = time.perf_counter()
    index_dir = Path(settings.index_dir)
    reference = question_reference(settings, encoder)
    wanted = _build_settings(settings, encoder, reference)
    local = embedder is None
    embedder = embedder or LocalEmbedder(encoder, settings.batch_size)
    with build_lock(index_dir):
        previous = _previous_index(index_dir, wanted)
        data, reused, embedded = _assemble(documents, wanted, previous, embedder, settings, reference, show_progress)
        folder = new_build_folder(index_dir)
        try:
            write_index(data, folder, split_index(data, settings.shards) if settings.shards > 1 else None)
            final = publish(folder, index_dir)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return BuildReport(
        documents=len(data.documents),
        chunks=len(data.chunks),
        sentences=len(data.sentences),
        reused_documents=reused,
        embedded_texts=embedded,
        seconds=time.perf_counter() - began,
        folder=final,
        actors=None if local else embedder.workers,
    )


def _previous_index(index_dir: Path, wanted: BuildSettings) -> IndexData | None:
    """The live index when it can donate vectors, else None (a full build follows)."""
    try:
        data = join_shards(read_shards(resolve_live(index_dir)))
        check_compatible(data.manifest.settings, wanted, index_dir)
        return data
    except IndexMismatchError as exc:
        log.info("full rebuild: %s", exc)
    except QAError as exc:
        log.info("full rebuild, previous index unusable: %s", exc)
    return None


def _assemble(
    documents: Sequence[Document],
    wanted: BuildSettings,
    previous: IndexData | None,
    embedder: Embedder,
    settings: Settings,
    reference: QuestionReference | None,
    show_progress: bool,
) -> tuple[IndexData, int, int]:
    reusable = _reusable_spans(previous) if previous else {}
    per_doc: list[_DocSpans] = []
    for doc in documents:
        key = (doc.doc_id, doc.content_hash)
        per_doc.append(
            reusable.get(key)
            or _DocSpans(chunk_spans(doc.text, wanted.chunk_size, wanted.chunk_overlap), split_sentences(doc.text))
        )
    langs = [
        doc.metadata.get("lang") or spans.lang or detect_language(doc.text)
        for doc, spans in zip(documents, per_doc, strict=True)
    ]
    chunks, chunk_new = _table(per_doc, "chunks", previous.chunks if previous else None)
    sentences, sentence_new = _table(per_doc, "sentences", previous.sentences if previous else None)
    words = corpus_words(documents, langs)
    new_words = previous.vocabulary.missing(words) if previous else words
    # BM25 needs no vectors: build it on a second thread while the encoder runs,
    # since much of the encoder's time is spent in numpy calls that release the GIL
    # (on a cluster build, this process only waits for the actors meanwhile).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bm25") as pool:
        lexical_future = pool.submit(_lexical_indexes, documents, langs, chunks, sentences, wanted, settings.bm25_k1)
        new_rows, embedding = (chunk_new, sentence_new), (embedder, wanted.dim)
        stores, word_vectors, span_vectors, embedded = _embed_new(
            documents, (chunks, sentences), new_rows, new_words, previous, embedding, settings, show_progress
        )
        lexical, cognates, sentence_lexical = lexical_future.result()
    if stores is None:  # the store kind must change: embed everything
        return _assemble(documents, wanted, None, embedder, settings, reference, show_progress)
    chunk_store, sentence_store = stores
    chunk_before = (previous.chunks, previous.chunk_hubness) if previous else None
    sentence_before = (previous.sentences, previous.sentence_hubness) if previous else None
    chunk_hubness = _hubness(reference, chunks, chunk_new, span_vectors[0], chunk_before)
    sentence_hubness = _hubness(reference, sentences, sentence_new, span_vectors[1], sentence_before)
    vocabulary = assemble_vocabulary(words, word_vectors, previous.vocabulary if previous else None)
    manifest = Manifest(
        settings=wanted,
        documents={doc.doc_id: doc.content_hash for doc in documents},
        counts={"documents": len(documents), "chunks": len(chunks), "sentences": len(sentences)},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    data = IndexData(
        manifest, list(documents), langs, chunks, sentences, chunk_store, sentence_store,
        lexical, cognates, sentence_lexical, vocabulary, chunk_hubness, sentence_hubness,
    )  # fmt: skip
    reused = sum(1 for spans in per_doc if spans.chunk_ids is not None)
    return data, reused, embedded


def _embed_new(
    documents: Sequence[Document],
    tables: tuple[SpanTable, SpanTable],
    new_rows: tuple[list[int], list[int]],
    new_words: dict[str, list[str]],
    previous: IndexData | None,
    embedding: tuple[Embedder, int],
    settings: Settings,
    show_progress: bool,
) -> tuple[
    tuple[VectorStore, VectorStore] | None, dict[str, dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray], int
]:
    """Embed the new (chunk, sentence) rows and words; update both stores (None when one must be rebuilt whole).

    Returns the stores, the new words' vectors per language (word -> vector), the new rows' vectors
    (chunks, sentences), and how many texts were embedded.
    """
    chunks, sentences = tables
    chunk_new, sentence_new = new_rows
    texts = [passage_text(documents, chunks, row, settings.title_in_passages) for row in chunk_new]
    texts += [sentence_text(documents, sentences, row, settings.title_in_sentences) for row in sentence_new]
    spans = len(texts)
    texts += [word for words in new_words.values() for word in words]
    vectors = _embed(*embedding, texts, show_progress)
    word_vectors, at = {}, spans
    for lang, words in new_words.items():
        word_vectors[lang], at = dict(zip(words, vectors[at : at + len(words)], strict=True)), at + len(words)
    chunk_store = _update_store(
        previous.chunk_vectors if previous else None,
        previous.chunks.ids if previous else None,
        chunks,
        chunk_new,
        vectors[: len(chunk_new)],
        settings,
    )
    sentence_store = _update_store(
        previous.sentence_vectors if previous else None,
        previous.sentences.ids if previous else None,
        sentences,
        sentence_new,
        vectors[len(chunk_new) : spans],
        settings,
    )
    span_vectors = (vectors[: len(chunk_new)], vectors[len(chunk_new) : spans])
    if chunk_store is None or sentence_store is None:
        return None, word_vectors, span_vectors, len(texts)
    return (chunk_store, sentence_store), word_vectors, span_vectors, len(texts)


def _hubness(
    reference: QuestionReference | None,
    table: SpanTable,
    new_rows: list[int],
    vectors: np.ndarray,
    before: tuple[SpanTable, np.ndarray] | None,
) -> np.ndarray:
    """Question hubness of every row: computed for the new rows, carried over by id from ``before``, the
    previous build's table and hubness."""
    if reference is None:
        return np.zeros(len(table), dtype=np.float32)
    previous_ids, previous = (before[0].ids, before[1]) if before else (None, None)
    return carried_hubness(previous_ids, previous, table.ids, new_rows, reference.hubness(vectors))


def _lexical_indexes(
    documents: Sequence[Document],
    langs: list[str],
    chunks: SpanTable,
    sentences: SpanTable,
    wanted: BuildSettings,
    k1: float,
) -> tuple[LexicalIndex, LexicalIndex, LexicalIndex]:
    """Stemmed and prefix BM25 over passages, stemmed BM25 over sentences."""
    chunk_texts = [passage_text(documents, chunks, row, wanted.title_in_passages) for row in range(len(chunks))]
    chunk_langs = [langs[d] for d in chunks.doc]
    sentence_texts = [passage_text(documents, sentences, row) for row in range(len(sentences))]
    return (
        LexicalIndex.build(chunk_texts, chunk_langs, k1=k1),
        LexicalIndex.build(chunk_texts, chunk_langs, analyzer="prefixes", k1=k1),
        LexicalIndex.build(sentence_texts, [langs[d] for d in sentences.doc], k1=k1),
    )


def _reusable_spans(previous: IndexData) -> dict[tuple[str, str], _DocSpans]:
    """Spans and ids of every previous document, keyed by (doc id, content hash)."""
    out = {}
    for row, doc in enumerate(previous.documents):
        c = previous.chunks.doc == row
        s = previous.sentences.doc == row
        out[(doc.doc_id, previous.manifest.documents[doc.doc_id])] = _DocSpans(
            chunks=_spans(previous.chunks, c),
            sentences=_spans(previous.sentences, s),
            chunk_ids=previous.chunks.ids[c],
            sentence_ids=previous.sentences.ids[s],
            # A detected language is reused (detection is the slow part); a declared one is not, so that
            # removing a document's ``lang`` brings detection back.
            lang=None if "lang" in doc.metadata else previous.doc_langs[row],
        )
    return out


def _spans(table: SpanTable, mask: np.ndarray) -> list[Span]:
    return [Span(int(a), int(b)) for a, b in zip(table.start[mask], table.end[mask], strict=True)]


def _table(per_doc: list[_DocSpans], kind: str, previous: SpanTable | None) -> tuple[SpanTable, list[int]]:
    """The span table in document order, and the rows whose ids (and vectors) are new."""
    next_id = int(previous.ids.max()) + 1 if previous is not None and len(previous) else 0
    ids, docs, starts, ends, new_rows = [], [], [], [], []
    for row, spans in enumerate(per_doc):
        doc_spans = getattr(spans, kind)
        old_ids = getattr(spans, "chunk_ids" if kind == "chunks" else "sentence_ids")
        if old_ids is None:
            new_rows.extend(range(len(ids), len(ids) + len(doc_spans)))
            doc_ids = range(next_id, next_id + len(doc_spans))
            next_id += len(doc_spans)
        else:
            doc_ids = old_ids
        ids.extend(int(i) for i in doc_ids)
        docs.extend([row] * len(doc_spans))
        starts.extend(s.start for s in doc_spans)
        ends.extend(s.end for s in doc_spans)
    return SpanTable.from_columns(ids, docs, starts, ends), new_rows


def passage_text(documents: Sequence[Document], table: SpanTable, row: int, titled: bool = False) -> str:
    """The text a build embeds and indexes for one span; with ``titled``, its document title first."""
    doc = documents[int(table.doc[row])]
    text = doc.text[int(table.start[row]) : int(table.end[row])]
    return f"{doc.title}\n\n{text}" if titled and doc.title else text


def sentence_text(documents: Sequence[Document], table: SpanTable, row: int, titled: bool = False) -> str:
    """The text a build embeds for one sentence; with ``titled``, its document's title first, unless the title is
    only the file name (a guess that says little of the text, and drowns a short sentence)."""
    doc = documents[int(table.doc[row])]
    return passage_text(documents, table, row, titled and not title_from_file_name(doc))


def _embed(embedder: Embedder, dim: int, texts: list[str], show_progress: bool) -> np.ndarray:
    if not texts:
        return np.empty((0, dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="Embedding", unit="text", disable=not show_progress) as bar:
        return embedder.embed(texts, dim, progress=bar.update)


def _update_store(
    previous: VectorStore | None,
    previous_ids: np.ndarray | None,
    table: SpanTable,
    new_rows: list[int],
    vectors: np.ndarray,
    settings: Settings,
) -> VectorStore | None:
    """The previous store minus vanished ids plus the new ones; None if it must be rebuilt whole."""
    wants_ann = len(table) >= settings.ann_threshold
    if previous is None or previous_ids is None:
        store = FaissVectorStore.approximate(vectors) if wants_ann else FaissVectorStore.exact(vectors.shape[1])
        store.add(table.ids[new_rows], vectors)
        return store
    if wants_ann != (getattr(previous, "kind", "flat") != "flat"):
        return None
    previous.remove(np.setdiff1d(previous_ids, table.ids))
    previous.add(table.ids[new_rows], vectors)
    return previous
