"""The HTML evaluation report, written from a small hand-made score (real dataclasses, no index)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from index.evaluation.datasets import EvalQuestion
from index.evaluation.runner import Outcome, SetScore
from index.searcher import Highlight, Passage
from index.text.corpus import Document
from service.report import write_report

GOLD_TEXT = (
    "Les discussions se sont tenues à Mascate. "
    "Le ministre omanais Badr Albusaidi a servi de médiateur entre les délégations « iranienne » et américaine. "
    "Elles reprendront plus tard."
)
OTHER_TEXT = "La météo à Lyon était ensoleillée toute la semaine. Il pleuvra dimanche dans les Alpes."


def _passage(doc_id: str, title: str, text: str, start: int, end: int, hs: int, he: int, score: float) -> Passage:
    return Passage(doc_id, title, start, end, text[start:end], score, Highlight(hs, he, text[hs:he]))


def _score() -> tuple[SetScore, dict[str, Document]]:
    docs = {
        "set/0000": Document("set/0000", "Pourparlers", GOLD_TEXT),
        "set/0001": Document("set/0001", "Météo <b>Lyon</b>", OTHER_TEXT),
    }
    answer = "Badr Albusaidi"
    a = GOLD_TEXT.index(answer)
    hit = EvalQuestion("q1", "Qui a servi de médiateur ?", (answer,), "set/0000", ((a, a + len(answer)),), "fr")
    hostile = EvalQuestion("q2", "<script>alert(1)</script> où ?", (answer,), "set/0000", ((a, a + len(answer)),), "fr")
    nowhere = EvalQuestion("q3", "Where did it happen?", ("Mascate",), "set/0000", ((33, 40),), "en")
    gold_passage = _passage("set/0000", "Pourparlers", GOLD_TEXT, 0, len(GOLD_TEXT), 42, 149, 0.91)
    sentence = OTHER_TEXT.index("Il pleuvra")
    wrong = _passage("set/0001", "Météo <b>Lyon</b>", OTHER_TEXT, 0, len(OTHER_TEXT), sentence, len(OTHER_TEXT), 0.5)
    outcomes = [
        Outcome(hit, 1, [gold_passage, wrong], True),
        Outcome(hostile, 2, [wrong, gold_passage], None),
        Outcome(nowhere, None, [wrong], None),
    ]
    curve = [1 / 3] + [2 / 3] * 19
    score = SetScore(
        name="tiny <set> & co",
        n=3,
        hit_at_1=1 / 3,
        hit_at_5=2 / 3,
        mrr_at_10=0.5,
        passage_chars=120.0,
        max_passage_chars=len(GOLD_TEXT),
        highlight_hit=1.0,
        seconds=0.42,
        curve=curve,
        outcomes=outcomes,
        by_lang={"en": {"hit@1": 0.0, "hit@5": 0.0, "n": 1}, "fr": {"hit@1": 0.5, "hit@5": 1.0, "n": 2}},
    )
    return score, docs


def test_report_table_curve_escaping_and_missed(tmp_path: Path) -> None:
    score, docs = _score()
    path = write_report([score], tmp_path / "report", [docs])
    assert path == tmp_path / "report" / "index.html"
    page = path.read_text(encoding="utf-8")

    assert page.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in page
    # the figures table, with the set name escaped and the per-language rows
    table = re.search(r'<table class="figures">.*?</table>', page, re.S).group(0)
    assert "tiny &lt;set&gt; &amp; co" in table
    assert "<td>0.333</td>" in table and "<td>0.667</td>" in table and "<td>0.500</td>" in table
    assert "lang = en" in table and "lang = fr" in table

    # the hit@k curve: one hand-drawn polyline of 20 points within the viewBox
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    polylines = re.findall(r'<polyline[^>]* points="([^"]+)"', svg)
    assert len(polylines) == 1
    points = [tuple(map(float, p.split(","))) for p in polylines[0].split()]
    assert len(points) == 20
    assert all(0 <= x <= 640 and 0 <= y <= 320 for x, y in points)
    assert points[0][1] > points[1][1]  # hit@1 is lower on the chart than hit@2

    # escaping: no script element from the question, the title's <b> is text
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; où ?" in page
    assert "Météo &lt;b&gt;Lyon&lt;/b&gt;" in page
    assert "<b>" not in page

    # missed questions: q2 (rank 2) and q3 (not found), not q1 (rank 1)
    missed = re.findall(r'<li class="miss">(.*?)</li>', page, re.S)
    assert len(missed) == 2
    assert "Qui a servi de médiateur" not in page
    assert "rank 2" in missed[0] and "not in the top 20" in missed[1]
    gold, top = (
        re.search(r'<div class="gold">(.*?)</div>', missed[0], re.S).group(1),
        re.search(r'<div class="top">(.*?)</div>', missed[0], re.S).group(1),
    )
    assert re.findall(r"<mark>(.*?)</mark>", gold) == ["Badr Albusaidi"]
    assert "« iranienne »" in gold  # French quotes survive escaping
    assert [unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", top)] == ["Il pleuvra dimanche dans les Alpes."]
    # the third question's gold span is at its offsets
    gold3 = re.search(r'<div class="gold">(.*?)</div>', missed[1], re.S).group(1)
    assert re.findall(r"<mark>(.*?)</mark>", gold3) == [GOLD_TEXT[33:40]] == ["Mascate"]


def test_report_caps_missed_list_and_works_without_documents(tmp_path: Path) -> None:
    score, _ = _score()
    path = write_report([score], tmp_path, max_missed=1)
    page = path.read_text(encoding="utf-8")
    assert len(re.findall(r'<li class="miss">', page)) == 1
    assert "1 more missed question left out." in page
    assert "Gold document not available" in page


def test_missed_question_shows_the_best_ranked_passage_holding_the_answer(tmp_path: Path) -> None:
    score, _ = _score()
    answer_at = GOLD_TEXT.index("Badr")
    passage = _passage("set/0000", "Pourparlers", GOLD_TEXT, 42, len(GOLD_TEXT), answer_at, answer_at + 10, 0.4)
    score.outcomes[2] = Outcome(
        EvalQuestion("q3", "Who mediated?", ("badr albusaidi",), "set/0000", (), "en"), None, [], None, passage, 57
    )
    page = write_report([score], tmp_path).read_text(encoding="utf-8")  # no documents passed: a JSONL set's case
    missed = re.findall(r'<li class="miss">(.*?)</li>', page, re.S)
    assert "not in the top 20, at rank 57 of a deeper search" in missed[1]
    block = re.search(r'<div class="gold">(.*?)</div>', missed[1], re.S).group(1)
    assert "Best-ranked passage holding the answer" in block and "rank 57" in block and "[42:" in block
    assert re.findall(r"<mark>(.*?)</mark>", block) == ["Badr Albusaidi"]  # found case-folded in the passage
    assert "Gold document not available" not in missed[1]


def test_answer_passages_from_the_ranking_a_deeper_search_or_the_document(built, encoder, tmp_path: Path) -> None:
    from index.evaluation.datasets import EvalSet
    from index.evaluation.runner import evaluate, find_answer_passages
    from index.searcher import Searcher
    from index.storage.store import read_index, resolve_live

    searcher = Searcher(read_index(resolve_live(built.index_dir)), encoder)
    seed = "oman-iran-us-talks-2026-02-06.fr.txt"
    questions = [
        EvalQuestion("near", "Who is helping the US envoy?", ("Jared Kushner",), seed, (), "en"),
        EvalQuestion("far", "Will it rain in the Alps on Sunday?", ("Karoline Leavitt",), seed, (), "en"),
    ]
    score = evaluate(EvalSet("set.jsonl", questions), searcher, show_progress=False)
    near, far = score.outcomes
    assert near.answer_rank == near.rank and "Jared Kushner" in near.answer_passage.text
    far.rank = far.answer_rank = far.answer_passage = None  # as if it were not in the top 20
    find_answer_passages(score, searcher, depth=50)
    assert far.answer_rank is not None and far.answer_rank > 1 and "Karoline Leavitt" in far.answer_passage.text
    far.answer_rank = far.answer_passage = None
    find_answer_passages(score, searcher, depth=1)  # the search misses it: the document still has it
    assert far.answer_rank is None and "Karoline Leavitt" in far.answer_passage.text
    assert far.answer_passage.score != far.answer_passage.score  # NaN: not a search score
    far.rank = None
    page = write_report([score], tmp_path).read_text(encoding="utf-8")
    assert "not in the top 20 nor in a deeper search" in page and "not ranked by the search" in page
    assert "score nan" not in page
