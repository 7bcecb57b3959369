"""``qa eval``: load the sets, index what they need, score them and print the figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from index.config import Settings
from index.evaluation.datasets import (
    EvalSet,
    every_other_article,
    load_eval_file,
    original_questions,
    repairs_note,
    replace_questions,
    squad_documents,
)
from index.evaluation.runner import SetScore, evaluate, find_answer_passages, searcher_for, with_original
from index.models.encoders import load_encoder
from index.text.corpus import load_corpus

COLUMNS = ("hit@1", "hit@5", "mrr@10", "n", "passage_chars", "highlight_hit", "seconds")


def run_eval(files: list[Path], settings: Settings, args: argparse.Namespace) -> int:
    """Score every file; print a table (or JSON) and optionally write the HTML report."""
    encoder = load_encoder(settings.model, settings.e5_engine)
    distractors = [doc for path in args.distractors for doc in squad_documents(path)[0]]
    scores: list[SetScore] = []
    documents = []  # per set, doc_id -> Document, for the report's gold passages
    for path in files:
        eval_set = load_eval_file(path)
        if note := repairs_note(eval_set):
            print(note, file=sys.stderr)
        if args.questions_from:
            eval_set = replace_questions(eval_set, args.questions_from)
        if args.articles != "all":
            eval_set = every_other_article(eval_set, args.articles)
        corpus = _corpus_documents(eval_set, settings, distractors)
        searcher = searcher_for(
            eval_set,
            settings,
            encoder,
            extra_documents=distractors if eval_set.documents is None else (),
            corpus_documents=corpus,
            show_progress=not args.json,
        )
        if distractors and eval_set.documents is None:
            eval_set.name += f" + {len(searcher.data.chunks) - _corpus_chunks(searcher, corpus)} distractor chunks"
        scores.append(evaluate(eval_set, searcher, k=args.k, show_progress=not args.json))
        if (originals := original_questions(eval_set)) is not None:  # --questions-from: the same ids, as first asked
            with_original(scores[-1], evaluate(originals, searcher, k=args.k, show_progress=not args.json))
        if args.report:
            find_answer_passages(scores[-1], searcher)
            documents.append({d.doc_id: d for shard in searcher.shards for d in shard.data.documents})
    if args.json:
        print(json.dumps({score.name: score.figures() for score in scores}, ensure_ascii=False, indent=2))
    else:
        _print_table(scores)
    if args.report:
        from service.report import write_report

        path = write_report(scores, args.report, documents)
        if not args.json:
            print(f"report written to {path}")
    return 0


def _corpus_documents(eval_set: EvalSet, settings: Settings, distractors: list) -> list:
    """Corpus documents are read only for a corpus set that gets distractors beside it."""
    if eval_set.documents is not None or not distractors:
        return []
    return load_corpus(settings.corpus_dir).documents


def _corpus_chunks(searcher, corpus: list) -> int:
    """Passages of the corpus documents, as opposed to the distractors indexed beside them."""
    ids = {doc.doc_id for doc in corpus}
    rows = [row for row, doc in enumerate(searcher.data.documents) if doc.doc_id in ids]
    return int(np.isin(searcher.data.chunks.doc, rows).sum())


def _print_table(scores: list[SetScore]) -> None:
    """One row per set; under it, one per question language → gold document language, and the gap line."""
    labels = [f"  {pair}" for score in scores for pair in score.by_pair]
    width = max([len("set"), *(len(s.name) for s in scores), *(len(label) for label in labels)])
    print(f"{'set':<{width}}  " + "  ".join(f"{c:>13}" for c in COLUMNS))
    for score in scores:
        figures = score.figures()
        cells = [_cell(figures[c]) for c in COLUMNS]
        print(f"{score.name:<{width}}  " + "  ".join(f"{c:>13}" for c in cells))
        for pair, by in figures.get("by_pair", {}).items():
            print(f"{'  ' + pair:<{width}}  {by['hit@1']:>13.3f}  {by['hit@5']:>13.3f}  {'':>13}  {by['n']:>13}")
        if "gap" in figures:
            print(f"  {gap_line(figures)}")


def gap_line(figures: dict) -> str:
    """The rewritten questions' hit@1 against the same questions as the target file asks them."""
    return (
        "gap to the same questions in the document's language: "
        f"{figures['original_hit@1']:.3f} vs {figures['hit@1']:.3f} ({figures['gap']:+.3f})"
    )


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
