"""A shard's raw ranked lists, and the pure functions that finish them into the lists fusion takes.

``LocalShard.retrieve`` returns ``ShardLists``; the searcher merges them across shards
(index.search.merging) and finishes them with ``penalised`` and ``best_per_passage`` as over one index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.config import SearchParams
from index.search.fusion import Ranked, ScoredRows, max_by_group, top_k
from index.search.query import Passage

OVERSAMPLE = 3  # rows asked of a vector store per row kept, when discounts may reorder them


@dataclass
class VectorHits:
    """A vector store's nearest rows before their discount; sentence hits carry the passages they overlap."""

    rows: np.ndarray  # rows in the whole index
    scores: np.ndarray  # similarity, or BM25 score for sentence terms
    discount: np.ndarray  # taken off each row's similarity before ranking (see ``discounts``)
    first_chunk: np.ndarray | None = None  # sentences: first and last passage row each one overlaps
    last_chunk: np.ndarray | None = None


@dataclass
class ShardLists:
    """What ``retrieve`` returns: each ranked list's raw top-k′, to be merged across shards."""

    dense: VectorHits
    sentences: VectorHits
    lexical: ScoredRows
    cognates: ScoredRows
    translated: ScoredRows
    sentence_terms: VectorHits  # positive BM25 sentences of every passage this shard may have as a candidate
    passages: dict[int, Passage] = field(default_factory=dict)  # see Query.prefetch (scores left at 0)


def fusion_weights(p: SearchParams, both_languages: bool = False, best_share: float = 1.0) -> list[float]:
    """Weights of the six lists of ``LocalShard.final_lists``, in their order.

    ``best_share``: how much of a full match of the question the best passage of the stemmed BM25 list (the
    question's language) scored (``best_lexical_share``). Min-max scaling gives that passage 1.0 even when it
    matched one common word, so the list's weight is scaled by the share to the power ``full_match_power``
    (E5: 0.35; eval/README, row 40).

    ``both_languages``: documents in the question's language and in others both matched its words.
    The other languages' lists are then scaled up to close ``balance_languages`` of the gap between the
    two totals (the question language's as ``best_share`` left it): at 1.0 + 0.3 against 0.25 + 0.25, a
    passage in the question's language that matched one word outranked the answer in another language
    nearly always (English questions over Spanish articles beside English ones: 0.057 hit@1; 0.734 with
    0.75 of the gap closed; eval/README, row 36). Each list is min-max scaled, so its weight is the most it
    can add.
    """
    lexical = p.bm25_same_language * min(max(best_share, 0.0), 1.0) ** p.full_match_power
    same, cross = lexical + p.sentence_bm25, p.bm25_cross_language + p.bm25_translated
    scale = 1.0
    if both_languages and same > 0 and cross > 0:
        scale += p.balance_languages * (same / cross - 1.0)
    return [p.chunk_dense, p.sentence_dense, lexical, scale * p.bm25_cross_language, p.sentence_bm25,
            scale * p.bm25_translated]  # fmt: skip


def best_lexical_share(lists: Sequence[Ranked]) -> float:
    """The best score of the stemmed BM25 list: a share of a full match (``LexicalIndex.shares``); 0 if empty."""
    scores = _scores(lists[2])
    return float(scores.max()) if len(scores) else 0.0


def both_languages_matched(lists: Sequence[Ranked]) -> bool:
    """Whether the six lists hold BM25 hits both in the question's language and in another (see ``fusion_weights``).

    A hit is a positive score: a shard's list may carry a lone zero row for the merge (``top_k_with_zero``).
    """
    _, _, lexical, cognates, _, translated = lists
    return _scored(lexical) and (_scored(cognates) or _scored(translated))


def _scored(ranked: Ranked) -> bool:
    return bool((_scores(ranked) > 0).any())


def _scores(ranked: Ranked) -> np.ndarray:
    return ranked.scores if isinstance(ranked, ScoredRows) else np.fromiter(ranked.values(), float, len(ranked))


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
    return OVERSAMPLE if (p.hub_penalty and has_hubness) or p.language_gap else 1


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


def best_per_passage(first: np.ndarray, last: np.ndarray, scores: np.ndarray) -> ScoredRows:
    """Highest score among the sentences overlapping each passage, from each sentence's passage range."""
    chunk_rows, counts = spanned_rows(first, last)
    return max_by_group(chunk_rows, np.repeat(scores, counts))


def spanned_rows(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row from ``first[i]`` to ``last[i]`` for each i, concatenated, and how many each i spans."""
    counts = np.maximum(last - first + 1, 0)
    return np.repeat(first, counts) + ranges(counts), counts


def top_k_with_zero(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> ScoredRows:
    """``top_k``'s positive rows, plus the first allowed zero row whenever there is one.

    The merge across shards then decides, as ``top_k`` does over the whole index, whether a zero
    row belongs in the list (fewer than k rows scored) and which (the first in the whole index).
    """
    ranked = top_k(scores, k, allowed)
    positive = ranked.scores > 0
    if len(ranked) and not positive.all():
        return ranked
    zeros = np.flatnonzero(scores <= 0)
    if allowed is not None:
        zeros = zeros[allowed[zeros]]
    if not len(zeros):
        return ranked
    return ScoredRows(np.append(ranked.rows, zeros[0]), np.append(ranked.scores, 0.0))


def no_hits(ranges: bool = False) -> VectorHits:
    empty = np.zeros(0, dtype=np.int64)
    return VectorHits(empty, np.zeros(0), np.zeros(0, dtype=np.float32), *((empty, empty) if ranges else ()))


def empty_lists() -> ShardLists:
    empty = ScoredRows([], [])
    return ShardLists(no_hits(), no_hits(True), empty, empty, empty, no_hits(True))


def ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated: [2, 3] -> [0, 1, 0, 1, 2]."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(ends[-1]) - np.repeat(ends - counts, counts)
