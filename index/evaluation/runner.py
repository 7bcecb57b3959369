"""Running an evaluation set through a searcher and scoring it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from index.build.builder import build_from_documents, build_settings
from index.config import SearchParams, Settings
from index.errors import DocumentNotFoundError
from index.evaluation.datasets import EvalQuestion, EvalSet
from index.evaluation.metrics import (
    Rank,
    breakdown,
    contains_answer,
    contains_span,
    first_hit,
    gap,
    hit_at,
    hit_curve,
    mrr_at,
)
from index.models.encoders import Encoder, canonical_model_name
from index.searcher import Highlight, Passage, Searcher
from index.storage.store import read_index, read_shards, resolve_live
from index.text.corpus import Document
from index.text.language import UNKNOWN
from index.text.spans import SPLITTER

DEPTH = 20  # passages retrieved per question: enough for the hit@k curve
DEEP = 200  # passages searched for the answer of a question missed in the top DEPTH (report only)
NO_DOCUMENT = "?"  # the document language of a question with no gold document (or one not in the index)


@dataclass
class Outcome:
    """What happened to one question."""

    question: EvalQuestion
    rank: Rank
    passages: list[Passage]
    highlight_hit: bool | None  # None unless the top passage is a hit
    answer_passage: Passage | None = None  # the best-ranked passage holding the answer, if one was found
    answer_rank: Rank = None  # its rank: ``rank``, or deeper after ``find_answer_passages``


@dataclass
class SetScore:
    """The figures of one evaluation set."""

    name: str
    n: int
    hit_at_1: float
    hit_at_5: float
    mrr_at_10: float
    passage_chars: float
    max_passage_chars: int
    highlight_hit: float | None
    seconds: float
    curve: list[float]
    outcomes: list[Outcome] = field(repr=False, default_factory=list)
    by_lang: dict[str, dict[str, float]] = field(default_factory=dict)
    by_pair: dict[str, dict[str, float]] = field(default_factory=dict)  # "question→document language": figures
    gap: dict[str, float] = field(default_factory=dict)  # ``with_original``: {"original_hit@1", "gap"}

    def figures(self) -> dict:
        """The JSON-ready summary printed by ``qa eval --json``."""
        return {
            "hit@1": round(self.hit_at_1, 4),
            "hit@5": round(self.hit_at_5, 4),
            "mrr@10": round(self.mrr_at_10, 4),
            "n": self.n,
            "passage_chars": round(self.passage_chars, 1),
            "max_passage_chars": self.max_passage_chars,
            "highlight_hit": None if self.highlight_hit is None else round(self.highlight_hit, 4),
            "seconds": round(self.seconds, 2),
            **({"by_lang": self.by_lang} if self.by_lang else {}),
            **({"by_pair": self.by_pair} if self.by_pair else {}),
            **self.gap,
        }


def is_hit(question: EvalQuestion, passage: Passage, start: int, end: int, text: str) -> bool:
    """Span containment for SQuAD sets, answer-string containment otherwise."""
    if question.gold_spans:
        return passage.doc_id == question.gold_doc and any(contains_span((start, end), g) for g in question.gold_spans)
    if question.gold_doc and passage.doc_id != question.gold_doc:
        return False
    return contains_answer(text, question.answers)


def evaluate(eval_set: EvalSet, searcher: Searcher, k: int = 5, show_progress: bool = True) -> SetScore:
    """Ask every question of the set and score the ranked passages."""
    began = time.perf_counter()
    outcomes = []
    results = searcher.search_many([q.question for q in eval_set.questions], max(k, DEPTH), show_progress)
    for question, result in zip(eval_set.questions, results, strict=True):
        flags = [is_hit(question, p, p.start, p.end, p.text) for p in result.passages]
        rank = first_hit(flags)
        highlight = None
        if rank == 1:
            top = result.passages[0]
            highlight = is_hit(question, top, top.highlight.start, top.highlight.end, top.highlight.text)
        found = result.passages[rank - 1] if rank else None
        outcomes.append(Outcome(question, rank, result.passages[:k], highlight, found, rank))
    return _score(eval_set.name, outcomes, k, time.perf_counter() - began, document_languages(searcher))


def document_languages(searcher: Searcher) -> dict[str, str]:
    """Each indexed document's language, as the build detected it (or its ``lang`` metadata).

    Read from the shards of this process (an evaluation never searches remote ones), else the searcher's data.
    """
    parts = [shard.data for shard in searcher.shards if hasattr(shard, "data")] or [searcher.data]
    return {doc.doc_id: lang for data in parts for doc, lang in zip(data.documents, data.doc_langs, strict=True)}


def pair_key(question: EvalQuestion, doc_langs: Mapping[str, str]) -> str:
    """``"en→fr"``: the question's language, then its gold document's (``?`` when it has none)."""
    doc_lang = doc_langs.get(question.gold_doc, NO_DOCUMENT) if question.gold_doc else NO_DOCUMENT
    return f"{question.lang or UNKNOWN}→{doc_lang}"


def by_pair(outcomes: Sequence[Outcome], doc_langs: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """hit@1, hit@5 and n per question language → gold document language."""
    return breakdown((pair_key(o.question, doc_langs), o.rank) for o in outcomes)


def with_original(score: SetScore, original: SetScore) -> SetScore:
    """Record in ``score`` its gap to ``original``: the same question ids, asked as the target file asks them."""
    ids, original_ids = [o.question.qid for o in score.outcomes], [o.question.qid for o in original.outcomes]
    if ids != original_ids:
        raise ValueError(f"{original.name} does not hold the questions of {score.name} in the same order")
    score.gap = gap([o.rank for o in original.outcomes], [o.rank for o in score.outcomes])
    return score


def find_answer_passages(score: SetScore, searcher: Searcher, depth: int = DEEP) -> None:
    """For questions whose answer is not in the top ``DEPTH``, look deeper: up to ``depth`` passages.

    When the search does not reach it either, the first passage of the gold
    document that holds the answer is kept, without a rank. Sets
    ``answer_passage`` and ``answer_rank`` of those outcomes.
    """
    lost = [o for o in score.outcomes if o.answer_passage is None]
    results = searcher.search_many([o.question.question for o in lost], depth) if lost else []
    for outcome, result in zip(lost, results, strict=True):
        q = outcome.question
        flags = [is_hit(q, p, p.start, p.end, p.text) for p in result.passages]
        rank = first_hit(flags)
        if rank is not None:
            outcome.answer_passage, outcome.answer_rank = result.passages[rank - 1], rank
        else:
            outcome.answer_passage = _passage_in_document(q, searcher)


def _passage_in_document(question: EvalQuestion, searcher: Searcher) -> Passage | None:
    """The first indexed passage of the gold document that holds the answer (score NaN, empty highlight)."""
    if question.gold_doc is None:
        return None
    try:
        doc = searcher.document(question.gold_doc)
    except DocumentNotFoundError:
        return None
    chunks = searcher.data.chunks
    row = next(row for row, d in enumerate(searcher.data.documents) if d.doc_id == doc.doc_id)
    mine = chunks.doc == row
    for start, end in sorted(zip(chunks.start[mine].tolist(), chunks.end[mine].tolist(), strict=True)):
        passage = Passage(
            doc.doc_id, doc.title, start, end, doc.text[start:end], float("nan"), Highlight(start, start, "")
        )
        if is_hit(question, passage, start, end, passage.text):
            return passage
    return None


def _score(
    name: str, outcomes: list[Outcome], k: int, seconds: float, doc_langs: Mapping[str, str] | None = None
) -> SetScore:
    ranks = [o.rank for o in outcomes]
    lengths = [len(p.text) for o in outcomes for p in o.passages[:k]]
    highlights = [o.highlight_hit for o in outcomes if o.highlight_hit is not None]
    return SetScore(
        name=name,
        n=len(outcomes),
        hit_at_1=hit_at(ranks, 1),
        hit_at_5=hit_at(ranks, 5),
        mrr_at_10=mrr_at(ranks, 10),
        passage_chars=sum(lengths) / len(lengths) if lengths else 0.0,
        max_passage_chars=max(lengths, default=0),
        highlight_hit=sum(highlights) / len(highlights) if highlights else None,
        seconds=seconds,
        curve=hit_curve(ranks, DEPTH),
        outcomes=outcomes,
        by_lang=breakdown((o.question.lang, o.rank) for o in outcomes if o.question.lang),
        by_pair=by_pair(outcomes, doc_langs) if doc_langs is not None else {},
    )


def searcher_for(
    eval_set: EvalSet,
    settings: Settings,
    encoder: Encoder,
    params: SearchParams | None = None,
    extra_documents: Sequence[Document] = (),
    corpus_documents: Sequence[Document] = (),
    show_progress: bool = True,
) -> Searcher:
    """A searcher over the set's own documents, or over the live index for corpus sets.

    Sets with their own documents, or corpus sets with distractors, get an index
    cached under ``var/cache/eval`` keyed by content and settings, so a rerun
    with new search parameters does not embed again.
    """
    documents = list(eval_set.documents or corpus_documents) + list(extra_documents)
    if eval_set.documents is None and not extra_documents:
        return Searcher.of_shards(read_shards(resolve_live(settings.index_dir)), encoder, params or settings.search)
    cache = _cache_dir(documents, settings, build_settings(settings, encoder).reference, getattr(encoder, "engine", ""))
    cached = settings.model_copy(update={"index_dir": cache, "shards": 1})
    build_from_documents(documents, cached, encoder, show_progress=show_progress)
    return Searcher(read_index(resolve_live(cache)), encoder, params or settings.search)


def _cache_dir(documents: Sequence[Document], settings: Settings, reference: str, engine: str = "") -> Path:
    """The cache of an evaluation index: keyed by its documents, its build settings and the engine that ran the
    model, since two engines of one model give vectors equal only to a cosine of 0.999."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.doc_id.encode() + b"\0" + doc.content_hash.encode())
    key = f"{canonical_model_name(settings.model)}-{settings.chunk_size}-{settings.chunk_overlap}-{SPLITTER}"
    if settings.title_in_passages:
        key += "-titled"
    if settings.title_in_sentences:
        key += "-sentences-titled"
    if engine:
        key += "-" + engine
    if reference:  # one cache per question reference, so that trying another does not rebuild this one
        key += f"-ref{reference[:8]}"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
    return Path(settings.index_dir).parent / "cache" / "eval" / f"{safe}-{digest.hexdigest()[:16]}" / "index"
