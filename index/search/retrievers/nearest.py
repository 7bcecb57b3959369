"""Vector retrievers: the passages, and the sentences, nearest to the question's vector.

A vector similarity loses a *discount* before ranking (``discounts``): the row's question hubness
and, for encoders that favour text in the question's language, a language gap. A discount can lift
a row past others, so a shard asks its store for ``oversample`` times the rows kept and returns them
with their discount; the merge takes the best of every shard's, then the discount, then the pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from index.config import SearchParams
from index.search.fusion import Ranked, ScoredRows
from index.search.query import Query
from index.search.retrievers.base import Scope, best_per_passage
from index.storage.vectorstore import IdSubset
from index.text.tables import spanned_rows

if TYPE_CHECKING:
    from index.search.shard import LocalShard


@dataclass
class VectorHits:
    """A vector store's nearest rows before their discount; sentence hits carry the passages they overlap."""

    rows: np.ndarray  # rows in the whole index
    scores: np.ndarray  # similarity, or BM25 score for sentence terms
    discount: np.ndarray  # taken off each row's similarity before ranking (see ``discounts``)
    first_chunk: np.ndarray | None = None  # sentences: first and last passage row each one overlaps
    last_chunk: np.ndarray | None = None


def no_hits(ranges: bool = False) -> VectorHits:
    empty = np.zeros(0, dtype=np.int64)
    none = np.zeros(0, dtype=np.float32)  # float32 as a store's scores: merged with them, they stay float32
    return VectorHits(empty, none, none, *((empty, empty) if ranges else ()))


def discounts(p: SearchParams, hubness: np.ndarray | float, same_language: np.ndarray | bool) -> np.ndarray:
    """What ranking takes off the vector similarity of rows with this question ``hubness`` (0 without a question
    reference) that are, or not, in the question's language.

    ``hub_penalty`` times the hubness (see index/storage/hubness.py), plus ``language_gap`` for a row in the
    question's language: some encoders score text in the question's language higher whatever it says
    (multilingual E5 put Spanish passages before the English answer of a Spanish question; eval/README).
    In an index of one language the gap shifts every row alike and changes no order.
    """
    return np.asarray(p.hub_penalty * np.asarray(hubness) + p.language_gap * np.asarray(same_language), np.float32)


def oversample(p: SearchParams, has_hubness: bool) -> int:
    """Rows to ask of a vector store per row kept: discounts can lift a row past others."""
    return p.oversample if (p.hub_penalty and has_hubness) or p.language_gap else 1


def penalised(hits: VectorHits, k: int) -> ScoredRows:
    """The ``k`` best hits once their discount is taken off their similarity.

    A discount can lift a row past others, which is why more hits were asked for than are kept.
    """
    kept = penalised_hits(hits, k)
    return ScoredRows(kept.rows, kept.scores)


def penalised_hits(hits: VectorHits, k: int) -> VectorHits:
    """``penalised``, keeping every column of the hits."""
    if not hits.discount.any():
        return hits
    scores = hits.scores - hits.discount
    best_first = np.argsort(-scores, kind="stable")[:k]
    ranges = (hits.first_chunk[best_first], hits.last_chunk[best_first]) if hits.first_chunk is not None else ()
    return VectorHits(hits.rows[best_first], scores[best_first], hits.discount[best_first], *ranges)


def merge_hits(parts: Sequence[VectorHits], k: int) -> VectorHits:
    """The ``k`` most similar hits of all parts, best first, as one store over the whole index gives them.

    Among equal similarities (identical texts: a lone "»" is a sentence of many documents) the later row comes
    first and stays at a cut, as in FAISS's results over a freshly built store, whose equal scores come later
    row first; the discount then keeps that order among equal scores (``penalised_hits``).
    """
    rows = np.concatenate([part.rows for part in parts])
    scores = np.concatenate([part.scores for part in parts])
    later_first = (scores[1:] < scores[:-1]) | ((scores[1:] == scores[:-1]) & (rows[1:] < rows[:-1]))
    # One shard's hits (the whole index's) usually come in that order already: no sort then.
    order = np.arange(min(k, len(rows))) if later_first.all() else np.lexsort((-rows, -scores))[:k]
    discount = np.concatenate([part.discount for part in parts])[order]
    if parts[0].first_chunk is None:
        return VectorHits(rows[order], scores[order], discount)
    first = np.concatenate([part.first_chunk for part in parts])[order]
    last = np.concatenate([part.last_chunk for part in parts])[order]
    return VectorHits(rows[order], scores[order], discount, first, last)


class _Nearest:
    """What both vector lists share: a pool, the store they search, and the oversampling discounts call for."""

    documents = "any"
    scores_candidates = False
    sentences = False  # which store: passages' or sentences'

    def __init__(self, params: SearchParams, has_hubness: bool) -> None:
        self.params = params
        self.has_hubness = has_hubness
        self.pool = params.sentence_pool if self.sentences else params.pool
        self.asked = self.pool * oversample(params, has_hubness)

    def nearest(self, shard: LocalShard, query: Query, subset: IdSubset | None) -> VectorHits:
        """The shard's ``asked`` rows most similar to the question, with their discount (rows of the shard);
        with a ``subset``, only its rows are searched (``VectorStore.search_subset``)."""
        data = shard.data
        store, table, hub = (
            (data.sentence_vectors, data.sentences, data.sentence_hubness)
            if self.sentences
            else (data.chunk_vectors, data.chunks, data.chunk_hubness)
        )
        if subset is None:
            scores, ids = store.search(query.vector[None, :], self.asked)
        else:
            scores, ids = store.search_subset(query.vector, self.asked, subset)
        valid = ids[0] >= 0
        rows = table.rows_of_ids(ids[0][valid])
        hubness = hub[rows] if self.has_hubness else 0.0
        discount = discounts(self.params, hubness, shard.doc_langs[table.doc[rows]] == query.lang)
        if not self.sentences:
            return VectorHits(rows, scores[0][valid], discount)
        links = shard.links
        return VectorHits(rows, scores[0][valid], discount, links.sentence_first_chunk[rows],
                          links.sentence_last_chunk[rows])  # fmt: skip


class PassageVectors(_Nearest):
    """The passages nearest to the question, less their discount."""

    def retrieve(self, shard: LocalShard, query: Query, scope: Scope, found: Mapping) -> VectorHits:
        hits = self.nearest(shard, query, scope.allowed.chunk_ids if scope.allowed else None)
        return VectorHits(shard.whole_passage_rows(hits.rows), hits.scores, hits.discount)

    def empty(self) -> VectorHits:
        return no_hits()

    def passage_rows(self, part: VectorHits) -> np.ndarray:
        return part.rows

    def merge(self, parts: Sequence[VectorHits], merged: Mapping[str, Ranked]) -> ScoredRows:
        return penalised(merge_hits(parts, self.asked), self.pool)


class SentenceHitRows:
    """What retrievers of sentence hits share: an empty part, and the passages a part's sentences overlap."""

    def empty(self) -> VectorHits:
        return no_hits(ranges=True)

    def passage_rows(self, part: VectorHits) -> np.ndarray:
        return spanned_rows(part.first_chunk, part.last_chunk)[0]


class SentenceVectors(SentenceHitRows, _Nearest):
    """Each passage's best sentence among those nearest to the question, less their discount."""

    sentences = True

    def retrieve(self, shard: LocalShard, query: Query, scope: Scope, found: Mapping) -> VectorHits:
        hits = self.nearest(shard, query, scope.allowed.sentence_ids if scope.allowed else None)
        return shard.whole_sentence_hits(hits)

    def merge(self, parts: Sequence[VectorHits], merged: Mapping[str, Ranked]) -> ScoredRows:
        kept = penalised_hits(merge_hits(parts, self.asked), self.pool)
        return best_per_passage(kept.first_chunk, kept.last_chunk, kept.scores)
