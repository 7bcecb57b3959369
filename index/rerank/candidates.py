"""The rerank stage: the features of a question's fused top candidates, read from one whole index, and the
learned ranker's order of them.

The features themselves are the pure functions of ``index.rerank.features``; this module only gathers
their inputs: the ranked lists, the question's terms in each BM25 index, and the stored vectors of the
candidates and their sentences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from index.config import SearchParams
from index.errors import IndexMismatchError
from index.rerank.features import (
    LEXICAL,
    best_per_group,
    feature_matrix,
    full_match_ratio,
    ranked_lists_columns,
    raw_scores,
    weighted_coverage,
)
from index.rerank.ranker import Ranker
from index.search.fusion import Ranked, arrays, best
from index.search.query import Query
from index.search.retrievers.nearest import discounts
from index.storage.lexical import LexicalIndex
from index.storage.store import IndexData
from index.text.tables import SpanLinks, link_spans, spanned_rows


@dataclass(frozen=True)
class Candidates:
    """The fused top rows of one question, their fused scores and their features (one row each)."""

    rows: np.ndarray
    fused: np.ndarray
    features: np.ndarray


@dataclass(frozen=True)
class QueryTerms:
    """A question's terms as each BM25 index analyses them."""

    stems: list[str]  # the question's words stemmed in its language and every corpus language
    translated: list[str]  # stems of their translations into the other document languages
    prefixes: list[str]


class CandidateFeatures:
    """The features of fused candidates, read from a whole index loaded in this process."""

    def __init__(self, data: IndexData, params: SearchParams) -> None:
        if not data.whole:
            raise IndexMismatchError(
                "the learned ranker works on an unsharded index only: set QA_RANKER=off, or rebuild with --shards 1"
            )
        self.data, self.params = data, params
        self.links = link_spans(data.chunks, data.sentences)

    def __call__(self, query: Query, lists: Mapping[str, Ranked], fused: Ranked, depth: int) -> Candidates:
        """Features of the ``depth`` best fused rows, best first."""
        data = self.data
        terms = QueryTerms(
            stems=data.lexical.query_terms(query.text, query.lang),
            translated=[term for stems in query.translations.values() for term in stems],
            prefixes=data.cognates.query_terms(query.text, query.lang),
        )
        return candidates(data, self.links, self.params, query.vector, query.lang, terms, lists, fused, depth)


class Reranker:
    """The learned ranker's order of a question's fused top ``depth`` rows (``SearchParams.rerank_depth``)."""

    def __init__(self, ranker: Ranker, features: CandidateFeatures, depth: int) -> None:
        self.ranker, self.features, self.depth = ranker, features, depth

    def rerank(self, query: Query, lists: Mapping[str, Ranked], fused: Ranked, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (row, ranker score) pairs, best first (ties by row)."""
        found = self.features(query, lists, fused, max(k, self.depth))
        scores = self.ranker.score(found.features)
        order = np.lexsort((found.rows, -scores))[:k]
        return list(zip(found.rows[order].tolist(), scores[order].tolist(), strict=True))


def candidates(
    data: IndexData,
    links: SpanLinks,
    params: SearchParams,
    vector: np.ndarray,
    lang: str,
    terms: QueryTerms,
    lists: Mapping[str, Ranked],
    fused: Ranked,
    depth: int,
) -> Candidates:
    """Features of the ``depth`` best fused rows, best first."""
    top = best(fused, depth)
    rows = np.array([row for row, _ in top], dtype=np.int64)
    scores = np.array([score for _, score in top], dtype=np.float64)
    columns: dict[str, np.ndarray | float] = dict(ranked_lists_columns(lists, rows))
    for name in LEXICAL:
        # The passage lists already score shares of a full match (index.search.retrievers.bm25), sentences raw BM25.
        share = raw_scores(lists[name], rows)
        if name == "sentence_bm25":
            share = full_match_ratio(share, data.sentence_lexical.full_match(terms.stems))
        columns[f"{name}_full"] = share
    columns["fused"] = scores
    columns["fused_rank"] = np.arange(1, len(rows) + 1, dtype=np.float64)
    both = list(dict.fromkeys([*terms.stems, *terms.translated]))
    columns["coverage_passage"] = _coverage(data.lexical, both, rows)
    columns["coverage_prefixes"] = _coverage(data.cognates, terms.prefixes, rows)
    sentence_rows, owner = _sentences_of(links, rows)
    doc_langs = np.asarray(data.doc_langs)
    sentence_coverage = _coverage(data.sentence_lexical, both, sentence_rows)
    columns["coverage_sentence"] = best_per_group(owner, sentence_coverage, len(rows))
    columns["passage_cosine"] = data.chunk_vectors.get(data.chunks.ids[rows]) @ vector
    same_language = doc_langs == lang  # per document
    columns["sentence_cosine"] = _best_sentence_cosine(
        data, params, vector, same_language, lists["sentence_dense"], rows, sentence_rows, owner
    )
    columns["same_language"] = same_language[data.chunks.doc[rows]].astype(np.float64)
    columns["question_terms"] = float(len(data.lexical.term_ids(terms.stems)))
    return Candidates(rows, scores, feature_matrix(columns, len(rows)))


def _best_sentence_cosine(
    data: IndexData,
    params: SearchParams,
    vector: np.ndarray,
    same_language: np.ndarray,
    nearest: Ranked,
    rows: np.ndarray,
    sentence_rows: np.ndarray,
    owner: np.ndarray,
) -> np.ndarray:
    """Similarity, less its discount (``index.search.retrievers.nearest.discounts``), of each passage's best
    sentence to the question (``same_language``: per document, whether it is in the question's language).

    The best-sentence list already holds it for the passages it found (their
    best sentence is among the nearest); only the other passages' sentence
    vectors are read and compared, which keeps this cheap on a large index.
    """
    out = np.maximum(raw_scores(nearest, rows), 0.0)  # floored at 0, as best_per_group is
    missing = ~np.isin(rows, arrays(nearest)[0])
    wanted = missing[owner]
    if wanted.any():
        sentences = sentence_rows[wanted]
        hubness = data.sentence_hubness[sentences] if data.manifest.settings.reference else 0.0
        in_language = same_language[data.sentences.doc[sentences]]
        similarity = data.sentence_vectors.get(data.sentences.ids[sentences]) @ vector
        best = best_per_group(owner[wanted], similarity - discounts(params, hubness, in_language), len(rows))
        out[missing] = best[missing]
    return out


def _coverage(index: LexicalIndex, words: list[str], rows: np.ndarray) -> np.ndarray:
    """IDF-weighted share of ``words`` (weighted by their ceilings) that each row holds."""
    ids = index.term_ids(words)
    return weighted_coverage(index.presence(ids, rows), index.ceilings(ids))


def _sentences_of(links: SpanLinks, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sentence rows of each passage row and, for each, the position of its passage in ``rows``."""
    sentences, counts = spanned_rows(links.chunk_first_sentence[rows], links.chunk_last_sentence[rows])
    return sentences, np.repeat(np.arange(len(rows)), counts)
