"""``qa train-ranker``: the candidates of dev questions, their features, and the lambdarank model (index.rerank.ranker).

Features are cached under ``var/ranker/`` (.npz, no pickle), keyed by the
questions, the index settings and the feature names, so retraining with other
boosting settings does not search again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from index.build.builder import build_settings
from index.config import Settings
from index.errors import EvalDataError
from index.evaluation.datasets import EvalSet, every_other_article, load_eval_file, replace_questions
from index.evaluation.metrics import contains_span
from index.evaluation.runner import searcher_for
from index.models.encoders import Encoder, canonical_model_name, load_encoder
from index.rerank.features import FEATURES
from index.rerank.ranker import ROUNDS, Ranker, RankerInfo, shipped_ranker, train
from index.searcher import Searcher
from index.storage.files import replace_atomically

# Bump when a feature's computation changes under the same name (2: question language by py3langid, question
# words left out of its terms; 3: the passage BM25 lists' shares of a full match computed by the shards).
FEATURE_VERSION = 3


def run_train_ranker(args: argparse.Namespace, settings: Settings) -> int:
    """Gather every set's candidates and features, train, and write the ranker; print where it went."""
    sets = [(path, None) for path in args.files] + [(articles, questions) for articles, questions in args.pair]
    if not sets:
        raise EvalDataError("give at least one SQuAD file (or --pair ARTICLES QUESTIONS) to train on")
    settings = settings.model_copy(update={"search": settings.search.model_copy(update={"ranker": "off"})})
    encoder = load_encoder(settings.model, settings.e5_engine)
    parts, sources = [], []
    loaded = [load_set(articles, questions, args.articles) for articles, questions in sets]
    if args.together:
        loaded = together_sets(loaded)
    for eval_set in loaded:
        parts.append(_set_features(eval_set, settings, encoder))
        sources.append(f"{eval_set.name}: {len(eval_set.questions)} questions")
    features = np.concatenate([p["features"] for p in parts])
    relevance = np.concatenate([p["relevance"] for p in parts])
    groups = np.concatenate([p["groups"] for p in parts])
    kept = _groups_with_answers(relevance, groups)
    depth = settings.search.rerank_depth
    print(f"training on {len(kept)} questions with an answer among their {depth} candidates "
          f"(of {len(groups)})")  # fmt: skip
    rows = np.repeat(np.isin(np.arange(len(groups)), kept), groups)
    rounds = args.rounds or ROUNDS
    text = train(features[rows], relevance[rows], groups[kept].tolist(), rounds)
    model = canonical_model_name(settings.model)
    trained_with = {"build": asdict(build_settings(settings, encoder)), "search": settings.search.model_dump()}
    info = RankerInfo(model, list(FEATURES), depth, rounds, len(kept), sources, trained_with)
    out = args.out or shipped_ranker(model)
    Ranker(text, info).save(out)
    print(f"wrote {out}; QA_RANKER=on uses the shipped one, QA_RANKER={out} this file")
    return 0


def load_set(articles: Path, questions: Path | None, parity: str) -> EvalSet:
    eval_set = load_eval_file(articles)
    if eval_set.documents is None:
        raise EvalDataError(f"{articles} has no articles of its own: train on SQuAD .json files")
    if questions is not None:
        eval_set = replace_questions(eval_set, questions)
    return eval_set if parity == "all" else every_other_article(eval_set, parity)


def together_sets(sets: list[EvalSet]) -> list[EvalSet]:
    """The sets with every set's articles indexed together, as a corpus of several languages is."""
    documents = list({doc.doc_id: doc for each in sets for doc in each.documents or []}.values())
    return [EvalSet(f"{each.name} (among all)", each.questions, documents, dict(each.meta)) for each in sets]


def _set_features(eval_set: EvalSet, settings: Settings, encoder: Encoder) -> dict[str, np.ndarray]:
    """Features, relevance (0/1) and group sizes of one set's questions, from the cache when it has them."""
    searcher = searcher_for(eval_set, settings, encoder, show_progress=False)
    path = features_cache_path(eval_set, settings, searcher)
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            return {key: cached[key] for key in ("features", "relevance", "groups")}
    print(f"searching {len(eval_set.questions)} questions of {eval_set.name}")
    features, relevance, groups = [], [], []
    queries = searcher.encode([q.question for q in eval_set.questions])
    for question, query in zip(eval_set.questions, queries, strict=True):
        lists = searcher.retrieve(query)
        found = searcher.candidates(query, lists, searcher.fuse(lists), searcher.params.rerank_depth)
        features.append(found.features)
        relevance.append(_relevance(searcher, question.gold_doc, question.gold_spans, found.rows))
        groups.append(len(found.rows))
    out = {
        "features": np.concatenate(features),
        "relevance": np.concatenate(relevance),
        "groups": np.array(groups, dtype=np.int64),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda handle: np.savez(handle, **out))
    return out


def _relevance(searcher: Searcher, gold_doc: str | None, spans, rows: np.ndarray) -> np.ndarray:
    """1 for each passage row that holds a gold span of the question, else 0."""
    chunks, documents = searcher.data.chunks, searcher.data.documents
    out = np.zeros(len(rows), dtype=np.int64)
    for i, row in enumerate(rows.tolist()):
        if documents[int(chunks.doc[row])].doc_id != gold_doc:
            continue
        passage = (int(chunks.start[row]), int(chunks.end[row]))
        out[i] = any(contains_span(passage, span) for span in spans)
    return out


def _groups_with_answers(relevance: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Indexes of the groups with at least one relevant row: the others teach a ranker nothing."""
    starts = np.concatenate(([0], np.cumsum(groups)[:-1]))
    has = np.array([relevance[s : s + g].any() for s, g in zip(starts, groups, strict=True)], dtype=bool)
    return np.flatnonzero(has)


def features_cache_path(eval_set: EvalSet, settings: Settings, searcher: Searcher) -> Path:
    key = {
        "questions": [(q.qid, q.question) for q in eval_set.questions],
        "index": [asdict(searcher.data.manifest.settings), searcher.data.manifest.documents],
        "search": settings.search.model_dump(),
        "features": list(FEATURES),
        "version": FEATURE_VERSION,
        "depth": settings.search.rerank_depth,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(settings.index_dir).parent / "ranker" / f"features-{digest}.npz"
