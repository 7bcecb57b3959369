"""What a searcher sends to its shards and gets back: the question, and passages with their highlight."""

from __future__ import annotations

from dataclasses import dataclass

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
    word_translations: dict[str, dict[str, list[str]]]  # content word -> other document language -> stems
    filters: Filters | None = None  # the documents it may be answered from, which each shard resolves to its rows

    @property
    def translations(self) -> dict[str, list[str]]:
        """Per other document language, the stems of the question words' translations, in the words' order."""
        out: dict[str, dict[str, None]] = {}
        for by_language in self.word_translations.values():
            for other, stems in by_language.items():
                out.setdefault(other, {}).update(dict.fromkeys(stems))
        return {other: list(stems) for other, stems in out.items()}

    def word_terms(self) -> list[list[str]]:
        """Each content word as the stems of its translations into every other document language."""
        return [
            list(dict.fromkeys(stem for stems in by_language.values() for stem in stems))
            for by_language in self.word_translations.values()
        ]
