"""Turning a question's words into stemmed BM25 terms of the other document languages.

Each content word of the question needs a vector: a word the corpus already
has reuses the vocabulary's, a word seen in a recent question reuses that one,
and only the rest go to the encoder. Its nearest vocabulary words in each other
language are then stemmed as that language (see ``index.vocabulary``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from index.config import SearchParams
from index.lexical import tokenize
from index.vocabulary import MAX_QUESTION_WORDS, Vocabulary, content_words

CACHED_WORDS = 10_000  # per searcher: 20 MB of 512-dimension vectors


class Translator:
    """Translated query terms for one index; keeps the vectors of recent question words."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._cache: dict[str, np.ndarray] = {}
        self._cache_lock = threading.Lock()  # searches may share a searcher across threads

    def words(self, question: str, lang: str, params: SearchParams) -> list[str]:
        """The question's content words, when translation is on and some document is in another language."""
        if not params.bm25_translated or all(each == lang for each in self.vocabulary.langs):
            return []
        return content_words(question, lang)[:MAX_QUESTION_WORDS]

    def known_vectors(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of the words that need no encoding: those in the cache or in the vocabulary."""
        found = {word: vector for word in words if (vector := self._cache.get(word)) is not None}
        found.update(self.vocabulary.known_vectors([word for word in words if word not in found]))
        return found

    def remember(self, words: Sequence[str], vectors: np.ndarray) -> None:
        """Keep freshly encoded word vectors for later questions (the oldest go first)."""
        with self._cache_lock:
            for word, vector in zip(words, vectors, strict=True):
                if len(self._cache) >= CACHED_WORDS:
                    del self._cache[next(iter(self._cache))]
                self._cache[word] = vector

    def translations(self, lang: str, word_vectors: np.ndarray, params: SearchParams) -> dict[str, list[str]]:
        """Per other document language, the stems of the vocabulary words nearest the given word vectors."""
        p = params
        out = {}
        for other in self.vocabulary.langs:
            if other != lang and len(word_vectors):
                words = self.vocabulary.translate(word_vectors, other, p.translations_per_word, p.translation_threshold)
                stems = list(dict.fromkeys(tokenize(" ".join(words), other)))
                if stems:
                    out[other] = stems
        return out
