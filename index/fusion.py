"""Pure functions that turn several ranked lists into one.

A ranked list is a mapping ``{row: score}`` from one retriever. Fusion works
on rows that any list found; a row missing from a list gets that list's
lowest score, the most a retriever can vouch for an item it did not return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Ranked = Mapping[int, float]


def top_k(scores: np.ndarray, k: int) -> Ranked:
    """The ``k`` best entries of a non-negative score array, as a ranked list (ties: lower row first).

    Only rows that scored are partitioned, which keeps this cheap at a million
    rows. When fewer than ``k`` rows scored, one zero row stays in the list so
    that min-max normalisation starts from zero; when none scored the list is
    empty, rather than ``k`` equal zeros that would normalise to ones.
    """
    rows = np.flatnonzero(scores > 0)
    if not len(rows):
        return {}
    if len(rows) < min(k, len(scores)):
        rows = np.append(rows, np.flatnonzero(scores <= 0)[0])
    k = min(k, len(rows))
    values = scores[rows]
    part = np.argpartition(-values, k - 1)[:k]
    order = rows[part[np.lexsort((rows[part], -values[part]))]]
    return {int(row): float(scores[row]) for row in order}


def minmax(ranked: Ranked) -> dict[int, float]:
    """Scale a list's scores into [0, 1]; a list of equal scores becomes all ones."""
    if not ranked:
        return {}
    values = np.fromiter(ranked.values(), dtype=np.float64, count=len(ranked))
    low, high = values.min(), values.max()
    if high - low < 1e-12:
        return dict.fromkeys(ranked, 1.0)
    return {row: (score - low) / (high - low) for row, score in ranked.items()}


def fill_missing(ranked: Ranked, rows: Sequence[int]) -> np.ndarray:
    """Scores of ``rows`` in ``ranked``, with the list's minimum for rows it lacks."""
    floor = min(ranked.values()) if ranked else 0.0
    return np.array([ranked.get(row, floor) for row in rows], dtype=np.float64)


def weighted_fusion(
    lists: Sequence[Ranked], weights: Sequence[np.ndarray | float], rows: Sequence[int] | None = None
) -> dict[int, float]:
    """Sum of min-max normalised scores times weights; a weight may differ per candidate row.

    ``weights[i]`` is either one number for list ``i`` or an array aligned with
    ``rows``, the sorted union of rows (pass it when already computed), so
    callers can weigh a retriever by document.
    """
    rows = candidate_rows(lists) if rows is None else rows
    total = np.zeros(len(rows), dtype=np.float64)
    for ranked, weight in zip(lists, weights, strict=True):
        total += np.asarray(weight, dtype=np.float64) * fill_missing(minmax(ranked), rows)
    return dict(zip(rows, total.tolist(), strict=True))


def candidate_rows(lists: Sequence[Ranked]) -> list[int]:
    """Sorted union of the rows of every list."""
    return sorted(set().union(*(ranked.keys() for ranked in lists)))


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
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]


def max_by_group(groups: np.ndarray, scores: np.ndarray) -> Ranked:
    """Highest score per group id, e.g. the best sentence of each passage."""
    out: dict[int, float] = {}
    for group, score in zip(groups.tolist(), scores.tolist(), strict=True):
        if score > out.get(group, -np.inf):
            out[group] = score
    return out
