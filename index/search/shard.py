"""One shard's part of a search: ranked lists from its own rows, and the passages it holds.

An unsharded index is one shard whose lists are final (``final_lists``). Shards of a sharded index
return raw lists instead (``retrieve``): vector hits with their discount not yet taken off and BM25 top-k′
with their zero row, numbered in the whole index, for the searcher to merge before it normalises
and fuses (index.search.merging). A shard holds no encoder: the searcher sends the question's vector.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from index.config import SearchParams
from index.errors import DocumentNotFoundError
from index.search.filters import AllowedRows, DocumentColumns, Filters
from index.search.fusion import (
    Ranked,
    ScoredRows,
    best,
    candidate_rows,
    sorted_unique,
    top_k,
    weighted_fusion,
)
from index.search.highlight import pick_sentence
from index.search.hits import (
    ShardLists,
    VectorHits,
    best_lexical_share,
    best_per_passage,
    both_languages_matched,
    discounts,
    empty_lists,
    fusion_weights,
    no_hits,
    oversample,
    penalised,
    penalised_hits,
    spanned_rows,
    top_k_with_zero,
)
from index.search.query import Highlight, Passage, Query
from index.storage.lexical import tokenize_query
from index.storage.store import IndexData
from index.storage.vectorstore import IdSubset, VectorStore
from index.text.corpus import Document
from index.text.tables import SpanLinks, link_spans

FILTERS_KEPT = 16  # distinct filters whose allowed rows a shard keeps (up to ~16 MB each with their vectors)
Rows = np.ndarray | bool | None  # a row mask; None: every row; False: no row


class LocalShard:
    """Searches one loaded index or shard in this process."""

    def __init__(self, data: IndexData, params: SearchParams, strict_fields: bool = True) -> None:
        self.data = data
        self.params = params
        self._links = link_spans(data.chunks, data.sentences)
        self._doc_rows = {doc.doc_id: row for row, doc in enumerate(data.documents)}
        self._doc_langs = np.array(data.doc_langs)
        self._same_rows: dict[str, np.ndarray | bool] = {}
        self._unfiltered_rows: dict[str, tuple[Rows, Rows]] = {}  # (same, other) of _language_rows, no filter
        self._has_hubness = bool(data.manifest.settings.reference)
        # A shard of a sharded index leaves out documents for a field its own documents lack: the searcher
        # checks filter fields against every shard's.
        self._strict_fields = strict_fields
        self._columns: DocumentColumns | None = None
        self._allowed: OrderedDict[Filters, AllowedRows] = OrderedDict()
        rows = data.global_rows
        self._chunk_rows = rows[1] if rows is not None else None
        self._sentence_rows = rows[2] if rows is not None else None

    @property
    def links(self) -> SpanLinks:
        """How this shard's passages and sentences overlap."""
        return self._links

    def fields(self) -> set[str]:
        return self.columns().fields

    def chunk_rows(self) -> np.ndarray:
        """This shard's passage rows in the whole index."""
        return np.arange(len(self.data.chunks)) if self._chunk_rows is None else self._chunk_rows

    def columns(self) -> DocumentColumns:
        if self._columns is None:
            self._columns = DocumentColumns(self.data.documents, self.data.doc_langs)
        return self._columns

    def document(self, doc_id: str) -> Document:
        row = self._doc_rows.get(doc_id)
        if row is None:
            raise DocumentNotFoundError(f"no document with id {doc_id!r} in the index")
        return self.data.documents[row]

    def allowed(self, parsed: Filters) -> AllowedRows:
        """This shard's rows that ``parsed`` keeps, computed once per filter."""
        if parsed in self._allowed:
            self._allowed.move_to_end(parsed)
            return self._allowed[parsed]
        documents = self.columns().allowed(parsed, self._strict_fields)
        rows = AllowedRows.of(documents, self.data.chunks, self.data.sentences)
        self._allowed[parsed] = rows
        while len(self._allowed) > FILTERS_KEPT:
            self._allowed.popitem(last=False)
        return rows

    def _query_rows(self, query: Query) -> AllowedRows | None:
        if query.allowed is not None:
            return query.allowed
        return self.allowed(query.filters) if query.filters is not None else None

    def final_lists(self, query: Query) -> list[Ranked]:
        """The six ranked lists of an unsharded index, in the order of ``Searcher.fuse``'s weights.

        Passage vectors, best sentence vectors (both less their discount,
        see ``hits.discounts``), then BM25: stemmed passages and
        best stemmed sentence for documents in the question's language; word
        prefixes, and the stems of the question words' translations, for
        documents in other languages. A list with no document of its kind is
        left empty without being computed.
        """
        p, allowed = self.params, self._query_rows(query)
        if allowed is not None and not allowed.count:
            return [{} for _ in range(6)]  # the filter keeps no passage
        chunk_ids, sentence_ids = (allowed.chunk_ids, allowed.sentence_ids) if allowed else (None, None)
        dense = penalised(self._hits(query, chunk_ids, p.pool), p.pool)
        nearest = penalised(self._hits(query, sentence_ids, p.sentence_pool, True), p.sentence_pool)
        sentences = self._best_per_passage(nearest.rows, nearest.scores)
        same, other = self._language_rows(query.lang, allowed)
        lexical, cognates, translated = self._lexical_lists(query, same, other, top_k)
        best_sentence: Ranked = {}
        if p.sentence_bm25 and same is not False:
            hits = self._sentence_terms(query, candidate_rows([dense, sentences, lexical]), same)
            best_sentence = self._best_per_passage(hits.rows, hits.scores)
        return [dense, sentences, lexical, cognates, best_sentence, translated]

    def retrieve(self, query: Query) -> ShardLists:
        """Raw lists for a searcher to merge with other shards' (rows numbered in the whole index)."""
        p, allowed = self.params, self._query_rows(query)
        if allowed is not None and not allowed.count:
            return empty_lists()
        chunk_ids, sentence_ids = (allowed.chunk_ids, allowed.sentence_ids) if allowed else (None, None)
        dense = self._hits(query, chunk_ids, p.pool)
        sentences = self._hits(query, sentence_ids, p.sentence_pool, True)
        same, other = self._language_rows(query.lang, allowed)
        lexical, cognates, translated = self._lexical_lists(query, same, other, top_k_with_zero)
        terms = no_hits(ranges=True)
        if p.sentence_bm25 and same is not False:
            # Every passage a merged list may keep: the merge cannot know them before fusing.
            overlapped, _ = spanned_rows(sentences.first_chunk, sentences.last_chunk)
            local = np.concatenate([dense.rows, overlapped, lexical.rows])
            terms = self._sentence_terms(query, sorted_unique(local), same)
        passages = self._prefetch(query, dense, sentences, (lexical, cognates, translated), terms)
        return ShardLists(
            passages=passages,
            dense=VectorHits(self._rows(dense.rows), dense.scores, dense.discount),
            sentences=self._global_sentences(sentences),
            lexical=self._global(lexical),
            cognates=self._global(cognates),
            translated=self._global(translated),
            sentence_terms=self._global_sentences(terms),
        )

    def _prefetch(self, query: Query, dense: VectorHits, sentences: VectorHits, lexical: tuple, terms: VectorHits):
        """The passages of this shard's ``query.prefetch`` best candidates by its own fusion, by row in the whole
        index: most of the searcher's final passages, sent along to save a round trip (exact: a passage does
        not depend on its score, which the searcher sets)."""
        if not query.prefetch:
            return {}
        p = self.params
        kept = penalised_hits(sentences, p.sentence_pool)
        lists = [
            penalised(dense, p.pool), best_per_passage(kept.first_chunk, kept.last_chunk, kept.scores),
            lexical[0], lexical[1], best_per_passage(terms.first_chunk, terms.last_chunk, terms.scores), lexical[2],
        ]  # fmt: skip
        share = best_lexical_share(lists)  # this shard's: the searcher's may be another shard's, higher
        rows = [row for row, _ in best(weighted_fusion(lists, fusion_weights(p, False, share)), query.prefetch)]
        if both_languages_matched(lists):  # whether the searcher balances depends on the other shards' lists too
            balanced = best(weighted_fusion(lists, fusion_weights(p, True, share)), query.prefetch)
            rows = list(dict.fromkeys([*rows, *(row for row, _ in balanced)]))
        terms_by_lang: dict[str, dict[str, float]] = {}
        return {int(self._rows(np.array([row]))[0]): self._passage(row, 0.0, query, terms_by_lang) for row in rows}

    def passages(self, rows: list[int], query: Query, scores: list[float]) -> list[Passage]:
        """The passages at ``rows`` (numbered in the whole index) with their highlighted sentence."""
        local = self._local(np.asarray(rows, dtype=np.int64), self._chunk_rows)
        terms: dict[str, dict[str, float]] = {}  # question terms and their weights per document language
        return [self._passage(int(row), score, query, terms) for row, score in zip(local, scores, strict=True)]

    def _hits(self, query: Query, subset: IdSubset | None, k: int, sentences: bool = False) -> VectorHits:
        """The ``k`` (``hits.oversample`` times more) rows most similar to the question, with their discount;
        with a ``subset``, only its rows are searched (``VectorStore.search_subset``)."""
        data = self.data
        store, table, hub = (
            (data.sentence_vectors, data.sentences, data.sentence_hubness)
            if sentences
            else (data.chunk_vectors, data.chunks, data.chunk_hubness)
        )
        scores, ids = _search(store, query.vector, k * oversample(self.params, self._has_hubness), subset)
        valid = ids[0] >= 0
        rows = table.rows_of_ids(ids[0][valid])
        hubness = hub[rows] if self._has_hubness else 0.0
        discount = discounts(self.params, hubness, self._doc_langs[table.doc[rows]] == query.lang)
        if not sentences:
            return VectorHits(rows, scores[0][valid], discount)
        return VectorHits(rows, scores[0][valid], discount, self._links.sentence_first_chunk[rows],
                          self._links.sentence_last_chunk[rows])  # fmt: skip

    def _lexical_lists(self, query: Query, same: Rows, other: Rows, keep) -> tuple[Ranked, Ranked, Ranked]:
        """Stemmed BM25 in the question's language; prefixes and translated stems in the others.

        Each list scores a passage by its share of a full match of the question's terms (``LexicalIndex.shares``):
        min-max scaling is blind to it, but the fusion weighs a list whose best passage matched little of the
        question less (``hits.fusion_weights``).
        """
        p = self.params
        lexical: Ranked = ScoredRows([], [])
        cognates: Ranked = ScoredRows([], [])
        translated: Ranked = ScoredRows([], [])
        if same is not False:
            lexical = keep(self.data.lexical.shares(query.text, query.lang), p.pool, same)
        if other is not False:
            across = self.data.cognates if p.cross_language_terms == "prefixes" else self.data.lexical
            cognates = keep(across.shares(query.text, query.lang), p.pool, other)
            terms = [term for stems in query.translations.values() for term in stems]
            if terms:
                translated = keep(self.data.lexical.shares_of_terms(terms), p.pool, other)
        return lexical, cognates, translated

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
            if lang not in self._unfiltered_rows:  # once per language, not per question: ~same spans every passage
                mixed = isinstance(same, np.ndarray)
                pair = (same if mixed else None if same else False), (~same if mixed else False if same else None)
                self._unfiltered_rows[lang] = pair
            return self._unfiltered_rows[lang]
        if isinstance(same, np.ndarray):
            in_lang, out_lang = allowed.chunks & same, allowed.chunks & ~same
        else:
            in_lang, out_lang = (allowed.chunks, False) if same else (False, allowed.chunks)
        pair = (_mask_or_false(in_lang), _mask_or_false(out_lang))
        allowed.by_language[lang] = pair
        return pair

    def _sentence_terms(self, query: Query, candidates: np.ndarray, same: Rows) -> VectorHits:
        """Stemmed-BM25 sentences, with a positive score, of the ``candidates`` passages among the allowed
        rows ``same`` (in the question's language; None: every row).

        A re-ranking signal: only the sentences of passages that another list
        found are scored, so its cost does not grow with the index.
        """
        if same is not None:
            candidates = candidates[same[candidates]]
        links = self._links
        spanned, _ = spanned_rows(links.chunk_first_sentence[candidates], links.chunk_last_sentence[candidates])
        rows = sorted_unique(spanned)
        scores = self.data.sentence_lexical.scores_of_rows(query.text, query.lang, rows)
        rows, scores = rows[scores > 0], scores[scores > 0]
        return VectorHits(rows, scores, np.zeros(len(rows), dtype=np.float32), links.sentence_first_chunk[rows],
                          links.sentence_last_chunk[rows])  # fmt: skip

    def _best_per_passage(self, sentence_rows: np.ndarray, scores: np.ndarray) -> ScoredRows:
        """Highest score among the sentences of each passage (a sentence may overlap two passages)."""
        links = self._links
        return best_per_passage(links.sentence_first_chunk[sentence_rows], links.sentence_last_chunk[sentence_rows],
                                scores)  # fmt: skip

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        """Passage rows numbered in the whole index."""
        return rows if self._chunk_rows is None else self._chunk_rows[rows]

    def _global(self, ranked: ScoredRows) -> ScoredRows:
        return ScoredRows(self._rows(ranked.rows), ranked.scores)

    def _global_sentences(self, hits: VectorHits) -> VectorHits:
        """Sentence hits numbered in the whole index; a sentence overlapping no passage keeps an empty range."""
        if self._chunk_rows is None:
            return hits
        first, last = hits.first_chunk, hits.last_chunk
        valid = last >= first
        chunks = self._chunk_rows
        at_first = np.where(valid, chunks[np.minimum(first, len(chunks) - 1)], 0)
        at_last = np.where(valid, chunks[np.maximum(last, 0)], -1)
        return VectorHits(self._sentence_rows[hits.rows], hits.scores, hits.discount, at_first, at_last)

    @staticmethod
    def _local(rows: np.ndarray, global_rows: np.ndarray | None) -> np.ndarray:
        """Rows of this shard from their numbers in the whole index (the shard's own rows are sorted)."""
        return rows if global_rows is None else np.searchsorted(global_rows, rows)

    def _passage(self, row: int, score: float, query: Query, terms: dict[str, dict[str, float]]) -> Passage:
        data = self.data
        chunks, sentences = data.chunks, data.sentences
        doc_row = int(chunks.doc[row])
        doc, doc_lang = data.documents[doc_row], data.doc_langs[doc_row]
        start, end = int(chunks.start[row]), int(chunks.end[row])
        first, last = self._links.chunk_first_sentence[row], self._links.chunk_last_sentence[row]
        sentence_rows = np.arange(first, last + 1)
        vectors = data.sentence_vectors.get(sentences.ids[sentence_rows])
        spans = [(int(sentences.start[r]), int(sentences.end[r])) for r in sentence_rows]
        if doc_lang not in terms:
            translated = query.translations.get(doc_lang, [])
            words = {*tokenize_query(query.text, query.lang, [doc_lang]), *translated}
            terms[doc_lang] = data.sentence_lexical.term_weights(words)
        hubness = data.sentence_hubness[sentence_rows]
        similarities = vectors @ query.vector
        h_start, h_end = pick_sentence(doc.text, (start, end), spans, similarities, hubness, terms[doc_lang], doc_lang,
                                       self.params.highlight_terms)  # fmt: skip
        highlight = Highlight(h_start, h_end, doc.text[h_start:h_end])
        return Passage(doc.doc_id, doc.title, start, end, doc.text[start:end], float(score), highlight)


def _search(store: VectorStore, vector: np.ndarray, k: int, subset: IdSubset | None):
    if subset is None:
        return store.search(vector[None, :], k)
    return store.search_subset(vector, k, subset)


def _mask_or_false(mask: np.ndarray | bool) -> Rows:
    return False if isinstance(mask, np.ndarray) and not mask.any() else mask

