"""Chunk and sentence offsets slice exactly the text they describe."""

from __future__ import annotations

import json
from bisect import bisect_right
from itertools import pairwise
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from index.text.spans import Span, chunk_spans, partition, split_sentences

PIECES = st.sampled_from(
    [
        "Le ministre omanais, M. Badr al-Busaidi, a mené la médiation. ",
        "Who mediated the talks? ",
        "Réunion à Mascate 🇴🇲 — « pourparlers » indirects ! ",
        "\r\n",
        "\n\n",
        "Même paragraphe répété.\r\n\r\n",
        "   ",
        "x" * 300,
        "Émoji 😀😀 et accents àéîõü.",
        "Dr. Smith arrived. He spoke.",
    ]
)
SEED_ARTICLE = Path(__file__).parent.parent / "corpus" / "oman-iran-us-talks-2026-02-06.fr.txt"
SENTENCE_GOLD = json.loads((Path(__file__).parent.parent / "eval" / "sentence-ends.json").read_text("utf-8"))["tuned"]


def open_seed_article() -> str:
    return SEED_ARTICLE.read_text(encoding="utf-8")


TEXTS = st.lists(PIECES, min_size=0, max_size=40).map("".join) | st.text(max_size=3000)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, size=st.integers(50, 900), overlap_share=st.floats(0, 0.5))
def test_chunk_offsets_slice_the_chunk_text_exactly(text, size, overlap_share):
    overlap = int(size * overlap_share)
    chunks = chunk_spans(text, size, overlap)
    for chunk in chunks:
        piece = text[chunk.start : chunk.end]
        assert piece and piece == piece.strip()
    assert chunks == sorted(chunks)
    # Every non-space character is in some chunk: nothing is lost between passages.
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, size=st.integers(20, 900))
def test_partition_covers_text_in_order(text, size):
    spans = partition(text, size)
    assert "".join(text[s.start : s.end] for s in spans) == text


@settings(max_examples=200, deadline=None)
@given(text=TEXTS)
def test_sentences_are_trimmed_ordered_and_disjoint(text):
    spans = split_sentences(text)
    for before, after in pairwise(spans):
        assert before.end <= after.start
    for span in spans:
        assert text[span.start : span.end] == text[span.start : span.end].strip() != ""


def test_repeated_paragraphs_get_their_own_offsets():
    paragraph = "Le même paragraphe revient. " * 10
    text = "\n\n".join([paragraph] * 6)
    chunks = chunk_spans(text, 300, 60)
    texts = {text[c.start : c.end].strip() for c in chunks}
    assert len({c.start for c in chunks}) == len(chunks) >= 6
    assert len(texts) < len(chunks)  # the same passage text, at distinct offsets


def test_chunks_respect_size_and_overlap_on_prose():
    text = " ".join(f"Phrase numéro {i} sur la médiation omanaise." for i in range(200))
    chunks = chunk_spans(text, 400, 80)
    assert all(len(c) <= 400 + 80 for c in chunks)
    assert any(after.start < before.end for before, after in pairwise(chunks))


def test_french_abbreviations_do_not_end_sentences():
    text = "Il a rencontré M. Badr al-Busaidi à Mascate. Puis il est parti."
    sentences = [text[s.start : s.end] for s in split_sentences(text)]
    assert sentences == ["Il a rencontré M. Badr al-Busaidi à Mascate.", "Puis il est parti."]


def test_passages_do_not_end_at_an_honorific():
    text = open_seed_article()
    chunks = chunk_spans(text, 900, 150)
    assert not any(text[c.start : c.end].endswith(" M.") for c in chunks)
    passage = next(
        text[c.start : c.end] for c in chunks if "Les échanges se déroulent entre M." in text[c.start : c.end]
    )
    assert "M. Abbas Araghchi, chef de la diplomatie iranienne" in passage


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, size=st.integers(50, 900), overlap_share=st.floats(0, 0.5))
def test_passages_end_at_sentence_ends_and_open_at_sentence_starts_or_in_the_overlap(text, size, overlap_share):
    overlap = int(size * overlap_share)
    sentences = split_sentences(text)
    starts, ends = [s.start for s in sentences], {s.end for s in sentences}
    too_long = [s for s in sentences if len(s) > size]

    def inside_too_long(pos: int) -> bool:
        return any(s.start < pos < s.end for s in too_long)

    for chunk in chunk_spans(text, size, overlap):
        assert chunk.end in ends or inside_too_long(chunk.end)
        if chunk.start in starts or inside_too_long(chunk.start):
            continue
        # An overlap whose sentence start did not fit opens at a word start,
        # at most `overlap` characters before the passage's own first sentence.
        next_start = starts[bisect_right(starts, chunk.start)]
        assert next_start - chunk.start <= overlap


def test_sentences_that_fit_are_never_cut():
    sentence = "Le ministre omanais, M. Badr al-Busaidi, a supervisé les discussions de Mascate. "
    text = sentence * 30
    for size, overlap in [(100, 0), (300, 60), (900, 150)]:
        for chunk in chunk_spans(text, size, overlap):
            piece = text[chunk.start : chunk.end]
            assert piece.startswith("Le ministre") and piece.endswith("Mascate.")
            assert len(piece) <= size + overlap


def test_an_overlong_sentence_is_cut_at_clauses_then_words():
    text = "Intro courte. " + ", ".join(f"clause numéro {i}" for i in range(60)) + ". Fin."
    chunks = chunk_spans(text, 200, 40)
    assert all(len(c) <= 240 for c in chunks)
    assert all(text[c.end - 1] in ",." for c in chunks)  # cut after a comma, not mid-clause


def test_sentence_ends_in_four_languages():
    for lang, sentences in SENTENCE_GOLD.items():
        text = " ".join(sentences)
        assert [text[s.start : s.end] for s in split_sentences(text)] == sentences, lang


def test_span_helpers():
    assert len(Span(3, 10)) == 7
    assert Span(0, 10).contains(Span(2, 5)) and not Span(2, 5).contains(Span(0, 10))


def test_rows_of_ids_with_dense_and_with_sparse_ids():
    from index.text.tables import SpanTable

    dense = SpanTable.from_columns([2, 0, 1, 3], [0, 0, 1, 1], [0, 5, 0, 5], [5, 9, 5, 9])
    assert dense.rows_of_ids(np.array([0, 3, 2])).tolist() == [1, 3, 0]
    sparse = SpanTable.from_columns([10**9, 7, 10**6], [0, 0, 1], [0, 5, 0], [5, 9, 5])
    assert sparse.rows_of_ids(np.array([7, 10**9, 10**6])).tolist() == [1, 0, 2]
