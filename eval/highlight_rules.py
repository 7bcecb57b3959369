"""Highlight rules compared on the even (or odd) articles of PIAF and XQuAD en→es (eval/README, highlight).

`.venv/bin/python eval/highlight_rules.py even`: for each question, the best-fused passage (of the top 20) that
holds the answer; a rule picks one of its sentences, and a hit is a sentence that holds the answer span. Each
rule scores a sentence from its cosine similarity to the question (`sim`), its question hubness (`hub`), the
unweighted share of the question's terms it holds (`share`, the rule before issue 15) and the rarity-weighted
share (`weighted`, the rule of `index.search.highlight` at `QA_SEARCH__HIGHLIGHT_HUBNESS` 1.0 and `_TERMS` 0.3;
the last two rules are row 38 of eval/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from index.config import Settings
from index.evaluation.datasets import every_other_article, load_eval_file, replace_questions
from index.evaluation.metrics import contains_span
from index.evaluation.runner import searcher_for
from index.models.encoders import load_encoder
from index.search.fusion import best
from index.search.highlight import sentence_terms
from index.storage.lexical import tokenize_query

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
SETS = {"PIAF": (EVAL / "piaf-dev.json", None), "XQuAD en→es": (EVAL / "xquad-es.json", EVAL / "xquad-en.json")}
RULES = {
    "before: sim + 0.3 share": lambda sim, hub, share, weighted: sim + 0.3 * share,
    "sim - 0.5 hub + 0.3 share": lambda sim, hub, share, weighted: sim - 0.5 * hub + 0.3 * share,
    "sim - hub + 0.3 share": lambda sim, hub, share, weighted: sim - hub + 0.3 * share,
    "sim - 1.5 hub + 0.3 share": lambda sim, hub, share, weighted: sim - 1.5 * hub + 0.3 * share,
    "sim + 0.3 weighted": lambda sim, hub, share, weighted: sim + 0.3 * weighted,
    "sim + 0.5 weighted": lambda sim, hub, share, weighted: sim + 0.5 * weighted,
    "now: sim - hub + 0.3 weighted": lambda sim, hub, share, weighted: sim - hub + 0.3 * weighted,
    "sim - hub + 0.5 weighted": lambda sim, hub, share, weighted: sim - hub + 0.5 * weighted,
    "sim - hub + 0.1 weighted": lambda sim, hub, share, weighted: sim - hub + 0.1 * weighted,
    "sim - hub + 0.05 weighted": lambda sim, hub, share, weighted: sim - hub + 0.05 * weighted,
}


def sentence_rows(parity: str) -> dict[str, list[tuple[np.ndarray, ...]]]:
    """Per set, for each question: (sim, hub, share, weighted, holds the answer) over its passage's sentences."""
    settings = Settings()
    settings = settings.model_copy(update={"search": settings.search.model_copy(update={"ranker": "off"})})
    encoder = load_encoder(settings.model)
    out: dict[str, list[tuple[np.ndarray, ...]]] = {}
    for name, (articles, questions) in SETS.items():
        eval_set = load_eval_file(articles)
        if questions:
            eval_set = replace_questions(eval_set, questions)
        eval_set = every_other_article(eval_set, parity)
        searcher = searcher_for(eval_set, settings, encoder, show_progress=False)
        queries = searcher.encode([q.question for q in eval_set.questions])
        out[name] = [
            row
            for question, query in zip(eval_set.questions, queries, strict=True)
            if (row := _passage_sentences(searcher, question, query)) is not None
        ]
    return out


def _passage_sentences(searcher, question, query) -> tuple[np.ndarray, ...] | None:
    data, links = searcher.data, searcher.shards[0].links
    top = best(searcher.fuse(searcher.retrieve(query)), 20)
    gold = next((row for row, _ in top if _holds(data, question, row)), None)
    if gold is None:
        return None
    doc_row = int(data.chunks.doc[gold])
    text, lang = data.documents[doc_row].text, data.doc_langs[doc_row]
    start, end = int(data.chunks.start[gold]), int(data.chunks.end[gold])
    rows = np.arange(links.chunk_first_sentence[gold], links.chunk_last_sentence[gold] + 1)
    spans = [(max(int(data.sentences.start[r]), start), min(int(data.sentences.end[r]), end)) for r in rows]
    kept = [i for i, (s, e) in enumerate(spans) if e > s]
    if not kept:
        return None
    rows, spans = rows[kept], [spans[i] for i in kept]
    terms = {*tokenize_query(query.text, query.lang, [lang]), *query.translations.get(lang, [])}
    weights = data.sentence_lexical.term_weights(terms)
    total = sum(weights.values())
    sets = [sentence_terms(text[s:e], lang) for s, e in spans]
    share = np.array([len(terms & each) / len(terms) if terms else 0.0 for each in sets])
    weighted = np.array([sum(weights[t] for t in terms & each) / total if total else 0.0 for each in sets])
    sim = data.sentence_vectors.get(data.sentences.ids[rows]) @ query.vector
    holds = np.array([any(contains_span(span, g) for g in question.gold_spans) for span in spans])
    return sim, data.sentence_hubness[rows], share, weighted, holds


def _holds(data, question, row: int) -> bool:
    if data.documents[int(data.chunks.doc[row])].doc_id != question.gold_doc:
        return False
    passage = (int(data.chunks.start[row]), int(data.chunks.end[row]))
    return any(contains_span(passage, g) for g in question.gold_spans)


def main() -> None:
    parity = sys.argv[1] if len(sys.argv) > 1 else "even"
    per_set = sentence_rows(parity)
    print(f"{parity} articles: " + ", ".join(f"{name} {len(rows)} passages" for name, rows in per_set.items()))
    for label, rule in RULES.items():
        figures = [
            np.mean([row[4][int(np.argmax(rule(*row[:4])))] for row in rows]) for rows in per_set.values()
        ]
        print(f"{label:32s} " + "  ".join(f"{name} {f:.3f}" for name, f in zip(per_set, figures, strict=True)))


if __name__ == "__main__":
    main()
