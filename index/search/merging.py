"""Pure functions that merge one ranked list's parts from several shards into the list of the whole index.

Each shard returns its raw top-k′ (index.search.shard); merging takes the best k′ of their union, with the
same order and ties (lower row first) as the unsharded index. Only then does the searcher apply the
hubness penalty, min-max normalise and fuse: normalising per shard would not give the same scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.search.fusion import ScoredRows
from index.search.hits import VectorHits, best_per_passage


def merge_hits(parts: Sequence[VectorHits], k: int) -> VectorHits:
    """The ``k`` most similar hits of all parts, best first, ties by row."""
    rows = np.concatenate([part.rows for part in parts])
    scores = np.concatenate([part.scores for part in parts])
    order = np.lexsort((rows, -scores))[:k]
    discount = np.concatenate([part.discount for part in parts])[order]
    if parts[0].first_chunk is None:
        return VectorHits(rows[order], scores[order], discount)
    first = np.concatenate([part.first_chunk for part in parts])[order]
    last = np.concatenate([part.last_chunk for part in parts])[order]
    return VectorHits(rows[order], scores[order], discount, first, last)


def merge_top(parts: Sequence[ScoredRows], k: int) -> ScoredRows:
    """The ``k`` best positive rows of all parts, then, when fewer scored, the first zero row any part offers.

    What ``fusion.top_k`` gives over the whole index, from each shard's ``shard.top_k_with_zero``.
    """
    rows = np.concatenate([part.rows for part in parts])
    scores = np.concatenate([part.scores for part in parts])
    positive = scores > 0
    if not positive.any():
        return ScoredRows([], [])
    kept, values = rows[positive], scores[positive]
    order = np.lexsort((kept, -values))[:k]
    kept, values = kept[order], values[order]
    zeros = rows[~positive]
    if len(kept) < k and len(zeros):
        kept, values = np.append(kept, zeros.min()), np.append(values, 0.0)
    return ScoredRows(kept, values)


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
