"""Character spans of a text: sentences and passages, with exact offsets.

Every function here is pure and returns ``Span`` objects such that
``text[span.start:span.end]`` is the piece they describe. Offsets are carried
through the splitting itself; nothing searches for a piece's text afterwards.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache

from langchain_text_splitters import RecursiveCharacterTextSplitter

# Recorded in index manifests: a change to how passages are cut means a rebuild.
SPLITTER = "prose-v2"


@dataclass(frozen=True, order=True)
class Span:
    """A half-open range ``[start, end)`` of character offsets."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def contains(self, other: Span) -> bool:
        return self.start <= other.start and other.end <= self.end


# Paragraph, line, sentence, clause, word, then character: prose-friendly for
# French and English alike. Each separator stays attached to the piece before it.
PROSE_SEPARATORS = [
    r"\n[ \t]*\n\s*",
    r"\n",
    r"(?<=[.!?…])[\"»”’)\]]*\s+",
    r"(?<=[;:])\s+",
    r"(?<=,)\s+",
    r"\s+",
    "",
]

_ABBREVIATIONS = {
    "m", "mm", "mme", "mmes", "mlle", "mr", "mrs", "ms", "dr", "pr", "prof", "st", "ste",
    "sr", "jr", "vs", "cf", "no", "nº", "art", "av", "apr", "env", "fig", "vol", "p", "pp",
    "etc", "ex", "gén", "mgr", "me", "mt", "inc", "ltd", "co", "jan", "feb", "fév", "sept",
    "oct", "nov", "déc", "dec", "sq", "cie", "éd", "ed", "op", "dir",
}  # fmt: skip
_SENTENCE_BREAK = re.compile(r"[.!?…]+[\"»”’)\]]*(?=\s)|\n")
_WORD_BEFORE = re.compile(r"([\w'’-]+)[.]+$")


def strip_span(text: str, span: Span) -> Span | None:
    """Shrink a span past surrounding whitespace; None if nothing is left."""
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if start < end else None


def split_sentences(text: str) -> list[Span]:
    """Sentence spans of ``text``, whitespace trimmed, in order, never overlapping."""
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        end = match.end()
        if match.group() != "\n" and not _is_sentence_end(text, match.start(), end):
            continue
        piece = strip_span(text, Span(start, end))
        if piece:
            spans.append(piece)
        start = end
    tail = strip_span(text, Span(start, len(text)))
    if tail:
        spans.append(tail)
    return spans


def _is_sentence_end(text: str, punct_start: int, end: int) -> bool:
    """A period after an abbreviation or an initial, or before a lowercase word, is no break."""
    if text[punct_start] == ".":
        before = _WORD_BEFORE.search(text[max(0, punct_start - 20) : punct_start + 1])
        if before:
            word = before.group(1)
            if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                return False
    following = text[end : end + 3].lstrip()
    return not (following[:1].islower())


@lru_cache(maxsize=16)
def _splitter(size: int) -> RecursiveCharacterTextSplitter:
    # Overlap is added afterwards on exact spans, so the splitter returns a
    # partition of the text: pieces that concatenate back to the original.
    return RecursiveCharacterTextSplitter(
        separators=PROSE_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=size,
        chunk_overlap=0,
        strip_whitespace=False,
        length_function=len,
    )


def partition(text: str, size: int) -> list[Span]:
    """Consecutive spans covering ``text`` exactly, each at most ``size`` characters when possible."""
    spans: list[Span] = []
    cursor = 0
    for piece in _splitter(size).split_text(text):
        end = cursor + len(piece)
        if text[cursor:end] != piece:  # the splitter broke its partition contract
            raise RuntimeError("text splitter dropped characters; offsets cannot be trusted")
        spans.append(Span(cursor, end))
        cursor = end
    if cursor != len(text):
        raise RuntimeError("text splitter did not cover the whole text")
    return spans


def chunk_spans(text: str, size: int, overlap: int) -> list[Span]:
    """Passages of about ``size`` characters; each starts up to ``overlap`` characters early.

    The early start snaps to the sentence start nearest to ``overlap``
    characters back, provided the passage stays within ``size + overlap``
    characters; else to a word start, so a passage never opens mid-word.
    """
    if size <= 0 or overlap < 0 or overlap >= size:
        raise ValueError("chunk size must be positive and overlap smaller than size")
    sentence_starts = [s.start for s in split_sentences(text)]
    chunks: list[Span] = []
    for piece in partition(text, size):
        earliest = piece.end - size - overlap
        start = _overlap_start(text, piece.start, overlap, sentence_starts, earliest) if chunks else piece.start
        span = strip_span(text, Span(start, piece.end))
        if span is None:
            continue
        if chunks and span.end <= chunks[-1].end:
            continue  # whitespace-only piece already covered by the previous passage
        chunks.append(span)
    return chunks


def _overlap_start(text: str, start: int, overlap: int, sentence_starts: list[int], earliest: int) -> int:
    """Where a passage whose own piece begins at ``start`` opens, about ``overlap`` characters early.

    The sentence start nearest to ``start - overlap`` wins, as long as the
    passage stays within its length cap (``earliest``); failing that, the
    first word start inside the overlap window.
    """
    target = start - overlap
    lo = bisect_left(sentence_starts, max(0, earliest))
    hi = bisect_left(sentence_starts, start)
    candidates = sentence_starts[lo:hi]
    if candidates:
        return min(candidates, key=lambda pos: (abs(pos - target), -pos))
    for pos in range(max(0, target), start):
        if (pos == 0 or text[pos - 1].isspace()) and not text[pos].isspace():
            return pos
    return start
