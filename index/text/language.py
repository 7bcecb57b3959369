"""Which language a text is in.

Documents: from the stopwords they use; each stopword votes for the
languages whose lists hold it, weighted by how distinctive it is. Texts with
no stopword are ``"unknown"``.

Questions: py3langid's character n-gram classifier, its best supported
language unless another fits far better. A question has few stopwords, often
shared ("la", "quelle" are Italian too), and the vote left 11 % of PIAF's
French questions unknown or Italian, where the classifier misses 0.7 %
(eval/README.md, row 35).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache, lru_cache

from bm25s import stopwords as bm25_stopwords
from py3langid.langid import MODEL_FILE, LanguageIdentifier

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
# Interrogatives missing from those lists (bm25s' French, Spanish and German lists lack most of them, and
# Spanish ones carry no accents). In a question they say what kind of answer is wanted, not what it is about:
# "quel" is in half of PIAF's questions and in almost none of their answer paragraphs.
QUESTION_WORDS = {
    "en": "whose whom",
    "fr": "quoi quel quelle quels quelles quand où comment combien pourquoi lequel laquelle lesquels lesquelles",
    "es": "quién quiénes qué cuál cuáles cuándo dónde adónde cómo cuánto cuánta cuántos cuántas cuanto cuanta "
    "cuantos cuantas",
    "de": "wer wen wem wessen wann wohin woher warum wieso weshalb wozu wieviel wieviele worüber womit wofür "
    "woran worauf wodurch",
    "it": "chi quale quali quando dove come quanto quanta quanti quante perché",
    "pt": "quem qual quais quando onde como quanto quanta quantos quantas porquê",
    "nl": "wie wat welk welke wanneer waar hoe waarom hoeveel",
}
_WORD = re.compile(r"\w+", re.UNICODE)
_SAMPLE_CHARS = 20_000


@cache
def stopwords(lang: str) -> frozenset[str]:
    """Stopwords of a supported language; for ``unknown``, those of every language."""
    if lang in _STOPWORD_LISTS:
        return frozenset(_STOPWORD_LISTS[lang])
    return _all_stopwords()


@cache
def question_stopwords(lang: str) -> frozenset[str]:
    """``stopwords(lang)`` plus that language's question words (all languages' for ``unknown``): applied to
    questions only, so indexes are unchanged."""
    if lang in QUESTION_WORDS:
        return stopwords(lang) | frozenset(QUESTION_WORDS[lang].split())
    return _all_stopwords() | frozenset(word for words in QUESTION_WORDS.values() for word in words.split())


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


# How far (in the classifier's log-probability) the best supported language may trail the best language of all
# for a question to count as written in it. French questions that read as Latin, Occitan or Catalan trail by at
# most 22 on the dev sets; questions in Polish, Finnish, Hungarian or Russian by 45 and more (a Swedish one by
# 23: it is taken as German).
UNSUPPORTED_MARGIN = 25.0


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE)  # shipped in the wheel, numpy arrays, no pickle


def detect_question_language(question: str) -> str:
    """ISO 639-1 code of a short question's language among SUPPORTED, or ``"unknown"``.

    Unknown when it has no letters, or when another language fits it far better than any supported one
    (so that a question in Polish gets every document's cross-language terms, not German stems).
    """
    if not any(ch.isalpha() for ch in question):
        return UNKNOWN
    ranked = _identifier().rank(question)
    best_score = ranked[0][1]
    for lang, score in ranked:
        if lang in _STOPWORD_LISTS:
            return str(lang) if best_score - score <= UNSUPPORTED_MARGIN else UNKNOWN
    return UNKNOWN
