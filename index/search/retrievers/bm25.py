"""BM25 retrievers over passages: stems in the question's language; word prefixes and the question words'
translations in the other languages.

Each list scores a passage by its share of the question: of a full match of the question's terms
(``LexicalIndex.shares``), or of its content words (``LexicalIndex.coverage``), as
``SearchParams.lexical_evidence`` says; ``index.search.fusion.Fuser`` weighs the lists by it. A shard returns its top
rows plus its first zero row, so that the merge can decide, as ``top_k`` does over the whole index,
whether a zero row belongs in the list and which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from index.config import SearchParams
from index.search.fusion import Ranked, ScoredRows, top_k
from index.search.query import Query
from index.search.retrievers.base import Scope

if TYPE_CHECKING:
    from index.search.shard import LocalShard
    from index.storage.lexical import LexicalIndex

NO_ROWS = ScoredRows([], [])


def top_k_with_zero(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> ScoredRows:
    """``top_k``'s positive rows, plus the first allowed zero row whenever there is one.

    The merge across shards then decides, as ``top_k`` does over the whole index, whether a zero
    row belongs in the list (fewer than k rows scored) and which (the first in the whole index).
    """
    ranked = top_k(scores, k, allowed)
    positive = ranked.scores > 0
    if len(ranked) and not positive.all():
        return ranked
    zero = first_zero_row(scores, allowed)
    if zero is None:
        return ranked
    return ScoredRows(np.append(ranked.rows, zero), np.append(ranked.scores, 0.0))


def first_zero_row(scores: np.ndarray, allowed: np.ndarray | None = None) -> int | None:
    """The first (allowed) row that scored nothing; looked for in growing blocks, since most rows score nothing."""
    start, size = 0, 1024
    while start < len(scores):
        zero = scores[start : start + size] <= 0
        if allowed is not None:
            zero &= allowed[start : start + size]
        found = np.flatnonzero(zero)
        if len(found):
            return start + int(found[0])
        start, size = start + size, 4 * size
    return None


def merge_top(parts: Sequence[ScoredRows], k: int) -> ScoredRows:
    """The ``k`` best positive rows of all parts, then, when fewer scored, the first zero row any part offers.

    What ``fusion.top_k`` gives over the whole index, from each shard's ``top_k_with_zero``.
    """
    rows = np.concatenate([part.rows for part in parts])
    scores = np.concatenate([part.scores for part in parts])
    positive = scores > 0
    if not positive.any():
        return ScoredRows([], [])
    kept, values = rows[positive], scores[positive]
    in_order = (values[1:] < values[:-1]) | ((values[1:] == values[:-1]) & (kept[1:] > kept[:-1]))
    if not in_order.all():  # one shard's part (the whole index's) is in order already
        order = np.lexsort((kept, -values))
        kept, values = kept[order], values[order]
    kept, values = kept[:k], values[:k]
    zeros = rows[~positive]
    if len(kept) < k and len(zeros):
        kept, values = np.append(kept, zeros.min()), np.append(values, 0.0)
    return ScoredRows(kept, values)


class _PassageBM25:
    """A BM25 list over the passages of one side: the question's language, or the others.

    Its scores are each passage's share of a full match of the question's terms (``lexical_evidence=rank``), or
    of the question's content words, unknown ones included (``coverage``; ``LexicalIndex.coverage``).
    """

    scores_candidates = False

    def __init__(self, params: SearchParams, has_hubness: bool) -> None:
        self.params = params

    def lexical(self, shard: LocalShard) -> LexicalIndex:
        """The BM25 index the list searches."""
        return shard.data.lexical

    def terms(self, index: LexicalIndex, query: Query) -> list[str]:
        """The question's terms, as ``index`` analyses them."""
        return index.query_terms(query.text, query.lang)

    def words(self, index: LexicalIndex, query: Query) -> list[list[str]]:
        """The question's content words, each as the terms of ``index`` that match it."""
        return index.question_words(query.text, query.lang)

    def scores(self, shard: LocalShard, query: Query) -> np.ndarray | None:
        """Every passage's share of the question (None: nothing to match)."""
        index = self.lexical(shard)
        if self.params.lexical_evidence == "coverage":
            return index.coverage(self.words(index, query), self.params.unknown_word_weight)
        terms = self.terms(index, query)
        return index.shares_of_terms(terms) if terms else None

    def retrieve(self, shard: LocalShard, query: Query, scope: Scope, found: Mapping) -> ScoredRows:
        rows = scope.same if self.documents == "question" else scope.other
        if rows is False:
            return NO_ROWS
        scores = self.scores(shard, query)
        if scores is None:
            return NO_ROWS
        local = top_k_with_zero(scores, self.params.pool, rows)
        return ScoredRows(shard.whole_passage_rows(local.rows), local.scores)

    def empty(self) -> ScoredRows:
        return NO_ROWS

    def passage_rows(self, part: ScoredRows) -> np.ndarray:
        return part.rows

    def merge(self, parts: Sequence[ScoredRows], merged: Mapping[str, Ranked]) -> ScoredRows:
        return merge_top(parts, self.params.pool)


class StemmedPassages(_PassageBM25):
    """Stemmed BM25 over the passages in the question's language."""

    documents = "question"


class CrossLanguagePassages(_PassageBM25):
    """BM25 over the passages in other languages: 5-letter word prefixes (``delegations`` meets
    ``délégations``), or stems (``cross_language_terms``)."""

    documents = "other"

    def lexical(self, shard: LocalShard) -> LexicalIndex:
        data = shard.data
        return data.cognates if self.params.cross_language_terms == "prefixes" else data.lexical


class TranslatedPassages(_PassageBM25):
    """Stemmed BM25 over the passages in other languages, of the question words' translations into them
    (``index.search.translation``)."""

    documents = "other"

    def terms(self, index: LexicalIndex, query: Query) -> list[str]:
        return [term for stems in query.translations.values() for term in stems]

    def words(self, index: LexicalIndex, query: Query) -> list[list[str]]:
        return query.word_terms()
