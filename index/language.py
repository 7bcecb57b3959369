"""Which language a text is in, from the stopwords it uses.

Questions are short, so this counts function words rather than letters:
each stopword votes for the languages whose lists hold it, weighted by how
distinctive it is. Texts with no stopword are ``"unknown"``.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache, lru_cache

from bm25s import stopwords as bm25_stopwords

UNKNOWN = "unknown"

_STOPWORD_LISTS = {
    "en": bm25_stopwords.STOPWORDS_EN_PLUS,
    "fr": bm25_stopwords.STOPWORDS_FRENCH,
    "es": bm25_stopwords.STOPWORDS_SPANISH,
    "de": bm25_stopwords.STOPWORDS_GERMAN,
    "it": bm25_stopwords.STOPWORDS_ITALIAN,
    "pt": bm25_stopwords.STOPWORDS_PORTUGUESE,
    "nl": bm25_stopwords.STOPWORDS_DUTCH,
}
SUPPORTED = tuple(_STOPWORD_LISTS)
_WORD = re.compile(r"\w+", re.UNICODE)
_SAMPLE_CHARS = 20_000


@cache
def stopwords(lang: str) -> frozenset[str]:
    """Stopwords of a supported language; for ``unknown``, those of every language."""
    if lang in _STOPWORD_LISTS:
        return frozenset(_STOPWORD_LISTS[lang])
    return _all_stopwords()


@lru_cache(maxsize=1)
def _all_stopwords() -> frozenset[str]:
    return frozenset(word for words in _STOPWORD_LISTS.values() for word in words)


@lru_cache(maxsize=1)
def _votes() -> dict[str, dict[str, float]]:
    holders: dict[str, list[str]] = {}
    for lang, words in _STOPWORD_LISTS.items():
        for word in set(words):
            holders.setdefault(word, []).append(lang)
    return {word: {lang: 1.0 / len(langs) for lang in langs} for word, langs in holders.items()}


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language among SUPPORTED, or ``"unknown"``."""
    words = _WORD.findall(text[:_SAMPLE_CHARS].lower())
    votes = _votes()
    tally: Counter[str] = Counter()
    for word in words:
        for lang, weight in votes.get(word, {}).items():
            tally[lang] += weight
    if "¿" in text or "¡" in text or "ñ" in text:
        tally["es"] += 1.0
    if not tally:
        return UNKNOWN
    (best, score), *rest = [*tally.most_common(2), ("", 0.0)]
    if rest and rest[0][1] == score:
        return UNKNOWN
    return best
