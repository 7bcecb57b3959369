"""Merging: the ranked lists of the whole index from every shard's parts.

Each retriever merges its own parts (``Retriever.merge``): the best of their union, with the same order
and ties (lower row first) as over the whole index, and only then what needs every shard's rows (vector
discounts, the pool, a zero row). The lists that score the passages others found merge last, from the
merged lists of the others. The whole index is one shard: its lists come out of the same merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from index.search.fusion import Ranked
from index.search.query import Passage
from index.search.retrievers import Retrievers
from index.search.retrievers.base import Part


@dataclass
class Retrieved:
    """What one shard answers for a question: each retriever's part, by name, and passages it sent along."""

    parts: dict[str, Part]
    # The passages of the shard's own best candidates, by row in the whole index, when asked to prefetch them
    # (``LocalShard.retrieve``); their scores are left at 0, the searcher sets them.
    passages: dict[int, Passage] = field(default_factory=dict)


@dataclass
class Merged:
    """The whole index's ranked lists for a question, by retriever name, and the passages shards sent along."""

    lists: dict[str, Ranked]
    passages: dict[int, Passage]


def merge(retrievers: Retrievers, answers: Sequence[Retrieved]) -> Merged:
    """Every list of the whole index from each shard's answer, in the config's order."""
    merged: dict[str, Ranked] = {}
    for name, retriever in retrievers.in_turn:
        merged[name] = retriever.merge([answer.parts[name] for answer in answers], merged)
    passages = {row: passage for answer in answers for row, passage in answer.passages.items()}
    return Merged({name: merged[name] for name in retrievers}, passages)
