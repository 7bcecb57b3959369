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
