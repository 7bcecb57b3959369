"""How often each detector names a dev question's language (eval/README, question language).

`.venv/bin/python eval/question_languages.py`: the stopword vote that documents use (`detect_language`)
against the classifier that questions use (`detect_question_language`, py3langid), over the questions of
piaf-dev (fr), xquad-en (en), xquad-es (es) and the project's own sets (their `lang` field).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from index.evaluation.datasets import load_eval_file, squad_documents
from index.text.language import detect_language, detect_question_language

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
OWN = Path(__file__).resolve().parent


def question_sets() -> dict[str, list[str]]:
    sets = {
        f"{name} ({lang})": [q.question for q in squad_documents(EVAL / f"{name}.json")[1]]
        for name, lang in (("piaf-dev", "fr"), ("xquad-en", "en"), ("xquad-es", "es"))
    }
    for name in ("seed.jsonl", "seed-fresh.jsonl"):
        for question in load_eval_file(OWN / name).questions:
            sets.setdefault(f"own sets ({question.lang})", []).append(question.question)
    return sets


def main() -> None:
    print("| questions | n | stopword vote: right, wrong (most common) | py3langid: right, wrong (most common) |")
    print("|---|---|---|---|")
    spent, asked = 0.0, 0
    detect_question_language("warm up")  # loads the model, which is not a question's cost
    for name, questions in question_sets().items():
        lang = name[name.index("(") + 1 : -1]
        cells = []
        for detect in (detect_language, detect_question_language):
            began = time.perf_counter()
            found = Counter(detect(question) for question in questions)
            if detect is detect_question_language:
                spent, asked = spent + time.perf_counter() - began, asked + len(questions)
            wrong = ", ".join(f"{code} {count}" for code, count in found.most_common() if code != lang)
            cells.append(f"{found[lang] / len(questions):.3f}{f' ({wrong})' if wrong else ''}")
        print(f"| {name} | {len(questions)} | {cells[0]} | {cells[1]} |")
    print(f"\npy3langid: {spent / asked * 1e6:.0f} µs per question")


if __name__ == "__main__":
    main()
