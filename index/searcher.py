"""Answering a question: hybrid retrieval over passages, then the best sentence in each."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from index.config import SearchParams, search_params_for
from index.errors import IndexMismatchError, InvalidQueryError
from index.models.encoders import Encoder
from index.rerank.candidates import Candidates, QueryTerms, candidates
from index.rerank.ranker import RERANK_DEPTH, load_ranker
from index.search.filters import AllowedRows, Filters, check_fields, parse_filters
from index.search.fusion import Ranked, best, candidate_rows, weighted_fusion
from index.search.hits import (
    ShardLists,
    best_lexical_share,
    best_per_passage,
    both_languages_matched,
    fusion_weights,
    oversample,
    penalised,
    penalised_hits,
)
from index.search.merging import best_sentence_of, merge_hits, merge_top
from index.search.query import Highlight, Passage, Query
from index.search.shard import LocalShard
from index.search.translation import Translator
from index.storage.manifest import REBUILD_HINT, Manifest
from index.storage.sharding import passage_owners, shard_of
from index.storage.store import IndexData
from index.text.corpus import Document
from index.text.language import detect_question_language

__all__ = ["Highlight", "Passage", "Query", "SearchResult", "Searcher", "Shard", "StageTimes"]

Filter = Mapping[str, Any] | None  # the ``filters`` object of POST /ask (index.search.filters)


@dataclass
class StageTimes:
    """Seconds one search spent in each step (a batch's shared encoding counts for each of its questions)."""

    encode: float = 0.0
    retrieve: float = 0.0
    fuse: float = 0.0
    highlight: float = 0.0


class Shard(Protocol):
    """A part of the index a searcher asks for ranked lists and passages: in this process, or a Ray deployment."""

    def fields(self) -> set[str]: ...

    def chunk_rows(self) -> np.ndarray: ...

    def document(self, doc_id: str) -> Document: ...

    def allowed(self, parsed: Filters) -> AllowedRows: ...

    def final_lists(self, query: Query) -> list[Ranked]: ...

    def retrieve(self, query: Query) -> ShardLists: ...

    def passages(self, rows: list[int], query: Query, scores: list[float]) -> list[Passage]: ...


@dataclass(frozen=True)
class SearchResult:
    question: str
    passages: list[Passage]
    took_ms: float
    language: str
    stages: StageTimes


class Searcher:
    """Immutable view of one loaded index, whole or in shards, plus the encoder that built it.

    The searcher encodes the question, asks each shard for its ranked lists, merges them when there
    are several (index.search.merging), fuses them, then asks the shards holding the best passages for
    their text and highlight. An unsharded index is one ``LocalShard`` whose lists need no merging.
    """

    def __init__(
        self, data: IndexData, encoder: Encoder, params: SearchParams | None = None, shards: list[Shard] | None = None
    ) -> None:
        """``data``: the whole index, or (with ``shards``) any part giving the manifest, vocabulary and folder."""
        if encoder.dim != data.manifest.settings.dim:
            raise IndexMismatchError(
                f"index vectors have {data.manifest.settings.dim} dimensions but encoder "
                f"{encoder.name!r} makes {encoder.dim}: {REBUILD_HINT}"
            )
        self.data = data
        self.encoder = encoder
        self.params = params or search_params_for(data.manifest.settings.model)
        self.shards: list[Shard] = shards or [LocalShard(data, self.params)]
        self._translator = Translator(data.vocabulary)
        self._has_hubness = bool(data.manifest.settings.reference)
        self._fields: set[str] | None = None
        self._owners: np.ndarray | None = None  # shard of each passage row, when sharded
        self.ranker = load_ranker(self.params.ranker, data.manifest.settings.model)
        if self.ranker is not None and self.sharded:
            raise IndexMismatchError(
                "the learned ranker works on an unsharded index only: set QA_RANKER=off, or rebuild with --shards 1"
            )

    @classmethod
    def of_shards(cls, parts: list[IndexData], encoder: Encoder, params: SearchParams | None = None) -> Searcher:
        """A searcher over the shards of ``index.storage.store.read_shards``, each searched in this process."""
        params = params or search_params_for(parts[0].manifest.settings.model)
        if len(parts) == 1 and parts[0].global_rows is None:
            return cls(parts[0], encoder, params)
        return cls(parts[0], encoder, params, [LocalShard(part, params, strict_fields=False) for part in parts])

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

    def document(self, doc_id: str) -> Document:
        """The indexed document with this id."""
        return self.shards[shard_of(doc_id, len(self.shards)) if self.sharded else 0].document(doc_id)

    def search(self, question: str, k: int = 5, filters: Filter = None) -> SearchResult:
        """The ``k`` passages that best answer ``question``, best first, from the documents ``filters`` allows."""
        began = time.perf_counter()
        question, restrict = _checked(question, k), self._restriction(filters)
        return self._answer(restrict(self.encode([question])[0]), k, began)

    def search_many(
        self, questions: list[str], k: int = 5, show_progress: bool = False, filters: Filter = None
    ) -> list[SearchResult]:
        """``search`` for many questions, encoding them in one batch (``took_ms`` then excludes encoding)."""
        cleaned = [_checked(question, k) for question in questions]
        restrict = self._restriction(filters)
        if not cleaned:
            return []
        queries = tqdm(self.encode(cleaned), desc="Searching", unit="q", disable=not show_progress)
        return [self._answer(restrict(query), k, time.perf_counter()) for query in queries]

    def search_batch(self, requests: Sequence[tuple[str, int] | tuple[str, int, Filter]]) -> list[SearchResult]:
        """``search`` for several (question, k) or (question, k, filters) with one encoder call for all of them.

        A server under load gathers waiting questions into one call: the encoder
        reads its weights once for the batch instead of once per question. Each
        ``took_ms`` counts the shared encoding plus that question's own search.
        """
        began = time.perf_counter()
        cleaned = [(_checked(q, k), k, self._restriction(rest[0] if rest else None)) for q, k, *rest in requests]
        if not cleaned:
            return []
        queries = self.encode([question for question, _, _ in cleaned])
        encoding = time.perf_counter() - began
        return [
            self._answer(restrict(query), k, time.perf_counter() - encoding)
            for query, (_, k, restrict) in zip(queries, cleaned, strict=True)
        ]

    def allowed(self, filters: Filter) -> AllowedRows | None:
        """The rows ``filters`` keeps (None: no filter); InvalidFilterError for an unknown field or a bad date.

        Unsharded only: each shard of a sharded index resolves a filter to its own rows.
        """
        parsed = parse_filters(filters)
        return None if parsed is None else self.shards[0].allowed(parsed)

    def _restriction(self, filters: Filter) -> Callable[[Query], Query]:
        """What restricts a query to the documents ``filters`` allows (checked here, before any search)."""
        parsed = parse_filters(filters)
        if parsed is None:
            return _unchanged
        if not self.sharded:
            allowed = self.shards[0].allowed(parsed)
            return lambda query: replace(query, allowed=allowed, filters=parsed)
        check_fields(parsed, self.fields())
        return lambda query: replace(query, filters=parsed)

    def fields(self) -> set[str]:
        """Every filterable field of the index: the built-in ones and any document's metadata keys."""
        if self._fields is None:
            self._fields = set().union(*(shard.fields() for shard in self.shards))
        return self._fields

    def encode(self, questions: Sequence[str]) -> list[Query]:
        """Questions as ``Query`` objects: their vectors, languages and translated terms.

        One encoder call for the questions and the words of theirs that no vector is known for yet: every
        encoder gives a text the vector it would have alone (tests/test_encoders.py), so a question's vector
        does not depend on what is cached.
        """
        langs = [detect_question_language(question) for question in questions]
        words = [self._translator.words(q, lang, self.params) for q, lang in zip(questions, langs, strict=True)]
        unknown = self._words_to_encode(self._translator.untranslated([w for each in words for w in each], self.params))
        vectors = self.encoder.encode_queries([*questions, *unknown])
        if unknown:
            self._translator.learn(unknown, vectors[len(questions) :], self.params, encoded=True)
        return [
            Query(question, lang, vector, self._translator.translations(each, lang, self.params))
            for question, lang, each, vector in zip(questions, langs, words, vectors[: len(questions)], strict=True)
        ]

    def _words_to_encode(self, words: list[str]) -> list[str]:
        """Learn the translations of ``words`` whose vectors the vocabulary or cache holds; return the others."""
        known = self._translator.known_vectors(words)
        if known:
            self._translator.learn(list(known), np.array(list(known.values())), self.params, encoded=False)
        return [word for word in words if word not in known]

    def _answer(self, query: Query, k: int, began: float) -> SearchResult:
        stages = StageTimes(encode=time.perf_counter() - began)
        if self.sharded:
            query = replace(query, prefetch=k, prefetched={})
        ranked = self.rank(query, k, stages)
        lap = time.perf_counter()
        passages = self.passages(ranked, query)
        ended = time.perf_counter()
        stages.highlight = ended - lap
        return SearchResult(query.text, passages, (ended - began) * 1000, query.lang, stages)

    def rank(self, query: Query, k: int, stages: StageTimes | None = None) -> list[tuple[int, float]]:
        """(passage row, score) pairs, best first: fused, then re-ordered by the ranker if there is one.

        ``stages`` gets the time of retrieval and of fusion (the ranker's re-ordering included).
        """
        lap = time.perf_counter()
        lists = self.retrieve(query)
        retrieved = time.perf_counter()
        ranked = self._fused_best(query, lists, k)
        if stages is not None:
            stages.retrieve = retrieved - lap
            stages.fuse = time.perf_counter() - retrieved
        return ranked

    def _fused_best(self, query: Query, lists: list[Ranked], k: int) -> list[tuple[int, float]]:
        fused = self.fuse(lists)
        if self.ranker is None:
            return best(fused, k)
        found = self.candidates(query, lists, fused, max(k, RERANK_DEPTH))
        scores = self.ranker.score(found.features)
        order = np.lexsort((found.rows, -scores))[:k]
        return list(zip(found.rows[order].tolist(), scores[order].tolist(), strict=True))

    def candidates(self, query: Query, lists: list[Ranked], fused: Ranked, depth: int) -> Candidates:
        """The ``depth`` best fused rows with the ranker's features (see ``index.rerank.candidates``)."""
        terms = QueryTerms(
            stems=self.data.lexical.query_terms(query.text, query.lang),
            translated=[term for stems in query.translations.values() for term in stems],
            prefixes=self.data.cognates.query_terms(query.text, query.lang),
        )
        shard = self.shards[0]  # the ranker runs on unsharded indexes only (see __init__)
        return candidates(shard.data, shard.links, self.params, query.vector, query.lang, terms, lists, fused, depth)

    def retrieve(self, query: Query) -> list[Ranked]:
        """The six ranked lists, in the order of ``fuse``'s weights (see ``LocalShard.final_lists``).

        Shards' raw lists are merged first, then their discounts are taken off, as over the whole index.
        """
        if not self.sharded:
            return self.shards[0].final_lists(query)
        return self.merge(self.shard_lists(query))

    def shard_lists(self, query: Query) -> list[ShardLists]:
        """Every shard's raw lists (a cluster searcher asks its shards in parallel)."""
        remote = replace(query, allowed=None, prefetched={})
        return self.prefetched([shard.retrieve(remote) for shard in self.shards], query)

    @staticmethod
    def prefetched(parts: list[ShardLists], query: Query) -> list[ShardLists]:
        """``parts``, once the passages they carry are kept in ``query.prefetched``."""
        for part in parts:
            query.prefetched.update(part.passages)
        return parts

    def merge(self, parts: list[ShardLists]) -> list[Ranked]:
        """The six lists of the whole index from each shard's raw lists."""
        p = self.params
        wanted = oversample(p, self._has_hubness)
        dense = penalised(merge_hits([part.dense for part in parts], p.pool * wanted), p.pool)
        nearest = merge_hits([part.sentences for part in parts], p.sentence_pool * wanted)
        kept = penalised_hits(nearest, p.sentence_pool)
        sentences = best_per_passage(kept.first_chunk, kept.last_chunk, kept.scores)
        lexical, cognates, translated = (
            merge_top([getattr(part, name) for part in parts], p.pool) for name in ("lexical", "cognates", "translated")
        )
        best_sentence: Ranked = {}
        if p.sentence_bm25:
            candidates = candidate_rows([dense, sentences, lexical])
            best_sentence = best_sentence_of([part.sentence_terms for part in parts], candidates)
        return [dense, sentences, lexical, cognates, best_sentence, translated]

    def fuse(self, lists: list[Ranked]) -> Ranked:
        """Weighted sum of the min-max normalised lists of ``retrieve`` (weights: ``hits.fusion_weights``)."""
        weights = fusion_weights(self.params, both_languages_matched(lists), best_lexical_share(lists))
        return weighted_fusion(lists, weights)

    def passages(self, ranked: list[tuple[int, float]], query: Query) -> list[Passage]:
        """The passages of ranked (row, score) pairs, from the shards that hold them, in ranked order."""
        if not self.sharded:
            return self.shards[0].passages([row for row, _ in ranked], query, [score for _, score in ranked])
        owners = self.owners([row for row, _ in ranked])
        out = prefetched_passages(ranked, query)
        remote = replace(query, allowed=None, prefetched={})
        for number, shard in enumerate(self.shards):
            mine = [(at, row, score) for at, (row, score) in enumerate(ranked) if owners[at] == number]
            mine = [(at, row, score) for at, row, score in mine if at not in out]
            if mine:
                found = shard.passages([row for _, row, _ in mine], remote, [score for _, _, score in mine])
                out.update((at, passage) for (at, _, _), passage in zip(mine, found, strict=True))
        return [out[at] for at in range(len(ranked))]

    def owners(self, rows: list[int]) -> np.ndarray:
        """The shard holding each passage row."""
        if self._owners is None:
            self._owners = passage_owners([shard.chunk_rows() for shard in self.shards])
        return self._owners[np.asarray(rows, dtype=np.int64)]


def prefetched_passages(ranked: list[tuple[int, float]], query: Query) -> dict[int, Passage]:
    """The ranked passages the shards sent along with their lists (see ``Query.prefetch``), by rank."""
    return {
        at: replace(query.prefetched[row], score=float(score))
        for at, (row, score) in enumerate(ranked)
        if row in query.prefetched
    }


def _unchanged(query: Query) -> Query:
    return query


def _checked(question: str, k: int) -> str:
    """The question without surrounding space; InvalidQueryError if it cannot be searched."""
    question = question.strip()
    if not question:
        raise InvalidQueryError("question is empty: send some text to search for")
    if k < 1:
        raise InvalidQueryError("k must be at least 1")
    return question
