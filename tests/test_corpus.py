"""Reading the corpus folder: supported formats, stable ids, skipped files."""

from __future__ import annotations

import json

import pytest

from index.errors import CorpusNotFoundError, EmptyCorpusError
from index.text.corpus import load_corpus, title_from_file_name
from tests.conftest import SEED, make_corpus


def test_reads_txt_md_and_jsonl_with_stable_ids(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    lines = [
        {"id": "a1", "title": "Premier", "text": "Texte un.", "url": "https://example.org/a1", "lang": "fr"},
        {"id": 7, "text": "Second text."},
    ]
    (corpus / "bulk.jsonl").write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    docs = {d.doc_id: d for d in load_corpus(corpus).documents}
    assert set(docs) == {SEED.name, "weather.en.txt", "notes/cuisine.fr.md", "a1", "7"}
    assert docs[SEED.name].text == SEED.read_text(encoding="utf-8")
    assert docs[SEED.name].metadata["lang"] == "fr"
    assert docs["notes/cuisine.fr.md"].title == "Cuisine lyonnaise"
    assert docs["a1"].metadata["url"] == "https://example.org/a1"
    assert docs["7"].title == "7"
    # Which titles say something of the text, and which are only the file name made readable.
    declared = {doc_id for doc_id, doc in docs.items() if not title_from_file_name(doc)}
    assert declared == {"notes/cuisine.fr.md", "a1"}


def test_unusable_files_are_skipped_with_a_warning_naming_them(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    (corpus / "latin1.txt").write_bytes("café".encode("latin-1"))
    (corpus / "empty.txt").write_text("   \n", encoding="utf-8")
    (corpus / "image.txt").write_bytes(b"\x89PNG\x00\x00binary")
    (corpus / "data.csv").write_text("a,b", encoding="utf-8")
    (corpus / "bad.jsonl").write_text('{"id": "ok", "text": "Fine."}\n{broken\n{"id": "x"}\n', encoding="utf-8")
    loaded = load_corpus(corpus)
    ids = {d.doc_id for d in loaded.documents}
    assert "ok" in ids and SEED.name in ids
    joined = "\n".join(loaded.warnings)
    for name in ("latin1.txt", "empty.txt", "image.txt", "data.csv", "bad.jsonl:2", "bad.jsonl:3"):
        assert name in joined


def test_empty_or_missing_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("", encoding="utf-8")
    with pytest.raises(EmptyCorpusError, match="no usable document"):
        load_corpus(tmp_path / "empty")
    with pytest.raises(CorpusNotFoundError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")


def test_crlf_text_is_kept_byte_for_byte(tmp_path):
    (tmp_path / "c").mkdir()
    text = "Ligne un.\r\n\r\nLigne deux avec émoji 😀.\r\n"
    (tmp_path / "c" / "crlf.txt").write_bytes(text.encode("utf-8"))
    [doc] = load_corpus(tmp_path / "c").documents
    assert doc.text == text
