"""BM25 with bm25s, over stems for one language and word prefixes across languages.

Two analyzers turn text into terms:

- ``stems``: each text is stemmed with the Snowball stemmer of its document's
  language; a question with its own language's stemmer and with those of the
  corpus. Stems lose their accents, so ``médiation`` and ``mediation`` meet.
- ``prefixes``: the first ``PREFIX_CHARS`` letters of each accent-folded word.
  Across languages, cognates share their start far more often than their
  Snowball stems (``delegations``/``délégations``, ``diplomatic``/
  ``diplomatique``, ``president``/``presidente``): truncation is the classic
  translation-free way to match them.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cached_property, lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from index.config import PREFIX_CHARS
from index.errors import IndexCorruptError
from index.text.language import UNKNOWN, question_stopwords, stopwords

logging.getLogger("bm25s").setLevel(logging.WARNING)

_WORD = re.compile(r"\w+", re.UNICODE)
ANALYZERS = ("stems", "prefixes")
CEILINGS_FILE = "ceilings.npy"  # a shard's copy of the whole index's term ceilings (see LexicalIndex.subset)
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


def _words(text: str, lang: str, stop: frozenset[str] | None = None) -> list[str]:
    stop = stopwords(lang) if stop is None else stop
    return [w for w in _WORD.findall(text.lower()) if w not in stop and (len(w) > 1 or w.isdigit())]


def _stem(words: list[str], lang: str) -> list[str]:
    stemmer = _stemmer(lang)
    stems = stemmer.stemWords(words) if stemmer else words
    return [_fold(stem) for stem in stems]


def tokenize(text: str, lang: str) -> list[str]:
    """Lower-cased, stopword-free, stemmed and accent-folded tokens of ``text``."""
    return _stem(_words(text, lang), lang)


def prefixes(text: str, lang: str, stop: frozenset[str] | None = None) -> list[str]:
    """The first ``PREFIX_CHARS`` letters of each accent-folded word (stopwords and short words dropped)."""
    stop = stopwords(lang) if stop is None else stop
    words = _WORD.findall(text.lower())
    return [_fold(w)[:PREFIX_CHARS] for w in words if w not in stop and (len(w) > 2 or w.isdigit())]


def _stemming_langs(lang: str, corpus_langs: Iterable[str]) -> list[str]:
    """The languages a question's words are stemmed as: its own, then each other corpus language."""
    return [lang, *sorted(set(corpus_langs) - {lang, UNKNOWN})]


def tokenize_query(text: str, lang: str, corpus_langs: Iterable[str]) -> list[str]:
    """Query tokens stemmed as the question's language and as each corpus language, deduplicated."""
    words = _words(text, lang, question_stopwords(lang))
    seen: dict[str, None] = {}
    for each in _stemming_langs(lang, corpus_langs):
        for token in _stem(words, each):
            seen.setdefault(token, None)
    return list(seen)


def _analyze(text: str, lang: str, analyzer: str) -> list[str]:
    return tokenize(text, lang) if analyzer == "stems" else prefixes(text, lang)


class LexicalIndex:
    """A bm25s index whose rows are rows of a span table (passages or sentences)."""

    def __init__(
        self, model: bm25s.BM25, langs: Sequence[str], analyzer: str = "stems", ceilings: np.ndarray | None = None
    ) -> None:
        """``ceilings``: each term's highest score over a whole index this one is a part (shard) of."""
        self._model = model
        self.langs = tuple(langs)
        self.analyzer = analyzer
        self._whole_ceilings = ceilings
        if ceilings is not None:
            self.__dict__["_ceilings"] = ceilings  # the cached property, set: a shard weighs terms as the whole does

    @classmethod
    def build(
        cls, texts: Sequence[str], langs: Sequence[str], analyzer: str = "stems", k1: float = 0.6
    ) -> LexicalIndex:
        """Index ``texts``, each analysed in the matching entry of ``langs``.

        ``k1`` is BM25's term-frequency saturation; passages are short, so a
        low value lets a repeated word count little against a rarer one.
        """
        corpus = [_analyze(text, lang, analyzer) for text, lang in zip(texts, langs, strict=True)]
        model = bm25s.BM25(k1=k1)
        model.index(corpus, show_progress=False)
        return cls(model, sorted(set(langs)), analyzer)

    @property
    def bm25(self) -> bm25s.BM25:
        """The bm25s model: its sparse score matrix and vocabulary (``qa bench`` tiles them)."""
        return self._model

    def __len__(self) -> int:
        return int(self._model.scores["num_docs"])

    def query_terms(self, question: str, lang: str) -> list[str]:
        if self.analyzer == "stems":
            return tokenize_query(question, lang, self.langs)
        return list(dict.fromkeys(prefixes(question, lang, question_stopwords(lang))))

    def scores(self, question: str, lang: str) -> np.ndarray:
        """BM25 score of every row for ``question``."""
        return self.scores_of_terms(self.query_terms(question, lang))

    def scores_of_terms(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every row for already analysed query terms."""
        ids = self._model.get_tokens_ids(list(terms))
        if not ids:
            return np.zeros(len(self), dtype=np.float32)
        if getattr(self._model, "nonoccurrence_array", None) is not None:
            return self._model.get_scores_from_ids(ids)
        return _sum_columns(self._model.scores, ids, np.dtype(self._model.dtype))

    def shares(self, question: str, lang: str) -> np.ndarray:
        """``scores`` as a share of what a full match of ``question`` would score (see ``ceilings``)."""
        return self.shares_of_terms(self.query_terms(question, lang))

    def shares_of_terms(self, terms: Sequence[str]) -> np.ndarray:
        """``scores_of_terms`` as a share of what a full match of ``terms`` would score: 1.0 for a row holding
        each of them as well as any row does, whatever the question; zeros when no row holds any."""
        full = self.full_match(terms)
        scores = self.scores_of_terms(terms)
        return scores / np.float32(full) if full > 0 else scores

    def question_words(self, question: str, lang: str) -> list[list[str]]:
        """The question's content words, each as the terms this index matches it by: its stems in the question's
        language and the corpus's, or its prefix."""
        stop = question_stopwords(lang)
        if self.analyzer == "prefixes":
            return [[prefix] for prefix in dict.fromkeys(prefixes(question, lang, stop))]
        langs = _stemming_langs(lang, self.langs)
        words = list(dict.fromkeys(_words(question, lang, stop)))
        return [list(dict.fromkeys(_stem([word], each)[0] for each in langs)) for word in words]

    def coverage(self, words: Sequence[Sequence[str]], unknown_weight: float = 1.0) -> np.ndarray | None:
        """Each row's share of the question it explains: the sum over the question's ``words`` of the word's
        weight times how fully the row matches it, over the sum of the weights (``None``: no row holds any word).

        A word is given as its terms (``question_words``, or its translations): the row matches it as well as its
        best-matching term, from 0 to 1 (the term's score over its ``ceilings``), and it weighs its terms' highest
        ceiling, a rarity weight. A word no row holds stays part of the question, unexplained: it weighs
        ``unknown_weight`` times the mean weight of the others. So a row that matches one common word of a
        question whose other words it lacks, or this index does not know, scores little, whatever its rank.
        """
        known = [(ids, ceilings) for ids, ceilings in map(self._known_terms, words) if len(ids)]
        if not known:
            return None
        weights = np.array([ceilings.max() for _, ceilings in known])
        total = weights.sum() + unknown_weight * weights.mean() * (len(words) - len(known))
        out = np.zeros(len(self), dtype=np.float64)
        best = np.zeros(len(self), dtype=np.float64) if any(len(ids) > 1 for ids, _ in known) else None
        for weight, (ids, ceilings) in zip(weights, known, strict=True):
            if len(ids) == 1:
                rows, scores = self._postings(int(ids[0]))
                out[rows] += weight * scores / ceilings[0]
                continue
            touched = []
            for token, ceiling in zip(ids.tolist(), ceilings.tolist(), strict=True):
                rows, scores = self._postings(token)
                best[rows] = np.maximum(best[rows], scores / ceiling)
                touched.append(rows)
            rows = np.unique(np.concatenate(touched))  # a row holding two of the word's terms counts once
            out[rows] += weight * best[rows]
            best[rows] = 0.0
        return out / total

    def _known_terms(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids and ceilings of the ``terms`` that some row of the whole index holds."""
        ids = self.term_ids(list(dict.fromkeys(terms)))
        ceilings = self.ceilings(ids)
        return ids[ceilings > 0], ceilings[ceilings > 0]

    def _postings(self, token: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding term ``token`` and their scores for it."""
        data, indices, indptr = (self._model.scores[key] for key in ("data", "indices", "indptr"))
        start, end = int(indptr[token]), int(indptr[token + 1])
        return np.asarray(indices[start:end]), np.asarray(data[start:end], dtype=np.float64)

    def full_match(self, terms: Sequence[str]) -> float:
        """What a row matching every one of ``terms`` fully would score: the sum of their ``ceilings``."""
        return float(self.ceilings(self.term_ids(terms)).sum())

    def scores_of_rows(self, question: str, lang: str, rows: np.ndarray) -> np.ndarray:
        """BM25 scores of ``rows`` only, at a cost that grows with ``len(rows)``, not with the index."""
        ids = self._model.get_tokens_ids(self.query_terms(question, lang))
        if not self._sorted_postings:
            return self.scores(question, lang)[rows] if ids else np.zeros(len(rows), dtype=np.float32)
        data, indices, indptr = (self._model.scores[key] for key in ("data", "indices", "indptr"))
        out = np.zeros(len(rows), dtype=np.float64)
        for token in ids:
            postings = indices[indptr[token] : indptr[token + 1]]
            if not len(postings):
                continue
            at = np.searchsorted(postings, rows).clip(max=len(postings) - 1)
            found = postings[at] == rows
            out[found] += data[indptr[token] + at[found]]
        return out

    def term_ids(self, terms: Sequence[str]) -> np.ndarray:
        """Vocabulary ids of the ``terms`` this index knows (others can match nothing)."""
        return np.asarray(self._model.get_tokens_ids(list(terms)), dtype=np.int64)

    def ceilings(self, ids: np.ndarray) -> np.ndarray:
        """Each term's highest score in any row: what it adds to a row that matches it fully.

        Their sum is what a full match of the question would score, a yardstick
        that, unlike the best candidate's score, does not give 1.0 to a list
        whose top row matched one common word.
        """
        return self._ceilings[ids] if len(ids) else np.zeros(0)

    def term_weights(self, terms: Iterable[str]) -> dict[str, float]:
        """Each term's ceiling (see ``ceilings``), a rarity weight; 0 for a term no row holds."""
        vocab = self._model.vocab_dict
        return {term: float(self._ceilings[vocab[term]]) if term in vocab else 0.0 for term in terms}

    def presence(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Whether each of ``rows`` holds each term: a (rows, terms) boolean matrix."""
        indices, indptr = self._model.scores["indices"], self._model.scores["indptr"]
        out = np.zeros((len(rows), len(ids)), dtype=bool)
        for column, token in enumerate(ids.tolist()):
            postings = indices[indptr[token] : indptr[token + 1]]
            if not len(postings):
                continue
            if self._sorted_postings:
                at = np.searchsorted(postings, rows).clip(max=len(postings) - 1)
                out[:, column] = postings[at] == rows
            else:
                out[:, column] = np.isin(rows, postings)
        return out

    @cached_property
    def _ceilings(self) -> np.ndarray:
        data, indptr = self._model.scores["data"], np.asarray(self._model.scores["indptr"], dtype=np.int64)
        out = np.zeros(len(indptr) - 1, dtype=np.float64)
        filled = indptr[1:] > indptr[:-1]
        if filled.any():
            out[filled] = np.maximum.reduceat(np.asarray(data, dtype=np.float64), indptr[:-1][filled])
        return out

    @cached_property
    def _sorted_postings(self) -> bool:
        """Whether each term's rows are in increasing order (bm25s writes them so)."""
        indices, indptr = self._model.scores["indices"], np.asarray(self._model.scores["indptr"])
        increasing = indices[1:] > indices[:-1]
        column_ends = indptr[1:-1] - 1  # from the last row of one term to the first of the next may go down
        increasing[column_ends[(column_ends >= 0) & (column_ends < len(increasing))]] = True
        return bool(increasing.all())

    def subset(self, rows: np.ndarray) -> LexicalIndex:
        """The index of ``rows`` only (sorted), keeping this index's term statistics.

        bm25s stores each (term, row) score with the corpus-wide idf and average
        length already applied, so slicing rows out of its matrix gives a shard
        whose passages score exactly as they do in the whole index.
        """
        rows = np.asarray(rows, dtype=np.int64)
        data, indices, indptr = (np.asarray(self._model.scores[key]) for key in ("data", "indices", "indptr"))
        at = np.searchsorted(rows, indices).clip(max=max(len(rows) - 1, 0))
        keep = rows[at] == indices if len(rows) else np.zeros(len(indices), dtype=bool)
        kept_before = np.concatenate(([0], np.cumsum(keep)))
        model = copy.copy(self._model)
        model.scores = {
            "data": data[keep],
            "indices": at[keep].astype(indices.dtype),
            "indptr": kept_before[indptr].astype(indptr.dtype),
            "num_docs": len(rows),
        }
        return LexicalIndex(model, self.langs, self.analyzer, ceilings=self._ceilings)

    def save(self, folder: Path) -> None:
        self._model.save(str(folder), show_progress=False)
        meta = {"langs": list(self.langs), "analyzer": self.analyzer}
        (folder / "lexical.json").write_text(json.dumps(meta), encoding="utf-8")
        if self._whole_ceilings is not None:
            np.save(folder / CEILINGS_FILE, self._whole_ceilings, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        try:
            model = bm25s.BM25.load(str(folder), show_progress=False, allow_pickle=False)
            meta = json.loads((folder / "lexical.json").read_text(encoding="utf-8"))
            if meta["analyzer"] not in ANALYZERS:
                raise ValueError(f"unknown analyzer {meta['analyzer']!r}")
            ceilings = None
            if (folder / CEILINGS_FILE).is_file():
                ceilings = np.load(folder / CEILINGS_FILE, allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"BM25 files in {folder} are unreadable: rebuild with `qa build`") from exc
        return cls(model, meta["langs"], meta["analyzer"], ceilings)


def _sum_columns(scores: dict, token_ids: list[int], dtype: np.dtype) -> np.ndarray:
    """bm25s' ``get_scores_from_ids`` without ``np.add.at``: a document occurs once per
    token column, so a plain fancy-index add gives the same sums in the same order, faster."""
    data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
    out = np.zeros(scores["num_docs"], dtype=dtype)
    for token in token_ids:
        start, end = indptr[token], indptr[token + 1]
        out[indices[start:end]] += data[start:end]
    return out
