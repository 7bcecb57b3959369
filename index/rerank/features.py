"""Pure functions that describe each candidate passage to the learned ranker (see ``index.rerank.ranker``).

The hand-set fusion sees each list only through min-max normalised scores, so
the top of every list gets 1.0 even when it matched one common word. These
features add what a weighted sum cannot see: how much of a full match a
lexical score is, which share of the question's words (weighted by their
rarity) a passage and its best sentence hold, each list's rank, and the raw
vector similarities.

No feature is a fixed property of a passage (its length, its hubness): the
ranker is trained on questions about some articles, and such a feature would
let it recognise those articles' passages, whose questions it saw, and prefer
them to passages of any other article (a first ranker with both fell on the
held-out halves and the seed sets, see eval/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from index.config import RETRIEVERS
from index.search.fusion import Ranked, ScoredRows, arrays, fill_missing, scaled

LISTS = tuple(RETRIEVERS)  # the ranked lists of a search, by name, in the config's order
LEXICAL = ("bm25", "cognates", "sentence_bm25", "translated")
MISSING_RANK = 1000  # rank given to a candidate that a list did not return

FEATURES = (
    *(f"{name}_norm" for name in LISTS),
    *(f"{name}_rank" for name in LISTS),
    *(f"{name}_full" for name in LEXICAL),
    "fused",
    "fused_rank",
    "passage_cosine",
    "sentence_cosine",
    "coverage_passage",
    "coverage_sentence",
    "coverage_prefixes",
    "same_language",
    "question_terms",
)


def normalised_and_ranks(ranked: Ranked, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max normalised score (0 when absent, as in the fusion) and 1-based rank of each row in one list."""
    keys, scores = arrays(ranked)
    if not len(keys):
        return np.zeros(len(rows)), np.full(len(rows), float(MISSING_RANK))
    rank_of = np.empty(len(keys))
    rank_of[np.lexsort((keys, -scores))] = np.arange(1, len(keys) + 1)
    normalised = fill_missing(ScoredRows(keys, scaled(scores)), rows, 0.0)
    return normalised, fill_missing(ScoredRows(keys, rank_of), rows, float(MISSING_RANK))


def raw_scores(ranked: Ranked, rows: np.ndarray) -> np.ndarray:
    """Each row's score in a list, 0 when the list did not return it."""
    return fill_missing(ranked, rows, 0.0)


def full_match_ratio(scores: np.ndarray, ceiling: float) -> np.ndarray:
    """Lexical scores as a share of what a full match of the question would score (0 when nothing can match)."""
    if ceiling <= 0:
        return np.zeros(len(scores))
    return np.asarray(scores, dtype=np.float64) / ceiling


def weighted_coverage(presence: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Share of the question's terms, weighted by rarity, that each row holds; ``presence`` is (rows, terms)."""
    total = float(np.sum(weights))
    if not presence.shape[0]:
        return np.zeros(0)
    if total <= 0:
        return np.zeros(presence.shape[0])
    return presence.astype(np.float64) @ np.asarray(weights, dtype=np.float64) / total


def best_per_group(groups: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Highest value per group id in ``range(count)``, floored at 0 (so 0 for a group with no value)."""
    out = np.zeros(count)
    if len(groups):
        np.maximum.at(out, np.asarray(groups, dtype=np.int64), np.asarray(values, dtype=np.float64))
    return out


def feature_matrix(columns: dict[str, np.ndarray | float], rows: int) -> np.ndarray:
    """The columns in ``FEATURES`` order as a float64 (rows, features) matrix; a number fills its column."""
    missing = [name for name in FEATURES if name not in columns]
    if missing:
        raise KeyError(f"features missing: {missing}")
    matrix = np.empty((rows, len(FEATURES)), dtype=np.float64)
    for j, name in enumerate(FEATURES):
        matrix[:, j] = columns[name]
    return matrix


def ranked_lists_columns(lists: Mapping[str, Ranked], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The ``*_norm`` and ``*_rank`` columns of the lists of ``Searcher.retrieve``, by name."""
    columns: dict[str, np.ndarray] = {}
    for name in LISTS:
        columns[f"{name}_norm"], columns[f"{name}_rank"] = normalised_and_ranks(lists[name], rows)
    return columns
