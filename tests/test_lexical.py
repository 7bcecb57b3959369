"""BM25 over stems, word prefixes and sentences, on real bm25s indexes."""

from __future__ import annotations

import numpy as np
import pytest

from index.errors import IndexCorruptError
from index.searcher import Searcher
from index.storage.lexical import LexicalIndex, prefixes, tokenize
from index.storage.store import read_index, resolve_live

TEXTS = [
    "Les délégations se sont réunies à Mascate.",
    "La médiation omanaise a réuni les délégations iranienne et américaine.",
    "Il a plu toute la semaine à Lyon.",
    "Le président a parlé de diplomatie.",
]
LANGS = ["fr"] * len(TEXTS)


def test_prefixes_let_cognates_meet_across_languages():
    assert prefixes("The delegations of the president", "en") == ["deleg", "presi"]
    assert prefixes("Les délégations du président", "fr") == ["deleg", "presi"]
    for french, english in [("américain", "american"), ("nucléaire", "nuclear"), ("universidad", "university")]:
        assert tokenize(french, "fr") != tokenize(english, "en")  # stems alone miss these
        assert prefixes(french, "fr") == prefixes(english, "en")


def test_scores_of_rows_equal_the_full_scores_at_those_rows():
    lexical = LexicalIndex.build(TEXTS, LANGS)
    rows = np.array([0, 2, 3])
    full = lexical.scores("délégations réunies à Mascate", "fr")
    assert np.allclose(lexical.scores_of_rows("délégations réunies à Mascate", "fr", rows), full[rows])
    lexical._sorted_postings = False  # the fallback for an index whose postings are not in row order
    assert np.allclose(lexical.scores_of_rows("délégations réunies à Mascate", "fr", rows), full[rows])
    assert not lexical.scores_of_rows("nothing matches", "fr", rows).any()


def test_shares_score_rows_against_a_full_match_of_the_question():
    lexical = LexicalIndex.build(TEXTS, LANGS)
    question = "délégations réunies à Mascate"
    shares, scores = lexical.shares(question, "fr"), lexical.scores(question, "fr")
    assert np.allclose(shares, scores / lexical.full_match(lexical.query_terms(question, "fr")))
    assert shares.max() == pytest.approx(1.0)  # row 0 holds each term as well as any row does
    one_word = lexical.shares("Lyon président", "fr")  # no row holds both: the best holds half of the full match
    assert 0.3 < one_word.max() < 0.7
    assert not lexical.shares("nothing matches", "fr").any() and lexical.full_match([]) == 0.0


def test_coverage_is_the_weighted_share_of_the_question_words_a_row_holds():
    lexical = LexicalIndex.build(TEXTS, LANGS)
    words = lexical.question_words("Les délégations réunies à Mascate", "fr")
    assert [each[0] for each in words] == ["deleg", "reun", "mascat"]  # stopwords gone, one entry per word
    coverage = lexical.coverage(words)
    assert coverage.max() == pytest.approx(1.0) and coverage.argmax() == 0  # row 0 holds every word fully
    assert 0 < coverage[1] < 0.5 and coverage[2] == 0  # row 1 holds "délégations" only
    # A word no row holds stays in the question: the same row explains less of it, in proportion.
    unknown = lexical.coverage([*words, ["xyzzy"]])
    assert unknown[0] == pytest.approx(3 / 4) and unknown[1] == pytest.approx(coverage[1] * 3 / 4)
    assert lexical.coverage([*words, ["xyzzy"]], unknown_weight=0) == pytest.approx(coverage)
    assert lexical.coverage([["xyzzy"], []]) is None


def test_a_word_with_two_terms_counts_once_by_its_best_term():
    lexical = LexicalIndex.build(TEXTS, LANGS)
    one = lexical.coverage([["mascat"], ["plu"]])
    both = lexical.coverage([["mascat", "deleg"], ["plu"]])  # row 0 holds both terms of the first word
    assert both[0] == pytest.approx(one[0]) and both[1] > 0 and both.max() <= 1.0


def test_coverage_in_a_shard_equals_the_whole_index():
    lexical = LexicalIndex.build(TEXTS, LANGS)
    words = lexical.question_words("délégations de Lyon", "fr")
    rows = np.array([1, 2])
    assert lexical.subset(rows).coverage(words) == pytest.approx(lexical.coverage(words)[rows])


def test_a_prefix_index_matches_an_english_question_to_french_text():
    cognates = LexicalIndex.build(TEXTS, LANGS, analyzer="prefixes")
    scores = cognates.scores("Which delegations met?", "en")
    assert scores[0] > 0 and scores[1] > 0 and scores[2] == 0


def test_the_analyzer_survives_save_and_load_and_a_bad_one_is_refused(tmp_path):
    LexicalIndex.build(TEXTS, LANGS, analyzer="prefixes").save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.analyzer == "prefixes" and loaded.langs == ("fr",)
    (tmp_path / "lexical.json").write_text('{"langs": ["fr"], "analyzer": "soundex"}')
    with pytest.raises(IndexCorruptError, match="rebuild"):
        LexicalIndex.load(tmp_path)


def test_each_lexical_list_holds_only_its_language(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    searcher = Searcher(data, encoder, built.search)
    [query] = searcher.encode(["Where did the delegations meet?"])
    assert query.lang == "en"
    lists = searcher.retrieve(query)
    stems, cognates = lists["bm25"], lists["cognates"]
    sentences, translated = lists["sentence_bm25"], lists["translated"]
    lang_of = {row: data.doc_langs[data.chunks.doc[row]] for row in range(len(data.chunks))}
    assert {lang_of[row] for row, score in stems.items() if score > 0} <= {"en"}
    assert {lang_of[row] for row, score in sentences.items()} <= {"en"}
    for across in (cognates, translated):
        french = [row for row, score in across.items() if score > 0]
        assert french and {lang_of[row] for row in french} == {"fr"}


def test_stems_can_replace_prefixes_across_languages(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    params = built.search.model_copy(update={"cross_language_terms": "stems", "sentence_bm25": 0.0})
    searcher = Searcher(data, encoder, params)
    lists = searcher.retrieve(searcher.encode(["Who is Abbas Araghchi?"])[0])
    assert lists["cognates"] and lists["sentence_bm25"] == {}  # names match as stems too; the sentence list is off
