"""The retrievers: named lists, loaded from the config, one path for the whole index and its shards."""

from __future__ import annotations

import numpy as np

from index.config import RETRIEVERS, RetrieverEntry, SearchParams
from index.rerank.features import LISTS
from index.search.retrievers import Retrievers
from index.search.shard import LocalShard
from index.searcher import Searcher
from index.storage.store import read_index, resolve_live

QUESTIONS = ["Who mediated the talks?", "Où se sont réunies les délégations ?", "Will it rain in the Alps?"]


def test_every_configured_retriever_loads_with_a_weight_and_a_side():
    retrievers = Retrievers(SearchParams(), has_hubness=True)
    assert list(retrievers) == list(RETRIEVERS) == list(LISTS)  # the ranker's features name the same lists
    for name, entry in RETRIEVERS.items():
        assert entry.weight in SearchParams.model_fields, name
        assert retrievers[name].documents in ("any", "question", "other"), name
    assert [name for name, _ in retrievers.in_turn][-1] == "sentence_bm25"  # it scores the others' candidates


def test_lists_travel_by_name_and_the_whole_index_is_one_shard(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    searcher = Searcher(data, encoder, built.search)
    assert len(searcher.shards) == 1 and isinstance(searcher.shards[0], LocalShard)
    for query in searcher.encode(QUESTIONS):
        [answer] = searcher.retrieve_in_shards(query)
        assert list(answer.parts) == list(RETRIEVERS) and not answer.passages  # nothing prefetched in process
        assert list(searcher.retrieve(query)) == list(RETRIEVERS)


def test_a_new_retriever_is_one_entry_in_the_config(built, encoder, monkeypatch):
    """A seventh list (here the passage vectors again, under another name and weight) is retrieved, merged and
    fused by name with no other change."""
    data = read_index(resolve_live(built.index_dir))
    params = built.search.model_copy(update={"ranker": "off"})
    before = Searcher(data, encoder, params)
    query = before.encode([QUESTIONS[0]])[0]
    lists = before.retrieve(query)
    monkeypatch.setitem(RETRIEVERS, "dense_again", RetrieverEntry("nearest.PassageVectors", "chunk_dense"))
    after = Searcher(data, encoder, params)
    more = after.retrieve(query)
    assert list(more) == [*lists, "dense_again"] and dict(more["dense_again"]) == dict(lists["dense"])
    fused = after.fuse(more)
    assert fused.weights["dense_again"] == params.chunk_dense
    expected = {row: score + params.chunk_dense * _scaled(lists["dense"]).get(row, 0.0)
                for row, score in before.fuse(lists).items()}  # fmt: skip
    assert np.allclose([fused[row] for row in expected], list(expected.values()))


def _scaled(ranked) -> dict[int, float]:
    low, high = min(ranked.values()), max(ranked.values())
    return {row: (score - low) / (high - low) if high > low else 1.0 for row, score in ranked.items()}


def test_with_coverage_the_passage_bm25_lists_score_shares_of_the_question(built, encoder):
    """``lexical_evidence=coverage``: each passage BM25 list scores the share of the question's words a passage
    explains (0 to 1), translations counted per question word; the answer still comes first."""
    data = read_index(resolve_live(built.index_dir))
    searcher = Searcher(data, encoder, built.search.model_copy(update={"lexical_evidence": "coverage"}))
    query = searcher.encode([QUESTIONS[0]])[0]
    assert "talks" in query.word_translations and "mediated" in query.word_translations
    lists = searcher.retrieve(query)
    for name in ("bm25", "cognates", "translated"):
        scores = np.array(list(lists[name].values()))
        assert ((scores >= 0) & (scores <= 1 + 1e-9)).all(), name
    assert max(lists["translated"].values()) > 0
    assert searcher.search(QUESTIONS[0], k=1).passages[0].doc_id.startswith("oman-iran")
