"""Choosing the sentence of a passage that best answers the question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from index.storage.lexical import tokenize

HUB_WEIGHT = 1.0  # times the sentence's question hubness taken off its similarity (see index.storage.hubness)


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
) -> tuple[int, int]:
    """Offsets of the best sentence, clipped to the passage; the passage itself if it has none.

    The score is the sentence's cosine similarity to the question, less its
    question hubness (short generic sentences are near every question), plus
    ``terms_weight`` times the share of the question's terms it contains, each
    term weighted by its rarity (``term_weights``), so that a sentence holding
    the question's specific words beats one holding only its common ones.
    """
    start, end = passage
    keep = [i for i, (s, e) in enumerate(sentences) if min(e, end) > max(s, start)]
    if not keep:
        return start, end
    clipped = [(max(sentences[i][0], start), min(sentences[i][1], end)) for i in keep]
    total = sum(term_weights.values())
    scores = np.asarray(similarities, dtype=np.float64)[keep] - HUB_WEIGHT * np.asarray(hubness, dtype=np.float64)[keep]
    for i, (s, e) in enumerate(clipped):
        present = term_weights.keys() & sentence_terms(text[s:e], lang)
        scores[i] += terms_weight * sum(term_weights[t] for t in present) / total if total > 0 else 0.0
    return clipped[int(np.argmax(scores))]
