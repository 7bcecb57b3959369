"""Translated query terms: corpus words, their vectors, and the nearest words across languages (real encoder)."""

from __future__ import annotations

import numpy as np
import pytest

import index.storage.vocabulary as vocabulary_module
from index.errors import IndexCorruptError
from index.search.translation import Translator
from index.searcher import Searcher
from index.storage.store import read_index, resolve_live
from index.storage.vocabulary import Vocabulary, assemble_vocabulary, content_words, corpus_words
from index.text.corpus import Document
from tests.conftest import SEED

FRENCH = Document(
    "fr.txt",
    "Mascate",
    "La ville de Mascate accueille les délégations. Elles se rencontrent vendredi. "
    "Une frappe a touché la rivière près de la montagne.",
    {},
)
SPANISH = Document("es.txt", "", "La ciudad recibe a las delegaciones.", {})


def french_vocabulary(encoder, *documents: Document) -> Vocabulary:
    words = corpus_words([FRENCH, *documents], ["fr"] * (1 + len(documents)))
    vectors = dict(zip(words["fr"], encoder.encode_passages(words["fr"]), strict=True))
    return assemble_vocabulary(words, {"fr": vectors}, None)


def test_content_words_drop_stopwords_short_words_and_digits():
    words = content_words("Who mediated the talks in Muscat in 2026? The talks!", "en")
    assert words == ["mediated", "talks", "muscat"]


def test_corpus_words_are_per_language_with_titles_and_without_stopwords():
    words = corpus_words([FRENCH, SPANISH], ["fr", "es"])
    assert list(words) == ["es", "fr"]
    assert "mascate" in words["fr"] and "délégations" in words["fr"] and "les" not in words["fr"]
    assert words["es"] == sorted(["ciudad", "recibe", "delegaciones"])


def test_corpus_words_keep_the_most_frequent_when_capped(monkeypatch):
    monkeypatch.setattr(vocabulary_module, "MAX_WORDS", 2)
    doc = Document("d", "", "rivière rivière rivière montagne montagne vallée", {})
    assert corpus_words([doc], ["fr"]) == {"fr": ["montagne", "rivière"]}


def test_english_words_translate_to_their_french_neighbours(encoder):
    vocabulary = french_vocabulary(encoder)
    english = encoder.encode_queries(["city", "delegations"])
    assert vocabulary.translate(english, "fr", per_word=1, threshold=0.8) == [["ville"], ["délégations"]]
    assert vocabulary.translate(english, "fr", per_word=1, threshold=0.99) == [[], []]
    assert vocabulary.translate(english, "es", per_word=1, threshold=0.5) == [[], []]  # no Spanish vocabulary
    [several] = vocabulary.translate(encoder.encode_queries(["meet"]), "fr", per_word=3, threshold=0.5)
    assert 1 <= len(several) <= 3 and "rencontrent" in several


def test_a_large_vocabulary_uses_an_approximate_store_that_still_finds_the_word(encoder, monkeypatch):
    monkeypatch.setattr(vocabulary_module, "APPROXIMATE_FROM", 100)
    vocabulary = french_vocabulary(encoder, Document("seed", "", SEED.read_text(encoding="utf-8"), {}))
    assert len(vocabulary) >= 100 and vocabulary.stores["fr"].kind == "ivf-sq8"
    assert vocabulary.translate(encoder.encode_queries(["city"]), "fr", per_word=1, threshold=0.8) == [["ville"]]


def test_the_vocabulary_survives_save_and_load_and_damage_is_reported(encoder, tmp_path):
    vocabulary = french_vocabulary(encoder)
    vocabulary.save(tmp_path)
    loaded = Vocabulary.load(tmp_path)
    assert loaded.words == vocabulary.words
    city = encoder.encode_queries(["city"])
    assert loaded.translate(city, "fr", 1, 0.8) == vocabulary.translate(city, "fr", 1, 0.8)
    (tmp_path / "words.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="qa build"):
        Vocabulary.load(tmp_path)


def test_an_english_question_gets_french_terms_and_a_french_one_none(built, encoder):
    searcher = Searcher(read_index(resolve_live(built.index_dir)), encoder, built.search)
    english, french = searcher.encode(["Who mediated the talks?", "Qui a supervisé les discussions ?"])
    assert "mediat" in english.translations["fr"]  # médiation, stemmed as French
    assert "en" not in english.translations and "fr" not in french.translations
    off = Searcher(searcher.data, encoder, built.search.model_copy(update={"bm25_translated": 0.0}))
    assert off.encode(["Who mediated the talks?"])[0].translations == {}


def test_an_update_keeps_the_ids_of_kept_words_and_starts_afresh_when_most_slots_would_be_empty(encoder):
    vocabulary = french_vocabulary(encoder)
    before = list(vocabulary.words["fr"])
    wanted = sorted(set(before) - {"rivière"} | {"fleuve"})
    fleuve = {"fleuve": encoder.encode_passages(["fleuve"])[0]}
    updated = assemble_vocabulary({"fr": wanted}, {"fr": fleuve}, vocabulary)
    slots = updated.words["fr"]
    assert slots[: len(before)] == [w if w != "rivière" else "" for w in before] and slots[-1] == "fleuve"
    assert len(updated) == len(wanted) and updated.missing({"fr": wanted}) == {"fr": []}
    assert updated.translate(encoder.encode_queries(["river"]), "fr", 1, 0.5) == [["fleuve"]]
    few = ["ville", "fleuve"]
    rebuilt = assemble_vocabulary({"fr": few}, {}, updated)
    assert rebuilt.words["fr"] == few  # no empty slots left
    assert rebuilt.translate(encoder.encode_queries(["city"]), "fr", 1, 0.8) == [["ville"]]


def test_word_vectors_come_from_the_vocabulary_or_the_cache_before_the_encoder(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    calls = []

    class Counting:
        dim = encoder.dim

        def encode_queries(self, texts):
            calls.append(list(texts))
            return encoder.encode_queries(texts)

    searcher = Searcher(data, Counting(), built.search)
    first = searcher.encode(["Who mediated the negotiations for the Omani médiation?"])[0]
    # The question and its new words in one call; médiation is a corpus word, whose stored vector serves.
    assert calls == [["Who mediated the negotiations for the Omani médiation?", "mediated", "negotiations", "omani"]]
    again = searcher.encode(["Omani negotiations mediated?"])[0]
    assert calls[1:] == [["Omani negotiations mediated?"]]  # the words are remembered
    assert first.translations["fr"] and set(again.translations["fr"]) <= set(first.translations["fr"])
    stored = Translator(data.vocabulary).known_vectors(["médiation"])["médiation"]
    assert np.allclose(stored, encoder.encode_passages(["médiation"])[0], atol=1e-5)  # as the build embedded it
