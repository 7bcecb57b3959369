"""Rewritten questions (``qa eval --questions-from FILE.jsonl``), the question → document language breakdown
and the gap to the same questions in the document's language."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from index.errors import EvalDataError
from index.evaluation.datasets import EvalQuestion, load_eval_file, original_questions, replace_questions
from index.evaluation.metrics import breakdown, gap
from index.evaluation.runner import Outcome, by_pair, pair_key
from tests.helpers import run_qa

TALKS = (
    "Les délégations iranienne et américaine se sont réunies à Mascate le 6 février 2026. "
    "Le ministre omanais Badr al-Busaidi a supervisé les discussions indirectes entre elles."
)
WEATHER = "The weather in Lyon was sunny all week. Rain is expected on Sunday in the Alps, and snow above 2000 metres."
GAP_LINE = re.compile(
    r"gap to the same questions in the document's language: (\d\.\d{3}) vs (\d\.\d{3}) \(([+-]\d\.\d{3})\)"
)


def squad_file(path: Path) -> Path:
    """Two articles (one French, one English), three French questions."""

    def qa_record(qid: str, question: str, context: str, answer: str) -> dict:
        return {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}]}

    data = {
        "version": "test",
        "data": [
            {
                "title": "Pourparlers",
                "paragraphs": [
                    {
                        "context": TALKS,
                        "qas": [
                            qa_record("where", "Dans quelle ville les délégations se sont-elles réunies ?", TALKS,
                                      "Mascate"),
                            qa_record("who", "Qui a supervisé les discussions indirectes ?", TALKS, "Badr al-Busaidi"),
                        ],
                    }
                ],
            },
            {
                "title": "Weather",
                "paragraphs": [
                    {
                        "context": WEATHER,
                        "qas": [qa_record("rain", "Où pleuvra-t-il dimanche ?", WEATHER, "the Alps")],
                    }
                ],
            },
        ],
    }  # fmt: skip
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def rewrites_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    return path


REWRITES = [
    {"id": "where", "question": "In which city did the Iranian and American delegations meet?", "lang": "en"},
    {"id": "who", "question": "¿Quién supervisó las conversaciones indirectas entre las delegaciones?"},  # no lang
]


def test_squad_questions_carry_the_file_language(tmp_path):
    eval_set = load_eval_file(squad_file(tmp_path / "set.json"))
    assert {q.lang for q in eval_set.questions} == {"fr"}


def test_jsonl_rewrites_a_subset_with_its_languages(tmp_path):
    target = load_eval_file(squad_file(tmp_path / "set.json"))
    rewritten = replace_questions(target, rewrites_file(tmp_path / "en.jsonl", REWRITES))
    assert rewritten.name == "set.json <- en.jsonl"
    assert [q.qid for q in rewritten.questions] == ["where", "who"]  # "rain" is not rewritten: not scored
    by_id = {q.qid: q for q in target.questions}
    for question, row in zip(rewritten.questions, REWRITES, strict=True):
        gold = by_id[question.qid]
        assert question.question == row["question"]
        assert (question.answers, question.gold_doc, question.gold_spans) == (
            gold.answers,
            gold.gold_doc,
            gold.gold_spans,
        )
    assert [q.lang for q in rewritten.questions] == ["en", "es"]  # given, then detected from the text
    assert rewritten.documents is target.documents
    original = original_questions(rewritten)
    assert [q.question for q in original.questions] == [by_id["where"].question, by_id["who"].question]
    assert {q.lang for q in original.questions} == {"fr"}
    assert original_questions(target) is None


def test_jsonl_rewrite_of_an_unknown_id_is_named(tmp_path):
    target = load_eval_file(squad_file(tmp_path / "set.json"))
    rows = [*REWRITES, {"id": "p404", "question": "What is missing?", "lang": "en"}]
    with pytest.raises(EvalDataError, match=r"en\.jsonl:3: question id p404 is not a question of set\.json"):
        replace_questions(target, rewrites_file(tmp_path / "en.jsonl", rows))
    with pytest.raises(EvalDataError, match=r"bad\.jsonl:1: expected \{id, question, lang\?\}"):
        replace_questions(target, rewrites_file(tmp_path / "bad.jsonl", [{"id": "where"}]))
    with pytest.raises(EvalDataError, match="question id where appears twice"):
        replace_questions(target, rewrites_file(tmp_path / "twice.jsonl", [REWRITES[0], REWRITES[0]]))


def test_squad_questions_from_keep_every_question_in_the_source_language(tmp_path):
    target = load_eval_file(squad_file(tmp_path / "set.json"))
    source = json.loads(squad_file(tmp_path / "source.json").read_text(encoding="utf-8"))
    english = {
        "where": "Where did the delegations meet?",
        "who": "Who oversaw the talks?",
        "rain": "Where will it rain on Sunday?",
    }
    for article in source["data"]:
        for qa_record in article["paragraphs"][0]["qas"]:
            qa_record["question"] = english[qa_record["id"]]
    (tmp_path / "source.json").write_text(json.dumps(source), encoding="utf-8")
    replaced = replace_questions(target, tmp_path / "source.json")
    assert [q.question for q in replaced.questions] == list(english.values())
    assert {q.lang for q in replaced.questions} == {"en"}


def test_pair_breakdown_and_gap_are_pure():
    def outcome(qid: str, lang: str | None, doc: str | None, rank: int | None) -> Outcome:
        return Outcome(EvalQuestion(qid, "?", ("a",), doc, (), lang), rank, [], None)

    doc_langs = {"talks": "fr", "weather": "en"}
    outcomes = [
        outcome("1", "en", "talks", 1),
        outcome("2", "en", "talks", 3),
        outcome("3", "en", "talks", None),
        outcome("4", "fr", "weather", 6),
        outcome("5", "es", None, 1),  # no gold document
        outcome("6", None, "elsewhere", 2),  # no language, a document not in the index
    ]
    assert pair_key(outcomes[0].question, doc_langs) == "en→fr"
    assert by_pair(outcomes, doc_langs) == {
        "en→fr": {"hit@1": 0.3333, "hit@5": 0.6667, "n": 3},
        "es→?": {"hit@1": 1.0, "hit@5": 1.0, "n": 1},
        "fr→en": {"hit@1": 0.0, "hit@5": 0.0, "n": 1},
        "unknown→?": {"hit@1": 0.0, "hit@5": 1.0, "n": 1},
    }
    assert breakdown([]) == {}
    assert gap([1, 1, None, 2], [1, None, None, 1]) == {"original_hit@1": 0.5, "gap": 0.0}
    assert gap([1, 1, None, 2], [None, None, 3, 1]) == {"original_hit@1": 0.5, "gap": -0.25}
    with pytest.raises(ValueError):
        gap([1], [1, 2])


def test_qa_eval_prints_pairs_and_the_gap(tmp_path):
    squad = squad_file(tmp_path / "set.json")
    rewrites = rewrites_file(tmp_path / "en.jsonl", REWRITES)
    index = str(tmp_path / "index")
    result = run_qa("eval", str(squad), "--questions-from", str(rewrites), "--index", index)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("set.json <- en.jsonl ")
    assert [line.split()[0] for line in lines[2:4]] == ["en→fr", "es→fr"]
    (before, after, difference), *_ = GAP_LINE.findall(result.stdout)
    assert round(float(after) - float(before), 3) == pytest.approx(float(difference), abs=0.0015)

    as_json = run_qa("eval", str(squad), "--questions-from", str(rewrites), "--json", "--index", index)
    assert as_json.returncode == 0, as_json.stderr
    figures = json.loads(as_json.stdout)["set.json <- en.jsonl"]
    assert figures["n"] == 2 and set(figures["by_pair"]) == {"en→fr", "es→fr"}
    assert figures["original_hit@1"] == pytest.approx(float(before), abs=0.0005)
    assert figures["gap"] == pytest.approx(figures["hit@1"] - figures["original_hit@1"], abs=1e-4)

    plain = json.loads(run_qa("eval", str(squad), "--json", "--index", index).stdout)["set.json"]
    assert set(plain["by_pair"]) == {"fr→fr", "fr→en"} and "gap" not in plain

    unknown = rewrites_file(tmp_path / "bad.jsonl", [{"id": "p404", "question": "Who?", "lang": "en"}])
    failed = run_qa("eval", str(squad), "--questions-from", str(unknown), "--index", index)
    assert failed.returncode == 2 and failed.stderr.startswith("error: ") and "p404" in failed.stderr
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
