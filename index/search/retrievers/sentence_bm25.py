"""The best stemmed-BM25 sentence of each candidate passage, in the question's language.

A re-ranking signal: only the sentences of passages another list found are scored, so its cost does
not grow with the index. A shard cannot know which passages the merged lists will keep, so it scores
the sentences of every passage its own parts may contribute; the merge then keeps the sentences that
overlap a passage of the merged lists, as over the whole index. A sentence overlapping two passages
gives both its score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from index.config import SearchParams
from index.search.fusion import Ranked, ScoredRows, candidate_rows, sorted_unique
from index.search.query import Query
from index.search.retrievers.base import Scope, best_per_passage
from index.search.retrievers.nearest import SentenceHitRows, VectorHits
from index.text.tables import spanned_rows

if TYPE_CHECKING:
    from index.search.shard import LocalShard


def best_sentence_of(parts: Sequence[VectorHits], candidates: np.ndarray) -> ScoredRows:
    """Best BM25 sentence per passage, from the sentences overlapping a candidate passage only.

    ``candidates`` are sorted passage rows; each part holds positive sentences with the passage
    range each overlaps, so a passage next to a candidate gets the score of the sentence they share,
    as in the unsharded index.
    """
    first = np.concatenate([part.first_chunk for part in parts])
    last = np.concatenate([part.last_chunk for part in parts])
    scores = np.concatenate([part.scores for part in parts])
    overlaps = np.searchsorted(candidates, last, side="right") > np.searchsorted(candidates, first, side="left")
    return best_per_passage(first[overlaps], last[overlaps], scores[overlaps])


class BestSentenceTerms(SentenceHitRows):
    """Each candidate passage's best sentence by stemmed BM25, in the question's language (off at weight 0)."""

    documents = "question"
    scores_candidates = True

    def __init__(self, params: SearchParams, has_hubness: bool) -> None:
        self.on = bool(params.sentence_bm25)

    def retrieve(self, shard: LocalShard, query: Query, scope: Scope, found: Mapping) -> VectorHits:
        """Positive BM25 sentences (scores, no discount) of every passage this shard's parts may contribute."""
        same = scope.same
        if not self.on or same is False:
            return self.empty()
        # Every passage the merged lists may hold from this shard: the merge alone will know which they are.
        found_rows = np.concatenate([shard.retrievers[name].passage_rows(part) for name, part in found.items()])
        candidates = sorted_unique(shard.shard_passage_rows(found_rows))
        if same is not None:
            candidates = candidates[same[candidates]]
        links = shard.links
        spanned, _ = spanned_rows(links.chunk_first_sentence[candidates], links.chunk_last_sentence[candidates])
        rows = sorted_unique(spanned)
        scores = shard.data.sentence_lexical.scores_of_rows(query.text, query.lang, rows)
        rows, scores = rows[scores > 0], scores[scores > 0]
        hits = VectorHits(rows, scores, np.zeros(len(rows), dtype=np.float32), links.sentence_first_chunk[rows],
                          links.sentence_last_chunk[rows])  # fmt: skip
        return shard.whole_sentence_hits(hits)

    def merge(self, parts: Sequence[VectorHits], merged: Mapping[str, Ranked]) -> ScoredRows:
        if not self.on:
            return ScoredRows([], [])
        return best_sentence_of(parts, candidate_rows(list(merged.values())))
