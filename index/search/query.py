"""What a searcher sends to its shards and gets back: the question, and passages with their highlight."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from index.search.filters import Filters


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
    word_translations: dict[str, list[str]] = field(default_factory=dict)  # content word -> its translations' stems
    filters: Filters | None = None  # the documents it may be answered from, which each shard resolves to its rows
