"""How often each detector names a dev question's language (eval/README, question language).

`.venv/bin/python eval/question_languages.py`: the stopword vote that documents use (`detect_language`)
against the classifier that questions use (`detect_question_language`, py3langid), over the questions of
piaf-dev (fr), xquad-en (en), xquad-es (es) and the project's own sets (their `lang` field).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from index.language import detect_language, detect_question_language

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
OWN = Path(__file__).resolve().parent


def squad_questions(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [qa["question"] for article in data for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def question_sets() -> dict[str, list[str]]:
    sets = {
        "piaf-dev (fr)": squad_questions(EVAL / "piaf-dev.json"),
        "xquad-en (en)": squad_questions(EVAL / "xquad-en.json"),
        "xquad-es (es)": squad_questions(EVAL / "xquad-es.json"),
    }
    for name in ("seed.jsonl", "seed-fresh.jsonl"):
        for line in (OWN / name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            sets.setdefault(f"own sets ({record['lang']})", []).append(record["question"])
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
