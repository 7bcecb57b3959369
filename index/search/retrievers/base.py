"""The retriever interface: one ranked list of a search, retrieved in each shard and merged across shards.

A retriever works in two places. In a shard (``LocalShard.retrieve``) it returns its *part*: its raw
top rows among the shard's own, numbered in the whole index, before anything that needs the other
shards' rows (a discount that can reorder vector hits, the zero row of a BM25 list). In the searcher
(``index.search.merge``) it merges the parts of every shard into its ranked list of the whole index:
``{passage row: score}``. The whole index is one shard on the same path.

Lists travel as a mapping from the retriever's name (``index.config.RETRIEVERS``) to its list, in the
config's order: the order the fusion adds them in and the learned ranker names its features by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from index.search.filters import AllowedRows
from index.search.fusion import Ranked, ScoredRows, max_by_group
from index.search.query import Query
from index.text.tables import spanned_rows

if TYPE_CHECKING:
    from index.search.shard import LocalShard

Rows = np.ndarray | bool | None  # a passage row mask; None: every row; False: no row
Part = Any  # what one retriever returns from one shard: its own type, merged by the same retriever
Documents = Literal["any", "question", "other"]  # whose passages a list ranks: any, the question's language, others


@dataclass(frozen=True)
class Scope:
    """The rows one shard may answer one question from."""

    allowed: AllowedRows | None  # the rows the question's filter keeps; None: every row
    same: Rows  # allowed passage rows in the question's language
    other: Rows  # allowed passage rows in other languages

    @property
    def empty(self) -> bool:
        """Whether the filter keeps no passage of the shard."""
        return self.allowed is not None and not self.allowed.count


class Retriever(Protocol):
    """One ranked list of a search: its part in each shard, and the list of the whole index merged from them."""

    # The documents its list ranks: the fusion balances the lexical lists of the question's language against
    # those of the others (index.search.fusion.Fuser).
    documents: Documents
    # True for a list that scores only the passages the other lists found: it runs, in shards and in the merge,
    # once they have (``found`` and ``merged`` hold their parts and lists).
    scores_candidates: bool

    def retrieve(self, shard: LocalShard, query: Query, scope: Scope, found: Mapping[str, Part]) -> Part:
        """This shard's part, rows numbered in the whole index."""
        ...

    def empty(self) -> Part:
        """The part of a shard that has no row to search."""
        ...

    def passage_rows(self, part: Part) -> np.ndarray:
        """Every passage row (in the whole index) the merged list may hold from ``part``."""
        ...

    def merge(self, parts: Sequence[Part], merged: Mapping[str, Ranked]) -> Ranked:
        """The list of the whole index from every shard's part."""
        ...


def best_per_passage(first: np.ndarray, last: np.ndarray, scores: np.ndarray) -> ScoredRows:
    """Highest score among the sentences overlapping each passage, from each sentence's passage range."""
    chunk_rows, counts = spanned_rows(first, last)
    return max_by_group(chunk_rows, np.repeat(scores, counts))
