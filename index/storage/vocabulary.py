"""Translated query terms: each question word's nearest corpus words in the other languages.

A multilingual encoder puts a word near its translations (``meet`` beside
``rencontrent`` and ``réunies``, ``strike`` beside ``frappe``, ``city`` beside
``ville``). A build embeds every distinct content word of the corpus, one
vocabulary per document language; at query time the question's content words
get vectors too (see ``index.search.translation``), and their nearest words in another
language become stemmed BM25 terms for the documents in that language. Word
prefixes match cognates (``delegations``/``délégations``); this matches
translations too.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.errors import IndexCorruptError
from index.storage.vectorstore import FaissVectorStore, VectorStore, load_vector_store
from index.text.corpus import Document
from index.text.language import question_stopwords, stopwords

_LETTERS = re.compile(r"[^\W\d_]{3,}")  # words of three letters or more: digits and names-with-digits match as they are
MAX_QUESTION_WORDS = 24  # bounds the encoder's extra work for a long question
MARGIN = 0.1  # a second translation is kept only if nearly as close as the best one
MAX_WORDS = 200_000  # per language, the most frequent: bounds build time and memory on large corpora
# From this many words a language's vectors go into an IVF index: a question's few words then
# probe a small share of the vocabulary instead of scanning it (~3 ms for 7,000 exact words here).
APPROXIMATE_FROM = 4096
NPROBE = 24  # of 2·sqrt(words) lists: 170 at 7,000 words
WORDS_FILE = "words.json"


def content_words(text: str, lang: str) -> list[str]:
    """Distinct lower-cased words of three letters or more of a question, not stopwords of ``lang``, in order."""
    stop = question_stopwords(lang)
    return list(dict.fromkeys(w for w in _LETTERS.findall(text.lower()) if w not in stop))


def corpus_words(documents: Sequence[Document], langs: Sequence[str]) -> dict[str, list[str]]:
    """The sorted content words of the documents, per document language (at most ``MAX_WORDS``, the most frequent)."""
    found: dict[str, Counter[str]] = {}
    for doc, lang in zip(documents, langs, strict=True):
        found.setdefault(lang, Counter()).update(_LETTERS.findall(f"{doc.title}\n{doc.text}".lower()))
    out = {}
    for lang, counts in sorted(found.items()):
        for stop in stopwords(lang) & counts.keys():
            del counts[stop]
        out[lang] = sorted(counts if len(counts) <= MAX_WORDS else dict(counts.most_common(MAX_WORDS)))
    return out


class Vocabulary:
    """Per document language, the corpus words and their vectors.

    A language's words are slots: a word's position is its id in that language's
    vector store, and an empty slot is a word an incremental build removed (a
    full build, or one that would leave most slots empty, starts afresh).
    """

    def __init__(self, words: dict[str, list[str]], stores: dict[str, VectorStore]) -> None:
        self.words = words
        self._stores = stores
        self._position_maps: dict[str, dict[str, int]] = {}

    @property
    def langs(self) -> list[str]:
        return list(self.words)

    @property
    def stores(self) -> dict[str, VectorStore]:
        """The vector store of each language's words."""
        return self._stores

    def __len__(self) -> int:
        return sum(len(self._positions(lang)) for lang in self.words)

    def missing(self, wanted: dict[str, list[str]]) -> dict[str, list[str]]:
        """The words of ``wanted`` that this vocabulary has no vector for, per language."""
        return {lang: [w for w in words if w not in self._positions(lang)] for lang, words in wanted.items()}

    def known_vectors(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of those ``words`` that some language's vocabulary holds."""
        found: dict[str, np.ndarray] = {}
        for lang in self.words:
            known = [w for w in dict.fromkeys(words) if w not in found and w in self._positions(lang)]
            if known:
                found.update(zip(known, self.vectors_of(lang, known), strict=True))
        return found

    def vectors_of(self, lang: str, words: Sequence[str]) -> np.ndarray:
        """Stored vectors of known ``words`` of ``lang``."""
        positions = self._positions(lang)
        return self._stores[lang].get(np.array([positions[w] for w in words], dtype=np.int64))

    def translate(self, vectors: np.ndarray, lang: str, per_word: int, threshold: float) -> list[list[str]]:
        """For each query-word vector, the words of ``lang`` nearest it: up to ``per_word``, at similarity
        ≥ ``threshold`` and within ``MARGIN`` of that word's best."""
        store = self._stores.get(lang)
        if store is None or not len(store) or not len(vectors):
            return [[] for _ in range(len(vectors))]
        scores, ids = store.search(vectors, per_word)
        keep = (ids >= 0) & (scores >= threshold) & (scores >= scores[:, :1] - MARGIN)
        words = self.words[lang]
        return [[words[i] for i in row[kept].tolist()] for row, kept in zip(ids, keep, strict=True)]

    def updated(
        self, lang: str, wanted: Sequence[str], added: Sequence[str], vectors: np.ndarray
    ) -> tuple[list[str], VectorStore] | None:
        """This language's slots and store, changed in place to hold ``wanted``: the words no longer wanted
        removed, ``added`` (with ``vectors``) appended. None when the store is better rebuilt: there is
        none, it should change kind (exact or IVF), or most slots would be empty."""
        store, slots = self._stores.get(lang), self.words.get(lang, [])
        keep = set(wanted)
        approximate = len(keep) >= APPROXIMATE_FROM
        if store is None or approximate != (getattr(store, "kind", "flat") != "flat"):
            return None
        if 2 * len(keep) < len(slots) + len(added):
            return None
        store.remove(np.array([i for i, w in enumerate(slots) if w and w not in keep], dtype=np.int64))
        slots = [w if w in keep else "" for w in slots]
        store.add(np.arange(len(slots), len(slots) + len(added), dtype=np.int64), vectors)
        return slots + list(added), store

    def save(self, folder: Path) -> None:
        """Write the word lists and one vector store per language into an existing, empty folder."""
        (folder / WORDS_FILE).write_text(json.dumps(self.words, ensure_ascii=False), encoding="utf-8")
        for lang, store in self._stores.items():
            (folder / lang).mkdir()
            store.save(folder / lang)

    @classmethod
    def load(cls, folder: Path) -> Vocabulary:
        try:
            words = json.loads((folder / WORDS_FILE).read_text(encoding="utf-8"))
            if not isinstance(words, dict):
                raise ValueError("words.json is not an object")
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"vocabulary in {folder} is unreadable: rebuild with `qa build`") from exc
        return cls(words, {lang: load_vector_store(folder / lang) for lang in words})

    def _positions(self, lang: str) -> dict[str, int]:
        if lang not in self._position_maps:
            self._position_maps[lang] = {w: i for i, w in enumerate(self.words.get(lang, [])) if w}
        return self._position_maps[lang]


def assemble_vocabulary(
    wanted: dict[str, list[str]], new_vectors: dict[str, dict[str, np.ndarray]], previous: Vocabulary | None
) -> Vocabulary:
    """A vocabulary of ``wanted`` words: the vectors of words new to it from ``new_vectors`` (per language,
    word -> vector), the others from ``previous``, whose stores are updated in place where they can be."""
    words: dict[str, list[str]] = {}
    stores: dict[str, VectorStore] = {}
    for lang, wanted_words in wanted.items():
        if not wanted_words:
            continue
        fresh = new_vectors.get(lang, {})
        vectors = np.array(list(fresh.values()), dtype=np.float32)
        updated = previous.updated(lang, wanted_words, list(fresh), vectors) if previous else None
        words[lang], stores[lang] = updated or _fresh_language(lang, wanted_words, fresh, previous)
    return Vocabulary(words, stores)


def _fresh_language(
    lang: str, words: list[str], fresh: dict[str, np.ndarray], previous: Vocabulary | None
) -> tuple[list[str], VectorStore]:
    """Slots without gaps and a new store for one language, reusing the previous vectors of known words."""
    known = [w for w in words if w not in fresh]
    reused = dict(zip(known, previous.vectors_of(lang, known), strict=True)) if known and previous else {}
    matrix = np.array([fresh[w] if w in fresh else reused[w] for w in words], dtype=np.float32)
    if len(words) >= APPROXIMATE_FROM:
        store = FaissVectorStore.approximate(matrix, nprobe=NPROBE)
    else:
        store = FaissVectorStore.exact(matrix.shape[1])
    store.add(np.arange(len(words), dtype=np.int64), matrix)
    return list(words), store
