"""Highlighting: the passages of a shard, each with the sentence that best answers the question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from index.config import SearchParams
from index.search.query import Highlight, Passage, Query
from index.storage.lexical import tokenize, tokenize_query
from index.storage.store import IndexData
from index.text.tables import SpanLinks


@lru_cache(maxsize=16384)
def sentence_terms(sentence: str, lang: str) -> frozenset[str]:
    """Terms of a sentence; cached, since the same passages come back for related questions."""
    return frozenset(tokenize(sentence, lang))


def pick_sentence(
    text: str,
    passage: tuple[int, int],
    sentences: Sequence[tuple[int, int]],
    similarities: np.ndarray,
    hubness: np.ndarray,
    term_weights: Mapping[str, float],
    lang: str,
    terms_weight: float,
    hub_weight: float,
) -> tuple[int, int]:
    """Offsets of the best sentence, clipped to the passage; the passage itself if it has none.

    The score is the sentence's cosine similarity to the question, less ``hub_weight`` times its
    question hubness (short generic sentences are near every question), plus ``terms_weight`` times
    the share of the question's terms it contains, each term weighted by its rarity
    (``term_weights``), so that a sentence holding the question's specific words beats one holding
    only its common ones.
    """
    start, end = passage
    keep = [i for i, (s, e) in enumerate(sentences) if min(e, end) > max(s, start)]
    if not keep:
        return start, end
    clipped = [(max(sentences[i][0], start), min(sentences[i][1], end)) for i in keep]
    total = sum(term_weights.values())
    scores = np.asarray(similarities, dtype=np.float64)[keep] - hub_weight * np.asarray(hubness, dtype=np.float64)[keep]
    for i, (s, e) in enumerate(clipped):
        present = term_weights.keys() & sentence_terms(text[s:e], lang)
        scores[i] += terms_weight * sum(term_weights[t] for t in present) / total if total > 0 else 0.0
    return clipped[int(np.argmax(scores))]


class Highlighter:
    """The passages of one index or shard, each with its highlight, as a search returns them."""

    def __init__(self, data: IndexData, links: SpanLinks, params: SearchParams) -> None:
        self.data, self.links, self.params = data, links, params

    def passages(self, rows: Sequence[int], query: Query, scores: Sequence[float]) -> list[Passage]:
        """The passages at ``rows`` (this index's or shard's own rows) with their ``scores`` and highlight."""
        terms: dict[str, dict[str, float]] = {}  # question terms and their weights per document language
        return [self.passage(int(row), score, query, terms) for row, score in zip(rows, scores, strict=True)]

    def passage(self, row: int, score: float, query: Query, terms: dict[str, dict[str, float]]) -> Passage:
        """One passage, its highlight chosen among the sentences it overlaps (``pick_sentence``) by their
        similarity to the question, their hubness and the question's terms (translations included) they hold."""
        data = self.data
        chunks, sentences = data.chunks, data.sentences
        doc_row = int(chunks.doc[row])
        doc, doc_lang = data.documents[doc_row], data.doc_langs[doc_row]
        start, end = int(chunks.start[row]), int(chunks.end[row])
        sentence_rows = np.arange(self.links.chunk_first_sentence[row], self.links.chunk_last_sentence[row] + 1)
        vectors = data.sentence_vectors.get(sentences.ids[sentence_rows])
        spans = [(int(sentences.start[r]), int(sentences.end[r])) for r in sentence_rows]
        if doc_lang not in terms:
            translated = query.translations.get(doc_lang, [])
            words = {*tokenize_query(query.text, query.lang, [doc_lang]), *translated}
            terms[doc_lang] = data.sentence_lexical.term_weights(words)
        p = self.params
        h_start, h_end = pick_sentence(doc.text, (start, end), spans, vectors @ query.vector,
                                       data.sentence_hubness[sentence_rows], terms[doc_lang], doc_lang,
                                       p.highlight_terms, p.highlight_hubness)  # fmt: skip
        return Passage(doc.doc_id, doc.title, start, end, doc.text[start:end], float(score),
                       Highlight(h_start, h_end, doc.text[h_start:h_end]))  # fmt: skip
