"""Fusion: several ranked lists made one, by the weighted sum of their scaled scores (``Fuser``).

A ranked list is a mapping ``{row: score}`` from one retriever. Fusion works
on rows that any list found; a row missing from a list gets that list's
lowest normalised score, 0, the most a retriever can vouch for an item it
did not return.
The retrievers' lists are ``ScoredRows``: the same mapping kept as two numpy
arrays, since every function here computes on arrays anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from index.config import RETRIEVERS, SearchParams

if TYPE_CHECKING:
    from index.search.retrievers.base import Retriever

Ranked = Mapping[int, float]


class ScoredRows(Mapping[int, float]):
    """A ranked list as aligned arrays of distinct rows and their scores; reads as a ``{row: score}`` mapping."""

    __slots__ = ("_lookup", "rows", "scores")

    def __init__(self, rows: np.ndarray | Sequence[int], scores: np.ndarray | Sequence[float]) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.scores = np.asarray(scores, dtype=np.float64)
        self._lookup: dict[int, float] | None = None

    def __getitem__(self, row: int) -> float:
        if self._lookup is None:
            self._lookup = dict(zip(self.rows.tolist(), self.scores.tolist(), strict=True))
        return self._lookup[row]

    def __iter__(self) -> Iterator[int]:
        return iter(self.rows.tolist())

    def __len__(self) -> int:
        return len(self.rows)


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> ScoredRows:
    """The ``k`` best entries of a non-negative score array, as a ranked list (ties: lower row first).

    Only rows that scored are partitioned, which keeps this cheap at a million
    rows; ``allowed``, a boolean mask, restricts the rows considered. When fewer
    than ``k`` rows scored, one zero row stays in the list so that min-max
    normalisation starts from zero; when none scored the list is empty, rather
    than ``k`` equal zeros that would normalise to ones.
    """
    rows = np.flatnonzero(scores > 0)
    if allowed is not None:
        rows = rows[allowed[rows]]
    if not len(rows):
        return ScoredRows([], [])
    if len(rows) < min(k, len(scores)):
        zeros = np.flatnonzero(scores <= 0)
        if allowed is not None:
            zeros = zeros[allowed[zeros]]  # a filter's list holds allowed rows only, zero row included
        rows = np.append(rows, zeros[:1])
    k = min(k, len(rows))
    values = scores[rows]
    part = np.argpartition(-values, k - 1)[:k]
    kth = values[part].min()
    if (values == kth).sum() > (values[part] == kth).sum():
        # Ties at the cut: argpartition keeps any of them, the lowest rows are kept instead (as shards merge).
        above = np.flatnonzero(values > kth)
        part = np.concatenate([above, np.flatnonzero(values == kth)[: k - len(above)]])
    order = rows[part[np.lexsort((rows[part], -values[part]))]]
    return ScoredRows(order, scores[order])


def minmax(ranked: Ranked) -> dict[int, float]:
    """Scale a list's scores into [0, 1]; a list of equal scores becomes all ones."""
    rows, scores = arrays(ranked)
    return dict(zip(rows.tolist(), scaled(scores).tolist(), strict=True))


def fill_missing(ranked: Ranked, rows: Sequence[int] | np.ndarray, fill: float | None = None) -> np.ndarray:
    """Scores of ``rows`` in ``ranked``, with ``fill`` (default: the list's minimum) for rows it lacks."""
    return _spread(*arrays(ranked), np.asarray(rows, dtype=np.int64), fill)


def weighted_fusion(
    lists: Sequence[Ranked],
    weights: Sequence[np.ndarray | float],
    rows: Sequence[int] | np.ndarray | None = None,
    absolute: Sequence[bool] | None = None,
) -> ScoredRows:
    """Sum of min-max normalised scores times weights; a weight may differ per candidate row.

    ``weights[i]`` is either one number for list ``i`` or an array aligned with
    ``rows``, the sorted union of rows (pass it when already computed), so
    callers can weigh a retriever by document. A list marked in ``absolute``
    keeps its scores as they are: scores on a scale of their own, from 0 to 1.
    """
    rows = candidate_rows(lists) if rows is None else np.asarray(rows, dtype=np.int64)
    absolute = absolute or [False] * len(lists)
    total = np.zeros(len(rows), dtype=np.float64)
    for ranked, weight, as_is in zip(lists, weights, absolute, strict=True):
        keys, scores = arrays(ranked)
        # Rows a list lacks get 0, its scaled floor; also when the list holds a single row (or equal scores),
        # which scales to ones: a same-language BM25 list with the corpus's one English passage would
        # otherwise give every passage of the other languages the full weight too.
        total += np.asarray(weight, dtype=np.float64) * _spread(keys, scores if as_is else scaled(scores), rows, 0.0)
    return ScoredRows(rows, total)


def candidate_rows(lists: Sequence[Ranked]) -> np.ndarray:
    """Sorted union of the rows of every list."""
    keys = [arrays(ranked)[0] for ranked in lists]
    return sorted_unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for a few thousand integers, by sorting: numpy 2's hash-based unique is slower at this size."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def reciprocal_rank_fusion(lists: Sequence[Ranked], k: int = 60) -> dict[int, float]:
    """Classic RRF: sum of 1 / (k + rank), rank counted from 1 in each list."""
    fused: dict[int, float] = {}
    for ranked in lists:
        ordered = sorted(ranked.items(), key=lambda item: (-item[1], item[0]))
        for rank, (row, _) in enumerate(ordered, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return fused


def best(fused: Mapping[int, float], k: int) -> list[tuple[int, float]]:
    """The ``k`` highest-scoring rows, best first, ties broken by row."""
    rows, scores = arrays(fused)
    order = np.lexsort((rows, -scores))[:k]
    return list(zip(rows[order].tolist(), scores[order].tolist(), strict=True))


def max_by_group(groups: np.ndarray, scores: np.ndarray) -> ScoredRows:
    """Highest score per group id, e.g. the best sentence of each passage."""
    groups, scores = np.asarray(groups, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    if not len(groups):
        return ScoredRows([], [])
    order = np.argsort(groups, kind="stable")  # callers pass groups nearly sorted: a stable sort is quick
    groups, scores = groups[order], scores[order]
    starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
    return ScoredRows(groups[starts], np.maximum.reduceat(scores, starts))


def scaled(scores: np.ndarray) -> np.ndarray:
    """Min-max scaling of one list's scores; equal scores become ones."""
    if not len(scores):
        return scores
    low, high = scores.min(), scores.max()
    if high - low < 1e-12:
        return np.ones_like(scores)
    return (scores - low) / (high - low)


def _spread(keys: np.ndarray, scores: np.ndarray, rows: np.ndarray, fill: float | None = None) -> np.ndarray:
    """``scores`` placed at the positions of ``keys`` in ``rows``; other rows get ``fill``, or the lowest score."""
    if fill is None:
        fill = scores.min() if len(scores) else 0.0
    out = np.full(len(rows), fill)
    if len(keys) and len(rows):
        order = np.argsort(rows)
        at = np.searchsorted(rows, keys, sorter=order).clip(max=len(rows) - 1)
        found = rows[order[at]] == keys
        out[order[at[found]]] = scores[found]
    return out


def arrays(ranked: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """The rows and scores of a ranked list as two arrays."""
    if isinstance(ranked, ScoredRows):
        return ranked.rows, ranked.scores
    n = len(ranked)
    return (
        np.fromiter(ranked.keys(), dtype=np.int64, count=n),
        np.fromiter(ranked.values(), dtype=np.float64, count=n),
    )


class Fused(ScoredRows):
    """One question's fusion: every candidate row's fused score (a ranked list), and the weight each list got."""

    __slots__ = ("weights",)

    def __init__(self, fused: ScoredRows, weights: dict[str, float]) -> None:
        super().__init__(fused.rows, fused.scores)
        self.weights = weights


class Fuser:
    """The weighted fusion of a search's named lists: it owns their weights, their scaling and the weighting by
    language, and reports the weights it applied with each fusion.

    Each list has the weight of the ``SearchParams`` field its ``RETRIEVERS`` entry names (``weights``). Lists are
    min-max scaled, but for the passage BM25 lists when ``lexical_evidence`` is ``coverage``: their scores, each
    passage's share of the question it explains (``LexicalIndex.coverage``), count as they are, so that a passage
    that matched one common word adds little, however it ranks. Per question, two things change the weights
    (``applied``):

    - A full match (``lexical_evidence=rank`` only). Min-max scaling gives the top of a BM25 list 1.0 even when
      it matched one common word, so the weight of each passage BM25 list of the question's language is scaled by
      its best passage's share of a full match of the question (its scores are such shares) to the power
      ``full_match_power`` (E5: 0.35; eval/README, row 40).
    - The languages. When documents in the question's language and in others both matched its words, the lists
      of the other languages are scaled up to close ``balance_languages`` of the gap between the two sides'
      total weights (the question language's as the full match left it): at 1.0 + 0.3 against 0.25 + 0.25, a
      passage in the question's language that matched one word outranked the answer in another language nearly
      always (English questions over Spanish articles beside English ones: 0.057 hit@1; 0.734 with 0.75 of the
      gap closed; eval/README, row 36). Each list is min-max scaled, so its weight is the most it can add.
    """

    def __init__(self, params: SearchParams, retrievers: Mapping[str, Retriever]) -> None:
        self.params = params
        self.weights = {name: getattr(params, RETRIEVERS[name].weight) for name in retrievers}
        sides = {
            side: [name for name, retriever in retrievers.items() if retriever.documents == side]
            for side in ("question", "other")
        }
        self.question_language, self.other_languages = sides["question"], sides["other"]
        # What shows that a side matched the question's words: a list of its own, not one scoring others' rows.
        self.own = {
            side: [name for name in names if not retrievers[name].scores_candidates] for side, names in sides.items()
        }
        coverage = params.lexical_evidence == "coverage"
        self.absolute = [coverage and name in self.own["question"] + self.own["other"] for name in self.weights]

    def fuse(self, lists: Mapping[str, Ranked], balance: bool | None = None) -> Fused:
        """Weighted sum of the min-max normalised lists, in the config's order (a row missing from a list gets 0
        from it); ``balance``: whether to balance the languages (default: when both matched)."""
        weights = self.applied(lists, balance)
        names = list(self.weights)
        fused = weighted_fusion([lists[name] for name in names], [weights[name] for name in names], None, self.absolute)
        return Fused(fused, weights)

    def applied(self, lists: Mapping[str, Ranked], balance: bool | None = None) -> dict[str, float]:
        """The weight of each list for these lists of one question (see the class)."""
        p = self.params
        weights = dict(self.weights)
        for name in self.own["question"] if p.lexical_evidence == "rank" else ():
            weights[name] *= min(max(best_score(lists[name]), 0.0), 1.0) ** p.full_match_power
        same = sum(weights[name] for name in self.question_language)
        cross = sum(weights[name] for name in self.other_languages)
        if balance is None:
            balance = self.both_languages_matched(lists)
        if balance and same > 0 and cross > 0:
            scale = 1.0 + p.balance_languages * (same / cross - 1.0)
            for name in self.other_languages:
                weights[name] = scale * weights[name]
        return weights

    def both_languages_matched(self, lists: Mapping[str, Ranked]) -> bool:
        """Whether BM25 lists of their own found passages both in the question's language and in another.

        A hit is a positive score: a shard's list may carry a lone zero row for the merge (``top_k_with_zero``).
        """
        return any(_scored(lists[name]) for name in self.own["question"]) and any(
            _scored(lists[name]) for name in self.own["other"]
        )


def best_score(ranked: Ranked) -> float:
    """A list's highest score; 0 for an empty one."""
    scores = arrays(ranked)[1]
    return float(scores.max()) if len(scores) else 0.0


def _scored(ranked: Ranked) -> bool:
    return bool((arrays(ranked)[1] > 0).any())
