"""BM25 over passages with bm25s, stemmed per language.

Each passage is stemmed with the Snowball stemmer of its document's language;
a question is stemmed with its own language's stemmer and with those of the
corpus, so a cognate or a name can still match across languages. Stems lose
their accents, which lets ``médiation`` and ``mediation`` meet.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from index.errors import IndexCorruptError
from index.language import UNKNOWN, stopwords

logging.getLogger("bm25s").setLevel(logging.WARNING)

_WORD = re.compile(r"\w+", re.UNICODE)
_STEMMER_NAMES = {
    "en": "english", "fr": "french", "es": "spanish", "de": "german",
    "it": "italian", "pt": "portuguese", "nl": "dutch",
}  # fmt: skip


@lru_cache(maxsize=16)
def _stemmer(lang: str) -> Stemmer.Stemmer | None:
    name = _STEMMER_NAMES.get(lang)
    return Stemmer.Stemmer(name) if name else None


@lru_cache(maxsize=1 << 16)
def _fold(token: str) -> str:
    if token.isascii():
        return token
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _words(text: str, lang: str) -> list[str]:
    stop = stopwords(lang)
    return [w for w in _WORD.findall(text.lower()) if w not in stop and (len(w) > 1 or w.isdigit())]


def _stem(words: list[str], lang: str) -> list[str]:
    stemmer = _stemmer(lang)
    stems = stemmer.stemWords(words) if stemmer else words
    return [_fold(stem) for stem in stems]


def tokenize(text: str, lang: str) -> list[str]:
    """Lower-cased, stopword-free, stemmed and accent-folded tokens of ``text``."""
    return _stem(_words(text, lang), lang)


def tokenize_query(text: str, lang: str, corpus_langs: Iterable[str]) -> list[str]:
    """Query tokens stemmed as the question's language and as each corpus language, deduplicated."""
    words = _words(text, lang)
    langs = [lang, *sorted(set(corpus_langs) - {lang, UNKNOWN})]
    seen: dict[str, None] = {}
    for each in langs:
        for token in _stem(words, each):
            seen.setdefault(token, None)
    return list(seen)


class LexicalIndex:
    """A bm25s index whose rows are passage rows of the search index."""

    def __init__(self, model: bm25s.BM25, langs: Sequence[str]) -> None:
        self._model = model
        self.langs = tuple(langs)

    @classmethod
    def build(cls, texts: Sequence[str], langs: Sequence[str]) -> LexicalIndex:
        """Index passage ``texts``, each tokenized in the matching entry of ``langs``."""
        corpus = [tokenize(text, lang) for text, lang in zip(texts, langs, strict=True)]
        model = bm25s.BM25()
        model.index(corpus, show_progress=False)
        return cls(model, sorted(set(langs)))

    def scores(self, question: str, lang: str) -> np.ndarray:
        """BM25 score of every passage row for ``question``."""
        tokens = tokenize_query(question, lang, self.langs)
        ids = self._model.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(self._model.scores["num_docs"], dtype=np.float32)
        if getattr(self._model, "nonoccurrence_array", None) is not None:
            return self._model.get_scores_from_ids(ids)
        return _sum_columns(self._model.scores, ids, np.dtype(self._model.dtype))

    def save(self, folder: Path) -> None:
        self._model.save(str(folder), show_progress=False)
        (folder / "langs.txt").write_text("\n".join(self.langs), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        try:
            model = bm25s.BM25.load(str(folder), show_progress=False, allow_pickle=False)
            langs = (folder / "langs.txt").read_text(encoding="utf-8").split()
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"BM25 files in {folder} are unreadable: rebuild with `qa build`") from exc
        return cls(model, langs)


def _sum_columns(scores: dict, token_ids: list[int], dtype: np.dtype) -> np.ndarray:
    """bm25s' ``get_scores_from_ids`` without ``np.add.at``: a document occurs once per
    token column, so a plain fancy-index add gives the same sums in the same order, faster."""
    data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
    out = np.zeros(scores["num_docs"], dtype=dtype)
    for token in token_ids:
        start, end = indptr[token], indptr[token + 1]
        out[indices[start:end]] += data[start:end]
    return out
