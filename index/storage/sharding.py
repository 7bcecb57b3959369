"""Splitting an index into shards by document, and joining the shards back.

A document goes to shard ``shard_of(doc_id, S)``: a hash of its id, so it stays in its shard
from one build to the next whatever else changes. Each shard keeps the rows it holds in document
order, with their row numbers in the whole index (``IndexData.global_rows``): results merged
across shards then sort, and break ties, exactly as in the unsharded index. BM25 matrices are cut
out of the whole corpus's, so their term statistics stay global (``LexicalIndex.subset``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from index.storage.store import IndexData
from index.storage.vectorstore import FaissVectorStore
from index.storage.vocabulary import Vocabulary
from index.text.tables import SpanTable


def shard_of(doc_id: str, shards: int) -> int:
    """The shard of a document: stable across builds, processes and Python versions (not ``hash``)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def passage_owners(shard_rows: list[np.ndarray]) -> np.ndarray:
    """The shard of every passage row of the whole index, from each shard's rows."""
    owners = np.zeros(sum(len(rows) for rows in shard_rows), dtype=np.int16)
    for number, rows in enumerate(shard_rows):
        owners[rows] = number
    return owners


def split_index(data: IndexData, shards: int) -> list[IndexData]:
    """``data`` as ``shards`` shards; each holds an empty vocabulary (the coordinator keeps the whole one)."""
    owner = np.array([shard_of(doc.doc_id, shards) for doc in data.documents], dtype=np.int64)
    chunk_owner, sentence_owner = owner[data.chunks.doc], owner[data.sentences.doc]  # once, not once per shard
    return [
        _shard(data, *(np.flatnonzero(rows == number) for rows in (owner, chunk_owner, sentence_owner)))
        for number in range(shards)
    ]


def _shard(data: IndexData, doc_rows: np.ndarray, chunk_rows: np.ndarray, sentence_rows: np.ndarray) -> IndexData:
    return IndexData(
        manifest=data.manifest,
        documents=[data.documents[row] for row in doc_rows],
        doc_langs=[data.doc_langs[row] for row in doc_rows],
        chunks=_rows_of(data.chunks, chunk_rows, doc_rows),
        sentences=_rows_of(data.sentences, sentence_rows, doc_rows),
        chunk_vectors=_store_subset(data.chunk_vectors, data.chunks.ids, chunk_rows),
        sentence_vectors=_store_subset(data.sentence_vectors, data.sentences.ids, sentence_rows),
        lexical=data.lexical.subset(chunk_rows),
        cognates=data.cognates.subset(chunk_rows),
        sentence_lexical=data.sentence_lexical.subset(sentence_rows),
        vocabulary=Vocabulary({}, {}),
        chunk_hubness=data.chunk_hubness[chunk_rows],
        sentence_hubness=data.sentence_hubness[sentence_rows],
        global_rows=(doc_rows, chunk_rows, sentence_rows),
    )


def _rows_of(table: SpanTable, rows: np.ndarray, doc_rows: np.ndarray) -> SpanTable:
    """Some rows of a span table, their document rows renumbered within the shard."""
    return SpanTable(table.ids[rows], np.searchsorted(doc_rows, table.doc[rows]), table.start[rows], table.end[rows])


def _store_subset(store, ids: np.ndarray, rows: np.ndarray):
    keep = np.zeros(len(ids), dtype=bool)
    keep[rows] = True
    return store.subset(ids[keep], ids[~keep])


def join_shards(shards: list[IndexData]) -> IndexData:
    """The shards as one index, in the whole index's row order, for a rebuild to reuse its vectors.

    Its BM25 parts are left out (a build computes them anew).
    """
    if len(shards) == 1 and shards[0].global_rows is None:
        return shards[0]
    doc_order = np.argsort(np.concatenate([shard.global_rows[0] for shard in shards]), kind="stable")
    documents = [doc for shard in shards for doc in shard.documents]
    langs = [lang for shard in shards for lang in shard.doc_langs]
    doc_offsets = np.cumsum([0, *(len(shard.documents) for shard in shards)])
    new_doc_row = np.empty(len(documents), dtype=np.int64)
    new_doc_row[doc_order] = np.arange(len(documents))

    def table(kind: str, position: int) -> tuple[SpanTable, np.ndarray]:
        parts = [getattr(shard, kind) for shard in shards]
        order = np.argsort(np.concatenate([shard.global_rows[position] for shard in shards]), kind="stable")
        docs = np.concatenate([part.doc + offset for part, offset in zip(parts, doc_offsets, strict=False)])
        columns = [np.concatenate([getattr(part, name) for part in parts]) for name in ("ids", "start", "end")]
        return SpanTable(columns[0][order], new_doc_row[docs][order], columns[1][order], columns[2][order]), order

    chunks, chunk_order = table("chunks", 1)
    sentences, sentence_order = table("sentences", 2)
    first = shards[0]
    return IndexData(
        manifest=first.manifest,
        documents=[documents[row] for row in doc_order],
        doc_langs=[langs[row] for row in doc_order],
        chunks=chunks,
        sentences=sentences,
        chunk_vectors=FaissVectorStore.joined([s.chunk_vectors for s in shards], [s.chunks.ids for s in shards]),
        sentence_vectors=FaissVectorStore.joined(
            [s.sentence_vectors for s in shards], [s.sentences.ids for s in shards]
        ),
        lexical=None,  # type: ignore[arg-type]
        cognates=None,  # type: ignore[arg-type]
        sentence_lexical=None,  # type: ignore[arg-type]
        vocabulary=first.vocabulary,
        chunk_hubness=np.concatenate([s.chunk_hubness for s in shards])[chunk_order],
        sentence_hubness=np.concatenate([s.sentence_hubness for s in shards])[sentence_order],
        folder=first.folder,
    )
