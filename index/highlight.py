"""Choosing the sentence of a passage that best answers the question."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from index.lexical import tokenize

LEXICAL_WEIGHT = 0.3


@lru_cache(maxsize=16384)
def sentence_terms(sentence: str, lang: str) -> frozenset[str]:
    """Terms of a sentence; cached, since the same passages come back for related questions."""
    return frozenset(tokenize(sentence, lang))


def pick_sentence(
    text: str,
    passage: tuple[int, int],
    sentences: Sequence[tuple[int, int]],
    similarities: np.ndarray,
    question_terms: set[str],
    lang: str,
) -> tuple[int, int]:
    """Offsets of the best sentence, clipped to the passage; the passage itself if it has none.

    The score is the sentence's cosine similarity to the question plus a bonus
    for the share of question terms the sentence contains.
    """
    start, end = passage
    clipped = [(max(s, start), min(e, end)) for s, e in sentences if min(e, end) > max(s, start)]
    if not clipped:
        return start, end
    keep = [i for i, (s, e) in enumerate(sentences) if min(e, end) > max(s, start)]
    terms = question_terms
    scores = []
    for (s, e), sim in zip(clipped, np.asarray(similarities)[keep], strict=True):
        overlap = len(terms & sentence_terms(text[s:e], lang)) / len(terms) if terms else 0.0
        scores.append(float(sim) + LEXICAL_WEIGHT * overlap)
    return clipped[int(np.argmax(scores))]
