"""Indexes of two languages, from XQuAD: the answer in one, other articles in the question's (eval/README, row 36).

`.venv/bin/python eval/mixed_languages.py [even|odd]` (default: both). XQuAD's articles of one parity are cut
in two quarters by article number (0, 4, 8, … and 2, 6, 10, … for the even half). Each set indexes one quarter
in the answer's language and the other quarter in the other language, so that the question's language always
has articles too, but never the translation of the gold one:

- es→en, en→es: the question in one language, the answer in the other, distractors in the question's;
- es→es, en→en: the same indexes, the answer in the question's language, distractors in the other;
- fr→fr: PIAF's questions over its articles with XQuAD's 48 English ones beside them (a third of the passages).

Each set is run twice (each quarter holding the answers once) and the two runs are pooled. Search settings come
from the environment as for `qa eval` (e.g. `QA_SEARCH__BALANCE_LANGUAGES=false`). Indexes are cached under
`var/cache/eval/` like `qa eval`'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

from index.config import Settings
from index.evaluation.datasets import EvalQuestion, EvalSet, every_other_article, load_eval_file
from index.evaluation.runner import evaluate, searcher_for
from index.models.encoders import load_encoder

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
DIRECTIONS = (("es", "en"), ("en", "es"), ("es", "es"), ("en", "en"))  # (question, answer) languages


def mixed_set(sets: dict[str, EvalSet], question_lang: str, answer_lang: str, parity: str, quarter: int) -> EvalSet:
    """One index: ``quarter``'s articles in ``answer_lang`` (the answers), the other quarter in the other language."""
    other = "en" if answer_lang == "es" else "es"
    distractor_lang = question_lang if question_lang != answer_lang else other
    numbers = [i for i in range(len(sets["en"].documents)) if i % 2 == (parity == "odd")]
    gold = [i for i in numbers if (i // 2) % 2 == quarter]
    distractors = [i for i in numbers if (i // 2) % 2 != quarter]
    documents = [sets[answer_lang].documents[i] for i in gold]
    documents += [sets[distractor_lang].documents[i] for i in distractors]
    wanted = {sets[answer_lang].documents[i].doc_id for i in gold}
    texts = {q.qid: q.question for q in sets[question_lang].questions}
    questions = [
        EvalQuestion(q.qid, texts[q.qid], q.answers, q.gold_doc, q.gold_spans, question_lang)
        for q in sets[answer_lang].questions
        if q.gold_doc in wanted
    ]
    return EvalSet(f"{question_lang}→{answer_lang} {parity} q{quarter}", questions, documents)


def main(parities: list[str]) -> None:
    settings = Settings()
    encoder = load_encoder(settings.model)
    sets = {lang: load_eval_file(EVAL / f"xquad-{lang}.json") for lang in ("en", "es")}
    print("| questions → answers | half | n | hit@1 | hit@5 |")
    print("|---|---|---|---|---|")
    for parity in parities:
        for question_lang, answer_lang in DIRECTIONS:
            n = first = fifth = 0
            for quarter in (0, 1):
                eval_set = mixed_set(sets, question_lang, answer_lang, parity, quarter)
                searcher = searcher_for(eval_set, settings, encoder, show_progress=False)
                score = evaluate(eval_set, searcher, show_progress=False)
                n, first, fifth = n + score.n, first + score.hit_at_1 * score.n, fifth + score.hit_at_5 * score.n
            print(f"| {question_lang} → {answer_lang} | {parity} | {n} | {first / n:.3f} | {fifth / n:.3f} |")
        french = with_english(parity)
        score = evaluate(french, searcher_for(french, settings, encoder, show_progress=False), show_progress=False)
        figures = f"{score.n} | {score.hit_at_1:.3f} | {score.hit_at_5:.3f}"
        print(f"| fr → fr, English articles beside | {parity} | {figures} |")


def with_english(parity: str) -> EvalSet:
    """PIAF's questions about its ``parity`` articles, over its articles and XQuAD's English ones."""
    piaf = every_other_article(load_eval_file(EVAL / "piaf-dev.json"), parity)
    english = load_eval_file(EVAL / "xquad-en.json").documents or []
    return EvalSet(f"piaf-dev {parity} + xquad-en", piaf.questions, [*(piaf.documents or []), *english])


if __name__ == "__main__":
    main(sys.argv[1:] or ["even", "odd"])
