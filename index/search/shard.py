"""A shard's part of a search, and the ways a searcher calls its shards.

The whole index is one shard; a sharded index has several (``index.storage.sharding``), searched in
this process (``LocalShards``) or in Ray Serve replicas (``service.cluster``). Everything a shard
returns or is asked about numbers rows in the whole index. A shard holds no encoder: the searcher
sends the question's vector.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, overload

import numpy as np

from index.config import SearchParams
from index.errors import DocumentNotFoundError
from index.search.filters import AllowedRows, DocumentColumns, Filters
from index.search.fusion import Fuser, best
from index.search.highlight import Highlighter
from index.search.merge import Retrieved, merge
from index.search.query import Passage, Query
from index.search.retrievers import Retrievers
from index.search.retrievers.base import Rows, Scope
from index.search.retrievers.nearest import VectorHits
from index.storage.store import IndexData
from index.text.corpus import Document
from index.text.tables import link_spans

FILTERS_KEPT = 16  # distinct filters whose allowed rows a shard keeps (up to ~16 MB each with their vectors)


class LocalShard:
    """One loaded index or shard, searched in this process."""

    def __init__(self, data: IndexData, params: SearchParams) -> None:
        self.data = data
        self.params = params
        self.links = link_spans(data.chunks, data.sentences)  # how the passages and sentences overlap
        self.doc_langs = np.array(data.doc_langs)
        self.retrievers = Retrievers(params, has_hubness=bool(data.manifest.settings.reference))
        self.fuser = Fuser(params, self.retrievers)  # to choose the passages it sends along (_prefetch)
        self.highlighter = Highlighter(data, self.links, params)
        self._doc_rows = {doc.doc_id: row for row, doc in enumerate(data.documents)}
        self._same_rows: dict[str, np.ndarray | bool] = {}
        self._unfiltered_rows: dict[str, tuple[Rows, Rows]] = {}  # (same, other) of _language_rows, no filter
        self._columns: DocumentColumns | None = None
        self._allowed: OrderedDict[Filters, AllowedRows] = OrderedDict()
        rows = data.global_rows
        self._chunk_rows = rows[1] if rows is not None else None
        self._sentence_rows = rows[2] if rows is not None else None

    def fields(self) -> set[str]:
        """The filterable fields of this shard's documents."""
        return self.columns().fields

    def chunk_rows(self) -> np.ndarray:
        """This shard's passage rows in the whole index."""
        return np.arange(len(self.data.chunks)) if self._chunk_rows is None else self._chunk_rows

    def columns(self) -> DocumentColumns:
        if self._columns is None:
            self._columns = DocumentColumns(self.data.documents, self.data.doc_langs)
        return self._columns

    def document(self, doc_id: str) -> Document:
        row = self._doc_rows.get(doc_id)
        if row is None:
            raise DocumentNotFoundError(f"no document with id {doc_id!r} in the index")
        return self.data.documents[row]

    def allowed(self, parsed: Filters) -> AllowedRows:
        """This shard's rows that ``parsed`` keeps, computed once per filter (the searcher checked its fields)."""
        if parsed in self._allowed:
            self._allowed.move_to_end(parsed)
            return self._allowed[parsed]
        documents = self.columns().allowed(parsed, strict=False)
        rows = AllowedRows.of(documents, self.data.chunks, self.data.sentences)
        self._allowed[parsed] = rows
        while len(self._allowed) > FILTERS_KEPT:
            self._allowed.popitem(last=False)
        return rows

    def retrieve(self, query: Query, prefetch: int = 0) -> Retrieved:
        """Each retriever's part for ``query`` among this shard's rows, and the passages of its own ``prefetch``
        best candidates (``_prefetch``)."""
        scope = self.scope(query)
        found: dict[str, Any] = {}
        for name, retriever in self.retrievers.in_turn:
            found[name] = retriever.empty() if scope.empty else retriever.retrieve(self, query, scope, found)
        parts = {name: found[name] for name in self.retrievers}
        return Retrieved(parts, self._prefetch(query, parts, prefetch))

    def scope(self, query: Query) -> Scope:
        """The rows ``query`` may be answered from here: those its filter keeps, per side of its language."""
        allowed = self.allowed(query.filters) if query.filters is not None else None
        if allowed is not None and not allowed.count:
            return Scope(allowed, False, False)
        return Scope(allowed, *self._language_rows(query.lang, allowed))

    def _prefetch(self, query: Query, parts: dict[str, Any], count: int) -> dict[int, Passage]:
        """The passages of this shard's ``count`` best candidates, by row in the whole index: its lists fused
        as if it were the whole index. Most of the searcher's final passages, sent along with the parts when a
        second call to the shard costs a round trip (exact: a passage does not depend on its score, which the
        searcher sets). Whether the searcher balances the languages depends on the other shards' lists too, so
        with hits of both sides here the best by either weighting are sent."""
        if not count:
            return {}
        mine = merge(self.retrievers, [Retrieved(parts)]).lists
        rows = [row for row, _ in best(self.fuser.fuse(mine, balance=False), count)]
        if self.fuser.both_languages_matched(mine):
            balanced = best(self.fuser.fuse(mine, balance=True), count)
            rows = list(dict.fromkeys([*rows, *(row for row, _ in balanced)]))
        local = self.shard_passage_rows(np.asarray(rows, dtype=np.int64))
        found = self.highlighter.passages(local.tolist(), query, [0.0] * len(rows))
        return dict(zip(rows, found, strict=True))

    def passages(self, rows: list[int], query: Query, scores: list[float]) -> list[Passage]:
        """The passages at ``rows`` (numbered in the whole index) with their highlighted sentence."""
        local = self.shard_passage_rows(np.asarray(rows, dtype=np.int64))
        return self.highlighter.passages(local.tolist(), query, scores)

    # Row numbers: the shard's own, and the whole index's (index.storage.sharding).

    def whole_passage_rows(self, rows: np.ndarray) -> np.ndarray:
        """This shard's passage rows numbered in the whole index."""
        return rows if self._chunk_rows is None else self._chunk_rows[rows]

    def shard_passage_rows(self, rows: np.ndarray) -> np.ndarray:
        """Passage rows of this shard from their numbers in the whole index (the shard's own rows are sorted)."""
        return rows if self._chunk_rows is None else np.searchsorted(self._chunk_rows, rows)

    def whole_sentence_hits(self, hits: VectorHits) -> VectorHits:
        """Sentence hits numbered in the whole index; a sentence overlapping no passage keeps an empty range."""
        if self._chunk_rows is None:
            return hits
        first, last = hits.first_chunk, hits.last_chunk
        valid = last >= first
        chunks = self._chunk_rows
        at_first = np.where(valid, chunks[np.minimum(first, len(chunks) - 1)], 0)
        at_last = np.where(valid, chunks[np.maximum(last, 0)], -1)
        return VectorHits(self._sentence_rows[hits.rows], hits.scores, hits.discount, at_first, at_last)

    def _same_language_rows(self, lang: str) -> np.ndarray | bool:
        """Passage rows whose document is in ``lang``: a mask, or True / False when all / none are."""
        if lang not in self._same_rows:
            mask = self.doc_langs[self.data.chunks.doc] == lang
            self._same_rows[lang] = True if mask.all() else False if not mask.any() else mask
        return self._same_rows[lang]

    def _language_rows(self, lang: str, allowed: AllowedRows | None) -> tuple[Rows, Rows]:
        """Allowed passage rows in ``lang`` and in other languages, each a mask, None (every row) or False (none).

        Computed once per language and filter: BM25 masks its scores with them.
        """
        if allowed is not None and lang in allowed.by_language:
            return allowed.by_language[lang]
        same = self._same_language_rows(lang)
        if allowed is None:
            if lang not in self._unfiltered_rows:  # once per language, not per question: ~same spans every passage
                mixed = isinstance(same, np.ndarray)
                pair = (same if mixed else None if same else False), (~same if mixed else False if same else None)
                self._unfiltered_rows[lang] = pair
            return self._unfiltered_rows[lang]
        if isinstance(same, np.ndarray):
            in_lang, out_lang = allowed.chunks & same, allowed.chunks & ~same
        else:
            in_lang, out_lang = (allowed.chunks, False) if same else (False, allowed.chunks)
        pair = (_mask_or_false(in_lang), _mask_or_false(out_lang))
        allowed.by_language[lang] = pair
        return pair


def _mask_or_false(mask: np.ndarray | bool) -> Rows:
    return False if isinstance(mask, np.ndarray) and not mask.any() else mask


class Shards(Protocol):
    """How a searcher calls its shards: ``LocalShards`` in this process, or Ray Serve replicas in parallel
    (``service.cluster.ServeShards``). Each shard answers ``LocalShard``'s public methods."""

    # Whether shards send the passages of their best candidates along with their lists: worth it when a
    # second call costs a round trip.
    prefetch: bool

    def __len__(self) -> int: ...

    def call(self, calls: Sequence[tuple[int, str, tuple]]) -> list:
        """``method(*args)`` of shard ``number`` for each (number, method, args), answers in the same order."""
        ...


class LocalShards(Sequence[LocalShard]):
    """Shards in this process, called one after the other; no prefetch by default (a call costs nothing)."""

    def __init__(self, shards: Sequence[LocalShard], prefetch: bool = False) -> None:
        self._shards = list(shards)
        self.prefetch = prefetch

    @overload
    def __getitem__(self, at: int) -> LocalShard: ...

    @overload
    def __getitem__(self, at: slice) -> list[LocalShard]: ...

    def __getitem__(self, at):
        return self._shards[at]

    def __len__(self) -> int:
        return len(self._shards)

    def call(self, calls: Sequence[tuple[int, str, tuple]]) -> list:
        return [getattr(self._shards[number], method)(*args) for number, method, args in calls]
