"""Column tables of spans (passages or sentences) and how they relate.

Rows are ordered by document, then by start offset. Each row carries a stable
int64 id that the vector stores use, so an unchanged document keeps its ids
(and its vectors) across rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

_OFFSET_BITS = 40  # documents up to a terabyte; doc rows up to 2**23


@dataclass(frozen=True)
class SpanTable:
    """Parallel arrays: id, document row, start and end offset of each span."""

    ids: np.ndarray
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> SpanTable:
        return cls.from_columns([], [], [], [])

    @classmethod
    def from_columns(cls, ids, doc, start, end) -> SpanTable:
        return cls(
            np.asarray(ids, dtype=np.int64),
            np.asarray(doc, dtype=np.int64),
            np.asarray(start, dtype=np.int64),
            np.asarray(end, dtype=np.int64),
        )

    def rows_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id (ids must exist in the table)."""
        lookup = self._row_by_id
        if lookup is not None:
            return lookup[ids]
        order, sorted_ids = self._id_order
        return order[np.searchsorted(sorted_ids, ids)]

    @cached_property
    def _row_by_id(self) -> np.ndarray | None:
        """Row of every id from 0 to the largest, when ids are that dense (a build numbers them so).

        One memory access per id instead of a binary search through all ids,
        which at 400k sentences costs a cache miss per step.
        """
        if not len(self.ids) or self.ids.min() < 0 or self.ids.max() >= 2 * len(self.ids) + 1024:
            return None
        lookup = np.full(int(self.ids.max()) + 1, -1, dtype=np.int64)
        lookup[self.ids] = np.arange(len(self.ids), dtype=np.int64)
        return lookup

    @cached_property
    def _id_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows in id order and the sorted ids, computed once (the columns never change)."""
        order = np.argsort(self.ids, kind="stable")
        return order, self.ids[order]

    def save(self, folder: Path, name: str) -> None:
        for column in ("ids", "doc", "start", "end"):
            np.save(folder / f"{name}.{column}.npy", getattr(self, column), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, name: str) -> SpanTable:
        columns = [np.load(folder / f"{name}.{c}.npy", allow_pickle=False) for c in ("ids", "doc", "start", "end")]
        return cls(*columns)


def _keys(table: SpanTable, offsets: np.ndarray) -> np.ndarray:
    return (table.doc << _OFFSET_BITS) + offsets


@dataclass(frozen=True)
class SpanLinks:
    """For each sentence, the range of passage rows that overlap it, and the reverse."""

    sentence_first_chunk: np.ndarray
    sentence_last_chunk: np.ndarray
    chunk_first_sentence: np.ndarray
    chunk_last_sentence: np.ndarray


def link_spans(chunks: SpanTable, sentences: SpanTable) -> SpanLinks:
    """Overlap ranges between two tables sorted by (document, start), inclusive bounds."""
    chunk_start, chunk_end = _keys(chunks, chunks.start), _keys(chunks, chunks.end)
    sent_start, sent_end = _keys(sentences, sentences.start), _keys(sentences, sentences.end)
    # The first span whose end lies after my start, and the last whose start lies before my end.
    return SpanLinks(
        sentence_first_chunk=np.searchsorted(chunk_end, sent_start, side="right"),
        sentence_last_chunk=np.searchsorted(chunk_start, sent_end, side="left") - 1,
        chunk_first_sentence=np.searchsorted(sent_end, chunk_start, side="right"),
        chunk_last_sentence=np.searchsorted(sent_start, chunk_end, side="left") - 1,
    )


def spanned_rows(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row from ``first[i]`` to ``last[i]`` for each i, concatenated, and how many each i spans."""
    counts = np.maximum(last - first + 1, 0)
    return np.repeat(first, counts) + ranges(counts), counts


def ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated: [2, 3] -> [0, 1, 0, 1, 2]."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(ends[-1]) - np.repeat(ends - counts, counts)
