"""Answering a question: the stages of a search, in order, over an index whole or in shards.

``Searcher.search`` takes a question through each stage once:

1. encode: its language, its vector and its words' translations (``Searcher.encode``);
2. retrieve, in each shard: every retriever's part among the shard's rows (``LocalShard.retrieve``,
   through ``Searcher.shards``: in this process, or Ray Serve replicas called in parallel);
3. merge: the whole index's ranked lists from the shards' parts (``index.search.merge``);
4. fuse: their weighted sum (``index.search.fusion.Fuser``);
5. rerank: the learned ranker's order of the fused top, when one is on (``index.rerank``);
6. highlight: the best passages with the sentence that answers best, from the shards that hold them
   (``index.search.highlight``).

The whole index is one shard on that same path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from index.config import SearchParams, search_defaults_for
from index.errors import IndexMismatchError, InvalidQueryError
from index.models.encoders import Encoder
from index.rerank.candidates import CandidateFeatures, Candidates, Reranker
from index.rerank.ranker import load_ranker
from index.search.filters import Filters, check_fields, parse_filters
from index.search.fusion import Fused, Fuser, Ranked, best
from index.search.merge import Retrieved, merge
from index.search.query import Highlight, Passage, Query
from index.search.retrievers import Retrievers
from index.search.shard import LocalShard, LocalShards, Shards
from index.search.translation import Translator
from index.storage.manifest import REBUILD_HINT, Manifest
from index.storage.sharding import passage_owners, shard_of
from index.storage.store import IndexData
from index.text.corpus import Document
from index.text.language import detect_question_language

__all__ = ["Highlight", "Passage", "Query", "Ranking", "SearchResult", "Searcher", "StageTimes"]

Filter = Mapping[str, Any] | None  # the ``filters`` object of POST /ask (index.search.filters)


@dataclass
class StageTimes:
    """Seconds one search spent in each step (a batch's shared encoding counts for each of its questions):
    ``retrieve`` includes the merge, ``fuse`` the ranker's re-ordering."""

    encode: float = 0.0
    retrieve: float = 0.0
    fuse: float = 0.0
    highlight: float = 0.0


@dataclass(frozen=True)
class SearchResult:
    question: str
    passages: list[Passage]
    took_ms: float
    language: str
    stages: StageTimes
    weights: dict[str, float] = field(default_factory=dict)  # the weight the fusion gave each list (Fuser)


@dataclass(frozen=True)
class Ranking:
    """The best (passage row, score) pairs of one question, best first, and what came with them."""

    best: list[tuple[int, float]]
    weights: dict[str, float]  # the weight the fusion gave each list
    passages: dict[int, Passage]  # passages the shards sent along with their lists, by row


class Searcher:
    """One loaded index, whole or in shards, and the encoder that built it (see the module's stages).

    ``params`` default to the index's model's (``search_defaults_for``): a field not set takes the model's
    value, so the weights a searcher reports (``params``, ``fuser.weights``) are those it applies.
    """

    def __init__(
        self, data: IndexData, encoder: Encoder, params: SearchParams | None = None, shards: Shards | None = None
    ) -> None:
        """``data``: the whole index, or (with ``shards``) any part giving the manifest, vocabulary and folder."""
        if encoder.dim != data.manifest.settings.dim:
            raise IndexMismatchError(
                f"index vectors have {data.manifest.settings.dim} dimensions but encoder "
                f"{encoder.name!r} makes {encoder.dim}: {REBUILD_HINT}"
            )
        self.data = data
        self.encoder = encoder
        self.params = search_defaults_for(data.manifest.settings.model, params or SearchParams())
        self.shards: Shards = shards if shards is not None else LocalShards([LocalShard(data, self.params)])
        self.retrievers = Retrievers(self.params, has_hubness=bool(data.manifest.settings.reference))
        self.fuser = Fuser(self.params, self.retrievers)
        self.translator = Translator(data.vocabulary)
        self._features: CandidateFeatures | None = None
        ranker = load_ranker(self.params.ranker, self.model)
        self.reranker = Reranker(ranker, self.features(), self.params.rerank_depth) if ranker else None
        self._fields: set[str] | None = None
        self._owners: np.ndarray | None = None  # shard of each passage row

    @classmethod
    def of_shards(
        cls, parts: list[IndexData], encoder: Encoder, params: SearchParams | None = None, prefetch: bool = False
    ) -> Searcher:
        """A searcher over the shards of ``index.storage.store.read_shards``, each searched in this process."""
        params = search_defaults_for(parts[0].manifest.settings.model, params or SearchParams())
        return cls(parts[0], encoder, params, LocalShards([LocalShard(part, params) for part in parts], prefetch))

    @property
    def sharded(self) -> bool:
        return len(self.shards) > 1

    @property
    def model(self) -> str:
        return self.data.manifest.settings.model

    @property
    def manifest(self) -> Manifest:
        return self.data.manifest

    @property
    def folder(self) -> Path | None:
        return self.data.folder

    def search(self, question: str, k: int = 5, filters: Filter = None) -> SearchResult:
        """The ``k`` passages that best answer ``question``, best first, from the documents ``filters`` allows."""
        began = time.perf_counter()
        question, parsed = _checked(question, k), self.filters(filters)
        return self.answer(self.encode([question])[0], k, parsed, began)

    def search_many(
        self, questions: list[str], k: int = 5, show_progress: bool = False, filters: Filter = None
    ) -> list[SearchResult]:
        """``search`` for many questions, encoding them in one batch (``took_ms`` then excludes encoding)."""
        cleaned = [_checked(question, k) for question in questions]
        parsed = self.filters(filters)
        if not cleaned:
            return []
        queries = tqdm(self.encode(cleaned), desc="Searching", unit="q", disable=not show_progress)
        return [self.answer(query, k, parsed) for query in queries]

    def search_batch(self, requests: Sequence[tuple[str, int] | tuple[str, int, Filter]]) -> list[SearchResult]:
        """``search`` for several (question, k) or (question, k, filters) with one encoder call for all of them.

        A server under load gathers waiting questions into one call: the encoder
        reads its weights once for the batch instead of once per question. Each
        ``took_ms`` counts the shared encoding plus that question's own search.
        """
        began = time.perf_counter()
        cleaned = [(_checked(q, k), k, self.filters(rest[0] if rest else None)) for q, k, *rest in requests]
        if not cleaned:
            return []
        queries = self.encode([question for question, _, _ in cleaned])
        encoding = time.perf_counter() - began
        return [
            self.answer(query, k, parsed, time.perf_counter() - encoding)
            for query, (_, k, parsed) in zip(queries, cleaned, strict=True)
        ]

    def filters(self, filters: Filter) -> Filters | None:
        """``filters`` parsed, and checked against the index's fields before any search (None: no filter);
        InvalidFilterError for an unknown field or a bad date."""
        parsed = parse_filters(filters)
        if parsed is not None:
            check_fields(parsed, self.fields())
        return parsed

    def fields(self) -> set[str]:
        """Every filterable field of the index: the built-in ones and any document's metadata keys."""
        if self._fields is None:
            self._fields = set().union(*self._each_shard("fields"))
        return self._fields

    def document(self, doc_id: str) -> Document:
        """The indexed document with this id."""
        return self.shards.call([(shard_of(doc_id, len(self.shards)), "document", (doc_id,))])[0]

    # The stages, in order.

    def encode(self, questions: Sequence[str]) -> list[Query]:
        """Questions as ``Query`` objects: their vectors, languages and translated terms.

        One encoder call for the questions and the words of theirs that no vector is known for yet: every
        encoder gives a text the vector it would have alone (tests/test_encoders.py), so a question's vector
        does not depend on what is cached.
        """
        langs = [detect_question_language(question) for question in questions]
        words = [self.translator.words(q, lang, self.params) for q, lang in zip(questions, langs, strict=True)]
        unknown = self._words_to_encode(self.translator.untranslated([w for each in words for w in each], self.params))
        vectors = self.encoder.encode_queries([*questions, *unknown])
        if unknown:
            self.translator.learn(unknown, vectors[len(questions) :], self.params, encoded=True)
        return [
            Query(question, lang, vector, self.translator.translations(each, lang, self.params))
            for question, lang, each, vector in zip(questions, langs, words, vectors[: len(questions)], strict=True)
        ]

    def _words_to_encode(self, words: list[str]) -> list[str]:
        """Learn the translations of ``words`` whose vectors the vocabulary or cache holds; return the others."""
        known = self.translator.known_vectors(words)
        if known:
            self.translator.learn(list(known), np.array(list(known.values())), self.params, encoded=False)
        return [word for word in words if word not in known]

    def answer(
        self, query: Query, k: int = 5, filters: Filters | None = None, began: float | None = None
    ) -> SearchResult:
        """The ``k`` best passages for an encoded question, from the documents ``filters`` allows (parsed and
        checked by ``filters``; default: the query's own); ``began``: when its search began (default: now)."""
        began = time.perf_counter() if began is None else began
        stages = StageTimes(encode=time.perf_counter() - began)
        if filters is not None:
            query = replace(query, filters=filters)
        ranking = self.rank(query, k, stages)  # retrieve in each shard, merge, fuse, rerank
        lap = time.perf_counter()
        passages = self.highlight(query, ranking)  # highlight
        ended = time.perf_counter()
        stages.highlight = ended - lap
        return SearchResult(query.text, passages, (ended - began) * 1000, query.lang, stages, ranking.weights)

    def rank(self, query: Query, k: int, stages: StageTimes | None = None) -> Ranking:
        """The ``k`` best passage rows for ``query``: retrieved in each shard, merged, fused, and re-ordered by the
        learned ranker if there is one. ``stages`` gets the time of retrieval (the merge included) and of fusion
        (the ranker's re-ordering included)."""
        lap = time.perf_counter()
        answers = self.retrieve_in_shards(query, k if self.shards.prefetch else 0)  # retrieve, in each shard
        merged = merge(self.retrievers, answers)  # merge
        retrieved = time.perf_counter()
        fused = self.fuser.fuse(merged.lists)  # fuse
        ranked = self.rerank(query, merged.lists, fused, k)  # rerank
        if stages is not None:
            stages.retrieve = retrieved - lap
            stages.fuse = time.perf_counter() - retrieved
        return Ranking(ranked, fused.weights, merged.passages)

    def retrieve_in_shards(self, query: Query, prefetch: int = 0) -> list[Retrieved]:
        """Every shard's parts for ``query`` (and the passages of its ``prefetch`` best candidates)."""
        return self._each_shard("retrieve", query, prefetch)

    def retrieve(self, query: Query) -> dict[str, Ranked]:
        """The ranked lists of the whole index for ``query``, by retriever name: retrieved, then merged."""
        return merge(self.retrievers, self.retrieve_in_shards(query)).lists

    def fuse(self, lists: Mapping[str, Ranked]) -> Fused:
        """The fusion of ``retrieve``'s lists, with the weights it gave each (``Fuser``)."""
        return self.fuser.fuse(lists)

    def rerank(self, query: Query, lists: Mapping[str, Ranked], fused: Fused, k: int) -> list[tuple[int, float]]:
        """The ``k`` best rows: the fused ones, re-ordered by the learned ranker when it is on."""
        if self.reranker is None:
            return best(fused, k)
        return self.reranker.rerank(query, lists, fused, k)

    def highlight(self, query: Query, ranking: Ranking) -> list[Passage]:
        """The ranked passages with their highlight, in ranked order: those the shards sent along with their
        lists, the others asked of the shards that hold them (in parallel)."""
        ranked = ranking.best
        out = {
            at: replace(ranking.passages[row], score=float(score))
            for at, (row, score) in enumerate(ranked)
            if row in ranking.passages
        }
        owners = self.owners([row for row, _ in ranked])
        calls, places = [], []
        for number in range(len(self.shards)):
            mine = [at for at in range(len(ranked)) if owners[at] == number and at not in out]
            if mine:
                rows, scores = [ranked[at][0] for at in mine], [ranked[at][1] for at in mine]
                calls.append((number, "passages", (rows, query, scores)))
                places.append(mine)
        for mine, found in zip(places, self.shards.call(calls), strict=True):
            out.update(zip(mine, found, strict=True))
        return [out[at] for at in range(len(ranked))]

    def features(self) -> CandidateFeatures:
        """The learned ranker's features of fused candidates, read from the whole index in this process."""
        if self._features is None:
            self._features = CandidateFeatures(self.data, self.params)
        return self._features

    def candidates(self, query: Query, lists: Mapping[str, Ranked], fused: Ranked, depth: int) -> Candidates:
        """The ``depth`` best fused rows with the ranker's features (see ``index.rerank.candidates``)."""
        return self.features()(query, lists, fused, depth)

    def owners(self, rows: list[int]) -> np.ndarray:
        """The shard holding each passage row."""
        if self._owners is None:
            self._owners = passage_owners(self._each_shard("chunk_rows"))
        return self._owners[np.asarray(rows, dtype=np.int64)]

    def _each_shard(self, method: str, *args) -> list:
        return self.shards.call([(number, method, args) for number in range(len(self.shards))])


def _checked(question: str, k: int) -> str:
    """The question without surrounding space; InvalidQueryError if it cannot be searched."""
    question = question.strip()
    if not question:
        raise InvalidQueryError("question is empty: send some text to search for")
    if k < 1:
        raise InvalidQueryError("k must be at least 1")
    return question
