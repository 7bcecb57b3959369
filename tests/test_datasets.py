"""Evaluation sets as published: a few answers whose offsets are off must not stop the run."""

from __future__ import annotations

import json
from pathlib import Path

from index.evaluation.datasets import EvalQuestion, align_answers, load_eval_file, nearest_occurrence, repairs_note
from tests.helpers import run_qa

CONTEXT = (
    "Les délégations se sont réunies à Mascate le 6 février 2026. "
    "Le ministre omanais Badr al-Busaidi a supervisé les discussions indirectes."
)


def answer(text: str, start: int) -> dict:
    return {"text": text, "answer_start": start}


def squad_file(path: Path) -> Path:
    """One article whose questions hold a right, a shifted, a lost and a missing answer."""
    at = CONTEXT.index
    qas = [
        {"id": "exact", "question": "Où ?", "answers": [answer("Mascate", at("Mascate"))]},
        {"id": "one-off", "question": "Quand ?", "answers": [answer("6 février 2026", at("6 février 2026") + 1)]},
        {
            "id": "one-lost",
            "question": "Qui a supervisé ?",
            "answers": [answer("Badr al-Busaidi", at("Badr al-Busaidi")), answer("Qaboos", 3)],
        },
        {"id": "all-lost", "question": "Quel sultan ?", "answers": [answer("Haïtham", 10)]},
        {"id": "far-off", "question": "Quoi ?", "answers": [answer("Les délégations", 60)]},
        {"id": "no-answer", "question": "Pourquoi ?", "answers": []},
    ]
    data = {"version": "test", "data": [{"title": "Oman", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_nearest_occurrence_within_reach():
    text = "ab Mascate cd Mascate"
    assert nearest_occurrence(text, "Mascate", 12, 20) == 14
    assert nearest_occurrence(text, "Mascate", 2, 20) == 3
    assert nearest_occurrence(text, "Mascate", 40, 5) is None
    assert nearest_occurrence(text, "Oman", 3, 20) is None


def test_align_answers_moves_keeps_and_drops():
    start = CONTEXT.index("Mascate")
    good = EvalQuestion("q", "Où ?", ("Mascate",), "d", ((start, start + 7),))
    assert align_answers(CONTEXT, good).question == good
    shifted = EvalQuestion("q", "Où ?", ("Mascate", "Oman"), "d", ((start - 2, start + 5), (0, 4)))
    aligned = align_answers(CONTEXT, shifted)
    assert (aligned.moved, aligned.skipped) == (1, 1)
    assert aligned.question.answers == ("Mascate",) and aligned.question.gold_spans == ((start, start + 7),)
    assert align_answers(CONTEXT, EvalQuestion("q", "?", ("Oman",), "d", ((0, 4),))).question is None


def test_squad_file_with_bad_records_loads_and_counts_repairs(tmp_path):
    eval_set = load_eval_file(squad_file(tmp_path / "bad.json"))
    by_id = {q.qid: q for q in eval_set.questions}
    assert set(by_id) == {"exact", "one-off", "one-lost"}
    doc = eval_set.documents[0].text
    (start, end) = by_id["one-off"].gold_spans[0]
    assert doc[start:end] == "6 février 2026"
    assert by_id["one-lost"].answers == ("Badr al-Busaidi",)
    assert eval_set.meta["repairs"] == {"moved": 1, "skipped": 3, "questions_skipped": 3}
    note = repairs_note(eval_set)
    assert note.startswith("note: bad.json: 1 answers moved") and "3 skipped" in note and "\n" not in note


def test_qa_eval_runs_on_bad_records_and_says_so(tmp_path):
    path = squad_file(tmp_path / "bad.json")
    result = run_qa("eval", str(path), "--json", "--index", str(tmp_path / "index"))
    assert result.returncode == 0, result.stderr
    assert "note: bad.json: 1 answers moved" in result.stderr
    [(_, figures)] = json.loads(result.stdout).items()
    assert figures["n"] == 3
