"""A question's language and the words it asks with, on the real classifier and stemmers."""

from __future__ import annotations

import pytest

from index.language import UNKNOWN, detect_language, detect_question_language
from index.lexical import LexicalIndex, tokenize, tokenize_query
from index.vocabulary import content_words


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


def test_a_question_without_letters_has_no_language():
    assert detect_question_language("2026 ?") == UNKNOWN
    assert detect_question_language("") == UNKNOWN


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
