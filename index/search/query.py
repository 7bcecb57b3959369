"""What a searcher sends to its shards and gets back: the question, and passages with their highlight."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from index.search.filters import AllowedRows, Filters


@dataclass(frozen=True)
class Highlight:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    highlight: Highlight


@dataclass(frozen=True)
class Query:
    """A question ready to search: its language, its vector, and its words' translations."""

    text: str
    lang: str
    vector: np.ndarray
    translations: dict[str, list[str]]  # other document language -> stems of the question words' translations
    allowed: AllowedRows | None = None  # the rows a filter keeps, in an unsharded index; None: every row
    filters: Filters | None = None  # the filter itself, which each shard of a sharded index resolves to its rows
    prefetch: int = 0  # shards of a sharded index send the passages of this many of their own best candidates
    # ... which the searcher keeps here (passage row -> passage), so as to ask only for the others
    prefetched: dict[int, Passage] = field(default_factory=dict, compare=False)
