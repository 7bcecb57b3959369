"""Turning a question's words into stemmed BM25 terms of the other document languages.

Each content word of the question needs a vector: a word the corpus already
has reuses the vocabulary's, a word seen in a recent question reuses that one,
and only the rest go to the encoder. Its nearest vocabulary words in each other
language are then stemmed as that language (see ``index.storage.vocabulary``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from index.config import SearchParams
from index.storage.lexical import tokenize
from index.storage.vocabulary import MAX_QUESTION_WORDS, Vocabulary, content_words

CACHED_WORDS = 10_000  # per searcher and cache: 20 MB of 512-dimension vectors


class Translator:
    """Translated query terms for one index; remembers recent words' vectors and translations."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._vectors: dict[str, np.ndarray] = {}
        self._stems: dict[tuple[str, int, float], dict[str, list[str]]] = {}  # (word, per word, threshold)
        self._lock = threading.Lock()  # searches may share a searcher across threads

    def words(self, question: str, lang: str, params: SearchParams) -> list[str]:
        """The question's content words, when translation is on and some document is in another language."""
        if not params.bm25_translated or all(each == lang for each in self.vocabulary.langs):
            return []
        return content_words(question, lang)[:MAX_QUESTION_WORDS]

    def untranslated(self, words: Sequence[str], params: SearchParams) -> list[str]:
        """The distinct words whose translations are not remembered for these parameters."""
        return [w for w in dict.fromkeys(words) if _key(w, params) not in self._stems]

    def known_vectors(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of the words that need no encoding: those remembered or in the vocabulary."""
        found = {word: vector for word in words if (vector := self._vectors.get(word)) is not None}
        found.update(self.vocabulary.known_vectors([word for word in words if word not in found]))
        return found

    def learn(self, words: Sequence[str], vectors: np.ndarray, params: SearchParams, encoded: bool) -> None:
        """Translate ``words`` (with their ``vectors``) into every vocabulary language and remember the stems;
        remember the vectors too when they were ``encoded`` for this."""
        stems: dict[str, dict[str, list[str]]] = {word: {} for word in words}
        for lang in self.vocabulary.langs:
            per_word, threshold = params.translations_per_word, params.translation_threshold
            nearest = self.vocabulary.translate(vectors, lang, per_word, threshold)
            for word, translations in zip(words, nearest, strict=True):
                stems[word][lang] = list(dict.fromkeys(tokenize(" ".join(translations), lang)))
        with self._lock:
            for word, vector in zip(words, vectors, strict=True):
                _put(self._stems, _key(word, params), stems[word])
                if encoded:
                    _put(self._vectors, word, vector)

    def translations(self, words: Sequence[str], lang: str, params: SearchParams) -> dict[str, dict[str, list[str]]]:
        """Each of ``words`` with the stems of its remembered translations, per document language other than
        ``lang`` (an empty mapping: it has none)."""
        out = {}
        for word in dict.fromkeys(words):
            stems = self._stems.get(_key(word, params), {})
            out[word] = {other: each for other, each in stems.items() if other != lang and each}
        return out


def _key(word: str, params: SearchParams) -> tuple[str, int, float]:
    return word, params.translations_per_word, params.translation_threshold


def _put(cache: dict, key, value) -> None:
    if len(cache) >= CACHED_WORDS:
        del cache[next(iter(cache))]  # the oldest
    cache[key] = value
