"""Answering a question: hybrid retrieval over passages, then the best sentence in each."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from index.candidates import Candidates, QueryTerms, candidates
from index.config import SearchParams
from index.encoders import Encoder
from index.errors import DocumentNotFoundError, IndexMismatchError, InvalidQueryError
from index.filters import AllowedRows, DocumentColumns, Filters, parse_filters
from index.fusion import (
    Ranked,
    ScoredRows,
    best,
    candidate_rows,
    max_by_group,
    sorted_unique,
    top_k,
    weighted_fusion,
)
from index.highlight import pick_sentence
from index.language import detect_language
from index.lexical import tokenize_query
from index.manifest import REBUILD_HINT
from index.ranker import RERANK_DEPTH, load_ranker
from index.store import IndexData
from index.tables import SpanTable, link_spans
from index.translation import Translator
from index.vectorstore import IdSubset, VectorStore

OVERSAMPLE = 3  # rows asked of a vector store per row kept, when the hubness penalty may reorder them
FILTERS_KEPT = 16  # distinct filters whose allowed rows a searcher keeps (up to ~16 MB each with their vectors)
Filter = Mapping[str, Any] | None  # the ``filters`` object of POST /ask (index.filters)


@dataclass(frozen=True)
class Highlight:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    highlight: Highlight


@dataclass(frozen=True)
class Query:
    """A question ready to search: its language, its vector, and its words' translations."""

    text: str
    lang: str
    vector: np.ndarray
    translations: dict[str, list[str]]  # other document language -> stems of the question words' translations
    allowed: AllowedRows | None = None  # the rows a filter keeps; None: every row


@dataclass
class StageTimes:
    """Seconds one search spent in each step (a batch's shared encoding counts for each of its questions)."""

    encode: float = 0.0
    retrieve: float = 0.0
    fuse: float = 0.0
    highlight: float = 0.0


@dataclass(frozen=True)
class SearchResult:
    question: str
    passages: list[Passage]
    took_ms: float
    language: str
    stages: StageTimes


class Searcher:
    """Immutable view of one loaded index plus the encoder that built it."""

    def __init__(self, data: IndexData, encoder: Encoder, params: SearchParams | None = None) -> None:
        if encoder.dim != data.manifest.settings.dim:
            raise IndexMismatchError(
                f"index vectors have {data.manifest.settings.dim} dimensions but encoder "
                f"{encoder.name!r} makes {encoder.dim}: {REBUILD_HINT}"
            )
        self.data = data
        self.encoder = encoder
        self.params = params or SearchParams()
        self._links = link_spans(data.chunks, data.sentences)
        self._doc_rows = {doc.doc_id: row for row, doc in enumerate(data.documents)}
        self._doc_langs = np.array(data.doc_langs)
        self._same_rows: dict[str, np.ndarray | bool] = {}
        self._translator = Translator(data.vocabulary)
        self._has_hubness = bool(data.manifest.settings.reference)
        self._columns: DocumentColumns | None = None
        self._allowed: OrderedDict[Filters, AllowedRows] = OrderedDict()
        self.ranker = load_ranker(self.params.ranker, data.manifest.settings.model)

    @property
    def model(self) -> str:
        return self.data.manifest.settings.model

    def document(self, doc_id: str):
        """The indexed document with this id."""
        row = self._doc_rows.get(doc_id)
        if row is None:
            raise DocumentNotFoundError(f"no document with id {doc_id!r} in the index")
        return self.data.documents[row]

    def search(self, question: str, k: int = 5, filters: Filter = None) -> SearchResult:
        """The ``k`` passages that best answer ``question``, best first, from the documents ``filters`` allows."""
        began = time.perf_counter()
        question, allowed = _checked(question, k), self.allowed(filters)
        return self._answer(_restricted(self.encode([question])[0], allowed), k, began)

    def search_many(
        self, questions: list[str], k: int = 5, show_progress: bool = False, filters: Filter = None
    ) -> list[SearchResult]:
        """``search`` for many questions, encoding them in one batch (``took_ms`` then excludes encoding)."""
        cleaned = [_checked(question, k) for question in questions]
        allowed = self.allowed(filters)
        if not cleaned:
            return []
        queries = tqdm(self.encode(cleaned), desc="Searching", unit="q", disable=not show_progress)
        return [self._answer(_restricted(query, allowed), k, time.perf_counter()) for query in queries]

    def search_batch(self, requests: Sequence[tuple[str, int] | tuple[str, int, Filter]]) -> list[SearchResult]:
        """``search`` for several (question, k) or (question, k, filters) with one encoder call for all of them.

        A server under load gathers waiting questions into one call: the encoder
        reads its weights once for the batch instead of once per question. Each
        ``took_ms`` counts the shared encoding plus that question's own search.
        """
        began = time.perf_counter()
        cleaned = [(_checked(q, k), k, self.allowed(rest[0] if rest else None)) for q, k, *rest in requests]
        if not cleaned:
            return []
        queries = self.encode([question for question, _, _ in cleaned])
        encoding = time.perf_counter() - began
        return [
            self._answer(_restricted(query, allowed), k, time.perf_counter() - encoding)
            for query, (_, k, allowed) in zip(queries, cleaned, strict=True)
        ]

    def allowed(self, filters: Filter) -> AllowedRows | None:
        """The rows ``filters`` keeps (None: no filter); InvalidFilterError for an unknown field or a bad date."""
        parsed = parse_filters(filters)
        if parsed is None:
            return None
        if parsed in self._allowed:
            self._allowed.move_to_end(parsed)
            return self._allowed[parsed]
        if self._columns is None:
            self._columns = DocumentColumns(self.data.documents, self.data.doc_langs)
        rows = AllowedRows.of(self._columns.allowed(parsed), self.data.chunks, self.data.sentences)
        self._allowed[parsed] = rows
        while len(self._allowed) > FILTERS_KEPT:
            self._allowed.popitem(last=False)
        return rows

    def encode(self, questions: Sequence[str]) -> list[Query]:
        """Questions as ``Query`` objects: their vectors, languages and translated terms."""
        langs = [detect_language(question) for question in questions]
        words = [self._translator.words(q, lang, self.params) for q, lang in zip(questions, langs, strict=True)]
        vectors = self.encoder.encode_queries(questions)
        self._learn_words(self._translator.untranslated([word for each in words for word in each], self.params))
        return [
            Query(question, lang, vector, self._translator.translations(each, lang, self.params))
            for question, lang, each, vector in zip(questions, langs, words, vectors, strict=True)
        ]

    def _learn_words(self, words: list[str]) -> None:
        """Translate words not seen with these parameters: stored vectors where the vocabulary or cache has
        them, the encoder for the rest (in a call of their own, so that a question's vector never depends
        on what is cached)."""
        known = self._translator.known_vectors(words)
        if known:
            self._translator.learn(list(known), np.array(list(known.values())), self.params, encoded=False)
        unknown = [word for word in words if word not in known]
        if unknown:
            self._translator.learn(unknown, self.encoder.encode_queries(unknown), self.params, encoded=True)

    def _answer(self, query: Query, k: int, began: float) -> SearchResult:
        stages = StageTimes(encode=time.perf_counter() - began)
        ranked = self.rank(query, k, stages)
        lap = time.perf_counter()
        terms: dict[str, dict[str, float]] = {}  # question terms and their weights per document language
        passages = [self._passage(row, score, query, terms) for row, score in ranked]
        ended = time.perf_counter()
        stages.highlight = ended - lap
        return SearchResult(query.text, passages, (ended - began) * 1000, query.lang, stages)

    def rank(self, query: Query, k: int, stages: StageTimes | None = None) -> list[tuple[int, float]]:
        """(passage row, score) pairs, best first: fused, then re-ordered by the ranker if there is one.

        ``stages`` gets the time of retrieval and of fusion (the ranker's re-ordering included).
        """
        lap = time.perf_counter()
        lists = self.retrieve(query)
        retrieved = time.perf_counter()
        ranked = self._fused_best(query, lists, k)
        if stages is not None:
            stages.retrieve = retrieved - lap
            stages.fuse = time.perf_counter() - retrieved
        return ranked

    def _fused_best(self, query: Query, lists: list[Ranked], k: int) -> list[tuple[int, float]]:
        fused = self.fuse(lists)
        if self.ranker is None:
            return best(fused, k)
        found = self.candidates(query, lists, fused, max(k, RERANK_DEPTH))
        scores = self.ranker.score(found.features)
        order = np.lexsort((found.rows, -scores))[:k]
        return list(zip(found.rows[order].tolist(), scores[order].tolist(), strict=True))

    def candidates(self, query: Query, lists: list[Ranked], fused: Ranked, depth: int) -> Candidates:
        """The ``depth`` best fused rows with the ranker's features (see ``index.candidates``)."""
        terms = QueryTerms(
            stems=self.data.lexical.query_terms(query.text, query.lang),
            translated=[term for stems in query.translations.values() for term in stems],
            prefixes=self.data.cognates.query_terms(query.text, query.lang),
        )
        return candidates(self.data, self._links, self.params, query.vector, query.lang, terms, lists, fused, depth)

    def retrieve(self, query: Query) -> list[Ranked]:
        """The six ranked lists, in the order of ``fuse``'s weights.

        Passage vectors, best sentence vectors (both less their question
        hubness, see ``_nearest``), then BM25: stemmed passages and
        best stemmed sentence for documents in the question's language; word
        prefixes, and the stems of the question words' translations, for
        documents in other languages. A list with no document of its kind is
        left empty without being computed.
        """
        p = self.params
        question, lang, allowed = query.text, query.lang, query.allowed
        if allowed is not None and not allowed.count:
            return [{} for _ in range(6)]  # the filter keeps no passage
        data, vector = self.data, query.vector
        chunk_ids, sentence_ids = (allowed.chunk_ids, allowed.sentence_ids) if allowed else (None, None)
        dense = self._nearest(data.chunk_vectors, data.chunks, data.chunk_hubness, vector, p.pool, chunk_ids)
        nearest = self._nearest(
            data.sentence_vectors, data.sentences, data.sentence_hubness, vector, p.sentence_pool, sentence_ids
        )
        sentences = self._best_per_passage(nearest.rows, nearest.scores)
        same, other = self._language_rows(lang, allowed)
        lexical: Ranked = {}
        cognates: Ranked = {}
        translated: Ranked = {}
        if same is not False:
            lexical = top_k(self.data.lexical.scores(question, lang), p.pool, allowed=same)
        if other is not False:
            across = self.data.cognates if p.cross_language_terms == "prefixes" else self.data.lexical
            cognates = top_k(across.scores(question, lang), p.pool, allowed=other)
            terms = [term for stems in query.translations.values() for term in stems]
            if terms:
                scores = self.data.lexical.scores_of_terms(terms)
                translated = top_k(scores, p.pool, allowed=other)
        best_sentence: Ranked = {}
        if p.sentence_bm25:
            best_sentence = self._sentence_bm25(question, lang, [dense, sentences, lexical], same)
        return [dense, sentences, lexical, cognates, best_sentence, translated]

    def fuse(self, lists: list[Ranked]) -> Ranked:
        """Weighted sum of the min-max normalised lists of ``retrieve``."""
        p = self.params
        weights = [
            p.chunk_dense, p.sentence_dense, p.bm25_same_language, p.bm25_cross_language, p.sentence_bm25,
            p.bm25_translated,
        ]  # fmt: skip
        return weighted_fusion(lists, weights)

    def _same_language_rows(self, lang: str) -> np.ndarray | bool:
        """Passage rows whose document is in ``lang``: a mask, or True / False when all / none are."""
        if lang not in self._same_rows:
            mask = self._doc_langs[self.data.chunks.doc] == lang
            self._same_rows[lang] = True if mask.all() else False if not mask.any() else mask
        return self._same_rows[lang]

    def _language_rows(self, lang: str, allowed: AllowedRows | None) -> tuple[Rows, Rows]:
        """Allowed passage rows in ``lang`` and in other languages, each a mask, None (every row) or False (none).

        Computed once per language and filter: BM25 masks its scores with them.
        """
        if allowed is not None and lang in allowed.by_language:
            return allowed.by_language[lang]
        same = self._same_language_rows(lang)
        if allowed is None:
            mixed = isinstance(same, np.ndarray)
            return (same if mixed else None if same else False), (~same if mixed else False if same else None)
        if isinstance(same, np.ndarray):
            in_lang, out_lang = allowed.chunks & same, allowed.chunks & ~same
        else:
            in_lang, out_lang = (allowed.chunks, False) if same else (False, allowed.chunks)
        pair = (_mask_or_false(in_lang), _mask_or_false(out_lang))
        allowed.by_language[lang] = pair
        return pair

    def _nearest(
        self,
        store: VectorStore,
        table: SpanTable,
        hub: np.ndarray,
        vector: np.ndarray,
        k: int,
        subset: IdSubset | None = None,
    ) -> ScoredRows:
        """The ``k`` rows of ``table`` most similar to ``vector``, less ``hub_penalty`` times their hubness.

        The penalty can lift a row past others, so the store is asked for
        ``OVERSAMPLE`` times more rows than are kept. With a ``subset``, only
        its rows are searched (``VectorStore.search_subset``).
        """
        penalty = self.params.hub_penalty if self._has_hubness else 0.0
        wanted = k * OVERSAMPLE if penalty else k
        if subset is None:
            scores, ids = store.search(vector[None, :], wanted)
        else:
            scores, ids = store.search_subset(vector, wanted, subset)
        valid = ids[0] >= 0
        rows, scores = table.rows_of_ids(ids[0][valid]), scores[0][valid]
        if penalty:
            scores = scores - penalty * hub[rows]
            best_first = np.argsort(-scores, kind="stable")[:k]
            rows, scores = rows[best_first], scores[best_first]
        return ScoredRows(rows, scores)

    def _sentence_bm25(self, question: str, lang: str, lists: list[Ranked], same: Rows) -> Ranked:
        """Best stemmed-BM25 sentence of each candidate passage among the allowed rows ``same`` (in the question's
        language; None: every row).

        A re-ranking signal: only the sentences of passages that another list
        found are scored, so its cost does not grow with the index.
        """
        if same is False:
            return {}
        candidates = candidate_rows(lists)
        if same is not None:
            candidates = candidates[same[candidates]]
        first = self._links.chunk_first_sentence[candidates]
        counts = np.maximum(self._links.chunk_last_sentence[candidates] - first + 1, 0)
        rows = sorted_unique(np.repeat(first, counts) + _ranges(counts))
        scores = self.data.sentence_lexical.scores_of_rows(question, lang, rows)
        return self._best_per_passage(rows[scores > 0], scores[scores > 0])

    def _best_per_passage(self, sentence_rows: np.ndarray, scores: np.ndarray) -> Ranked:
        """Highest score among the sentences of each passage (a sentence may overlap two passages)."""
        first = self._links.sentence_first_chunk[sentence_rows]
        last = self._links.sentence_last_chunk[sentence_rows]
        counts = np.maximum(last - first + 1, 0)
        chunk_rows = np.repeat(first, counts) + _ranges(counts)
        return max_by_group(chunk_rows, np.repeat(scores, counts))

    def _passage(self, row: int, score: float, query: Query, terms: dict[str, dict[str, float]]) -> Passage:
        chunks, sentences = self.data.chunks, self.data.sentences
        doc_row = int(chunks.doc[row])
        doc, doc_lang = self.data.documents[doc_row], self.data.doc_langs[doc_row]
        start, end = int(chunks.start[row]), int(chunks.end[row])
        first, last = self._links.chunk_first_sentence[row], self._links.chunk_last_sentence[row]
        sentence_rows = np.arange(first, last + 1)
        vectors = self.data.sentence_vectors.get(sentences.ids[sentence_rows])
        spans = [(int(sentences.start[r]), int(sentences.end[r])) for r in sentence_rows]
        if doc_lang not in terms:
            translated = query.translations.get(doc_lang, [])
            words = {*tokenize_query(query.text, query.lang, [doc_lang]), *translated}
            terms[doc_lang] = self.data.sentence_lexical.term_weights(words)
        hubness = self.data.sentence_hubness[sentence_rows]
        similarities = vectors @ query.vector
        h_start, h_end = pick_sentence(doc.text, (start, end), spans, similarities, hubness, terms[doc_lang], doc_lang)
        highlight = Highlight(h_start, h_end, doc.text[h_start:h_end])
        return Passage(doc.doc_id, doc.title, start, end, doc.text[start:end], float(score), highlight)


Rows = np.ndarray | bool | None  # a row mask; None: every row; False: no row


def _mask_or_false(mask: np.ndarray | bool) -> Rows:
    return False if isinstance(mask, np.ndarray) and not mask.any() else mask


def _restricted(query: Query, allowed: AllowedRows | None) -> Query:
    return query if allowed is None else replace(query, allowed=allowed)


def _checked(question: str, k: int) -> str:
    """The question without surrounding space; InvalidQueryError if it cannot be searched."""
    question = question.strip()
    if not question:
        raise InvalidQueryError("question is empty: send some text to search for")
    if k < 1:
        raise InvalidQueryError("k must be at least 1")
    return question


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated: [2, 3] -> [0, 1, 0, 1, 2]."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(ends[-1]) - np.repeat(ends - counts, counts)
