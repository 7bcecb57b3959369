"""Building, incremental rebuilds, persistence checks and the atomic swap."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from index.build.builder import build_index
from index.config import DEFAULT_MODEL
from index.errors import IndexCorruptError, IndexMismatchError, IndexMissingError, InvalidQueryError
from index.models.encoders import load_encoder
from index.searcher import Searcher
from index.storage.lexical import LexicalIndex
from index.storage.store import builds_dir, read_index, resolve_live
from index.storage.vocabulary import corpus_words
from index.text.corpus import load_corpus
from index.text.spans import chunk_spans, split_sentences
from service.cluster import ClusterState
from service.state import ServiceState
from tests.conftest import make_corpus, make_settings


def live(settings):
    return read_index(resolve_live(settings.index_dir))


def texts_of(doc, settings):
    return len(chunk_spans(doc.text, settings.chunk_size, settings.chunk_overlap)) + len(split_sentences(doc.text))


def test_build_writes_a_complete_index_behind_a_symlink(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    report = build_index(settings, encoder, show_progress=False)
    assert settings.index_dir.is_symlink()
    data = live(settings)
    assert report.documents == len(data.documents) == 3
    assert report.chunks == len(data.chunks) == len(data.chunk_vectors)
    assert len(data.sentences) == len(data.sentence_vectors)
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    assert manifest["settings"]["model"] == DEFAULT_MODEL and manifest["settings"]["dim"] == encoder.dim
    assert set(manifest["documents"]) == {d.doc_id for d in data.documents}
    assert all(len(sha) == 64 for sha in manifest["files"].values())
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))
    for row in range(len(data.chunks)):
        doc = data.documents[data.chunks.doc[row]]
        assert doc.text[data.chunks.start[row] : data.chunks.end[row]].strip()


def test_incremental_rebuild_embeds_only_changed_documents(tmp_path, encoder):
    corpus = make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    before = live(settings)
    gone_ids = before.chunks.ids[before.chunks.doc == [d.doc_id for d in before.documents].index("weather.en.txt")]

    (corpus / "weather.en.txt").unlink()
    changed = corpus / "notes" / "cuisine.fr.md"
    changed.write_text("# Cuisine lyonnaise\n\nLe tablier de sapeur est un plat lyonnais.", encoding="utf-8")
    report = build_index(settings, encoder, show_progress=False)

    new_doc = next(d for d in load_corpus(corpus).documents if d.doc_id == "notes/cuisine.fr.md")
    assert report.reused_documents == 1
    new_words = set(corpus_words([new_doc], ["fr"])["fr"]) - set(before.vocabulary.words["fr"])
    assert new_words and report.embedded_texts == texts_of(new_doc, settings) + len(new_words)
    after = live(settings)
    # The vocabulary keeps only the corpus's words, with the earlier vectors of those it already had.
    assert "en" not in after.vocabulary.langs and "tablier" in after.vocabulary.words["fr"]
    kept = [w for w in after.vocabulary.words["fr"] if w in before.vocabulary.words["fr"]]
    assert np.array_equal(after.vocabulary.vectors_of("fr", kept), before.vocabulary.vectors_of("fr", kept))
    assert {d.doc_id for d in after.documents} == {"oman-iran-us-talks-2026-02-06.fr.txt", "notes/cuisine.fr.md"}
    assert len(after.chunk_vectors) == len(after.chunks)
    # The deleted document is gone from FAISS ...
    _, found = after.chunk_vectors.search(encoder.encode_queries(["sunny weather in Lyon"]), len(after.chunks))
    assert not np.isin(found, gone_ids).any()
    # ... and from BM25: its words score nothing, the changed text's words do.
    assert after.lexical.scores("sunny weather Alps", "en").max() == 0
    assert after.lexical.scores("tablier de sapeur", "fr").max() > 0
    searcher = Searcher(after, encoder)
    assert searcher.search("tablier de sapeur", 1).passages[0].doc_id == "notes/cuisine.fr.md"


def test_unchanged_rebuild_embeds_nothing_and_keeps_one_previous_build(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    first = live(settings)
    for _ in range(2):
        report = build_index(settings, encoder, show_progress=False)
    assert report.embedded_texts == 0 and report.reused_documents == 3
    again = live(settings)
    assert again.doc_langs == first.doc_langs and len(again.lexical) == len(first.lexical)
    assert np.array_equal(again.chunks.ids, first.chunks.ids)
    assert len([p for p in builds_dir(settings.index_dir).iterdir()]) <= 2


def test_index_built_with_another_model_is_refused(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    build_index(make_settings(tmp_path), encoder, show_progress=False)
    minilm = make_settings(tmp_path, model="minilm")
    state = ServiceState(minilm, load_encoder("minilm"))
    with pytest.raises(IndexMismatchError, match=rf"model '{DEFAULT_MODEL}'.*rebuild"):
        state.load()


def test_index_built_with_other_chunking_is_refused(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    build_index(make_settings(tmp_path), encoder, show_progress=False)
    with pytest.raises(IndexMismatchError, match="chunk_size"):
        ServiceState(make_settings(tmp_path, chunk_size=400), encoder).load()


def test_sentences_are_embedded_after_a_declared_title_and_indexed_without(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    data = live(settings)
    texts, langs = [], []
    for doc_row, start, end in zip(data.sentences.doc, data.sentences.start, data.sentences.end, strict=True):
        texts.append(data.documents[doc_row].text[start:end])
        langs.append(data.doc_langs[doc_row])
    assert settings.title_in_sentences
    # The Markdown file's heading is a title; the seed article's title is only its file name made readable.
    for doc_id, titled in (("notes/cuisine.fr.md", True), ("oman-iran-us-talks-2026-02-06.fr.txt", False)):
        doc_row = [d.doc_id for d in data.documents].index(doc_id)
        row = int(np.flatnonzero(data.sentences.doc == doc_row)[-1])
        title = data.documents[doc_row].title
        stored = data.sentence_vectors.get(data.sentences.ids[row : row + 1])[0]
        with_title, bare = encoder.encode_passages([f"{title}\n\n{texts[row]}", texts[row]])
        embedded, other = (with_title, bare) if titled else (bare, with_title)
        assert float(stored @ embedded) > 0.9999 > float(stored @ other)
    # BM25 keeps each sentence's own words.
    own = LexicalIndex.build(texts, langs, k1=settings.bm25_k1)
    for question in ("Cuisine lyonnaise", "Mascate", "sunny weather"):
        assert np.allclose(data.sentence_lexical.scores(question, "fr"), own.scores(question, "fr"))


def test_index_built_without_titled_sentences_is_refused_then_rebuilt_whole(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    build_index(make_settings(tmp_path, title_in_sentences=False), encoder, show_progress=False)
    with pytest.raises(IndexMismatchError, match="title_in_sentences False"):
        ServiceState(make_settings(tmp_path), encoder).load()
    report = build_index(make_settings(tmp_path), encoder, show_progress=False)
    assert report.reused_documents == 0 and live(make_settings(tmp_path)).manifest.settings.title_in_sentences


def test_the_cluster_state_refuses_it_too_before_deploying_anything(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    build_index(make_settings(tmp_path), encoder, show_progress=False)
    state = ClusterState(make_settings(tmp_path, chunk_size=400), "local", 1, 0.5, encoder)
    with pytest.raises(IndexMismatchError, match="chunk_size"):
        state.deploy(resolve_live(state.settings.index_dir))  # checked before Ray is imported or joined


def test_damaged_index_files_are_named(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    target = settings.index_dir / "chunk_vectors" / "vectors.faiss"
    with open(target, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff\xff\xff\xff")
    with pytest.raises(IndexCorruptError, match=r"chunk_vectors/vectors\.faiss"):
        live(settings)
    os.remove(settings.index_dir / "manifest.json")
    with pytest.raises(IndexCorruptError, match=r"manifest\.json"):
        live(settings)


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexMissingError, match="qa build"):
        resolve_live(tmp_path / "none")


def test_a_batch_of_questions_finds_what_each_finds_alone(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    searcher = Searcher(live(settings), encoder)
    asks = [("Who mediated the talks?", 3), ("Quel temps fait-il à Lyon ?", 1), ("  Qui accompagne Witkoff ? ", 2)]
    together = searcher.search_batch(asks)
    for (question, k), result in zip(asks, together, strict=True):
        alone = searcher.search(question, k)
        assert result.question == question.strip() and len(result.passages) == k
        spans = [(p.doc_id, p.start, p.end) for p in result.passages]
        assert spans == [(p.doc_id, p.start, p.end) for p in alone.passages]
        assert [p.score for p in result.passages] == pytest.approx([p.score for p in alone.passages], abs=1e-5)
        assert result.took_ms > 0
    assert searcher.search_batch([]) == []
    with pytest.raises(InvalidQueryError):
        searcher.search_batch([("fine", 1), (" ", 1)])
