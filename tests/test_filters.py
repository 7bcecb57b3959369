"""Filters inside retrieval: every ranked list checked against a brute-force computation over the same index.

The reference scores every allowed row exhaustively (its stored vector, its
BM25 score) and keeps the best; retrieval with a filter must return exactly
that, on a flat store and on an IVF store, through FAISS's ID selector and
through exact scoring of small subsets alike.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import index.storage.vectorstore as vectorstore
from index.build.builder import build_from_documents
from index.errors import InvalidFilterError
from index.evaluation.datasets import squad_documents
from index.search.filters import DocumentColumns, parse_filters
from index.search.retrievers.base import best_per_passage
from index.search.retrievers.nearest import discounts, oversample
from index.searcher import Searcher
from index.storage.store import read_index, resolve_live
from service.bench.scale import scaled_index
from tests.conftest import SHARED_EVAL, make_settings

QUESTIONS = [
    "Quel ruisseau ne court pas par les Ulis ?",  # French, over French and English documents
    "Which river flows through the city?",
    "When was the university founded?",
]
FILTERS = [
    {"lang": ["fr"]},
    {"lang": ["en"], "published": {"gte": "2026-01-03"}},
    {"source": "b.example"},
    {"published": {"gte": "2026-01-02", "lte": "2026-01-05"}},
    {"doc_id": ["piaf-dev/0001", "xquad-en/0002"]},
    {"topic": ["x", "y"], "lang": ["fr", "en"]},
]


def _documents():
    fr, _ = squad_documents(SHARED_EVAL / "piaf-dev.json")
    en, _ = squad_documents(SHARED_EVAL / "xquad-en.json")
    docs = []
    for i, doc in enumerate([*fr[:6], *en[:6]]):
        metadata = {"published": f"2026-01-{i % 6 + 1:02d}", "source": "ab"[i % 2] + ".example"}
        if i % 3:
            metadata["topic"] = "xyz"[i % 3]
        docs.append(replace(doc, metadata=metadata))
    return docs


@pytest.fixture(scope="module", params=["flat", "ivf"])
def searcher(request, tmp_path_factory, encoder) -> Searcher:
    tmp = tmp_path_factory.mktemp(request.param)
    threshold = 10 if request.param == "ivf" else 50_000
    settings = make_settings(tmp, ann_threshold=threshold)
    build_from_documents(_documents(), settings, encoder, show_progress=False)
    data = read_index(resolve_live(settings.index_dir))
    assert data.chunk_vectors.kind == ("ivf-sq8" if request.param == "ivf" else "flat")
    if request.param == "ivf":
        for store in (data.chunk_vectors, data.sentence_vectors):
            store.faiss_index.nprobe = store.faiss_index.nlist  # every list probed: the reference below is then exact
    return Searcher(data, encoder, settings.search)


def _brute_nearest(searcher: Searcher, store, table, hub, query, k, mask) -> dict[int, float]:
    """``nearest.PassageVectors`` (or ``SentenceVectors``) then ``penalised`` by exhaustion: every allowed row's
    stored vector scored."""
    rows = np.flatnonzero(mask)
    scores = store.get(table.ids[rows]) @ query.vector
    has_hubness = bool(searcher.manifest.settings.reference)
    order = np.argsort(-scores, kind="stable")[: k * oversample(searcher.params, has_hubness)]
    rows, scores = rows[order], scores[order]
    hubness = hub[rows] if has_hubness else 0.0
    same_language = np.array(searcher.data.doc_langs)[table.doc[rows]] == query.lang
    scores = scores - discounts(searcher.params, hubness, same_language)
    keep = np.argsort(-scores, kind="stable")[:k]
    return dict(zip(rows[keep].tolist(), scores[keep].tolist(), strict=True))


def _brute_bm25(scores: np.ndarray, mask, k: int) -> dict[int, float]:
    rows = np.flatnonzero((scores > 0) & mask)
    rows = rows[np.lexsort((rows, -scores[rows]))][:k]
    return dict(zip(rows.tolist(), scores[rows].tolist(), strict=True))


def _assert_same(found, expected: dict[int, float]) -> None:
    found = {row: score for row, score in found.items() if score > 0 or row in expected}
    assert set(found) == set(expected)
    for row, score in expected.items():
        assert found[row] == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("exact_rows", [0, 100_000], ids=["faiss-selector", "exact-subset"])
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "-".join(f))
def test_every_list_equals_brute_force_over_the_allowed_rows(searcher, filters, exact_rows, monkeypatch):
    monkeypatch.setattr(vectorstore, "EXACT_SUBSET_ROWS", exact_rows)
    data, p = searcher.data, searcher.params
    docs = DocumentColumns(data.documents, data.doc_langs).allowed(parse_filters(filters))
    assert 0 < docs.sum() < len(docs)
    chunk_mask, sentence_mask = docs[data.chunks.doc], docs[data.sentences.doc]
    links = searcher.shards[0].links
    for query in searcher.encode(QUESTIONS):
        lists = searcher.retrieve(replace(query, filters=parse_filters(filters)))
        dense, sentences, lexical = lists["dense"], lists["sentence_dense"], lists["bm25"]
        cognates, translated = lists["cognates"], lists["translated"]
        for ranked in lists.values():
            assert chunk_mask[list(ranked)].all()
        _assert_same(
            dense,
            _brute_nearest(searcher, data.chunk_vectors, data.chunks, data.chunk_hubness, query, p.pool,
                           chunk_mask),
        )  # fmt: skip
        nearest = _brute_nearest(
            searcher, data.sentence_vectors, data.sentences, data.sentence_hubness, query, p.sentence_pool,
            sentence_mask,
        )  # fmt: skip
        rows = np.array(list(nearest), dtype=np.int64)
        scores = np.array(list(nearest.values()))
        first, last = links.sentence_first_chunk[rows], links.sentence_last_chunk[rows]
        _assert_same(sentences, best_per_passage(first, last, scores))
        same = np.array(data.doc_langs)[data.chunks.doc] == query.lang
        _assert_same(lexical, _brute_bm25(data.lexical.shares(query.text, query.lang), chunk_mask & same, p.pool))
        _assert_same(cognates, _brute_bm25(data.cognates.shares(query.text, query.lang), chunk_mask & ~same, p.pool))
        terms = [term for stems in query.translations.values() for term in stems]
        if terms:
            _assert_same(translated, _brute_bm25(data.lexical.shares_of_terms(terms), chunk_mask & ~same, p.pool))


def test_a_filter_keeping_everything_answers_as_no_filter(searcher):
    everything = {"lang": sorted(set(searcher.data.doc_langs))}
    for question in QUESTIONS:
        plain, filtered = searcher.search(question, 5), searcher.search(question, 5, everything)
        assert [(p.doc_id, p.start) for p in filtered.passages] == [(p.doc_id, p.start) for p in plain.passages]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "-".join(f))
def test_k_passages_come_back_from_allowed_documents(searcher, filters):
    data = searcher.data
    docs = DocumentColumns(data.documents, data.doc_langs).allowed(parse_filters(filters))
    allowed_ids = {doc.doc_id for doc, keep in zip(data.documents, docs, strict=True) if keep}
    passages = int(docs[data.chunks.doc].sum())
    for question in QUESTIONS:
        found = searcher.search(question, 10, filters).passages
        assert len(found) == min(10, passages)
        assert {p.doc_id for p in found} <= allowed_ids


def test_a_filter_matching_nothing_returns_no_passage(searcher):
    assert searcher.search(QUESTIONS[0], 5, {"source": "nowhere.example"}).passages == []
    assert searcher.search(QUESTIONS[0], 5, {"published": {"gte": "2030-01-01"}}).passages == []


def test_k_passages_even_when_the_filter_keeps_a_thousandth(built, encoder):
    """An IVF index of 900+ documents, one of which is allowed: an IVF search that filtered afterwards would
    find none of its passages in the lists it probes."""
    base = read_index(resolve_live(built.index_dir))
    copies = 1 + 1000 // len(base.documents)
    data, stats = scaled_index(base, copies, ann_threshold=1000, sigma=0.02, queries=None)
    assert stats["chunk_store"]["kind"] == stats["sentence_store"]["kind"] == "ivf-sq8"
    searcher = Searcher(data, encoder, built.search)
    seed = base.documents[int(np.bincount(base.chunks.doc).argmax())].doc_id  # the longest document
    target = f"{seed}~{copies // 2}"
    share = np.mean([doc.doc_id == target for doc in data.documents])
    assert share < 0.002
    passages = int((np.array([d.doc_id for d in data.documents])[data.chunks.doc] == target).sum())
    assert passages >= 4
    found = searcher.search("Who mediated the talks between Iran and the US?", passages, {"doc_id": [target]})
    assert len(found.passages) == passages and {p.doc_id for p in found.passages} == {target}
    assert len(searcher.search("Who mediated the talks?", passages + 3, {"doc_id": [target]}).passages) == passages


def test_filters_parse_and_fail_naming_the_field():
    parsed = parse_filters({"published": {"gte": "2026-01-02", "lte": "2026-01-05T12:00:00Z"}, "year": 2026})
    assert parsed.equals == (("year", ("2026",)),) and parsed.until is not None and parsed.before is None
    assert parse_filters({}) is None and parse_filters(None) is None
    for bad, named in [
        ({"published": {"gte": "06/01/2026"}}, "published.gte"),
        ({"published": {"lte": "2026-02-30"}}, "published.lte"),
        ({"published": {"after": "2026-01-01"}}, "'after'"),
        ({"published": "2026-01-01"}, "'published'"),
        ({"source": {"a": 1}}, "'source'"),
        ({"lang": []}, "'lang'"),
    ]:
        with pytest.raises(InvalidFilterError, match=named):
            parse_filters(bad)


def test_document_columns_apply_each_kind_of_filter():
    docs = _documents()
    columns = DocumentColumns(docs, ["fr"] * 6 + ["en"] * 6)

    def kept(filters):
        return [doc.doc_id for doc, keep in zip(docs, columns.allowed(parse_filters(filters)), strict=True) if keep]

    assert kept({"published": {"lte": "2026-01-01"}}) == ["piaf-dev/0000", "xquad-en/0000"]  # the whole day
    assert kept({"published": {"lte": "2026-01-01T00:00:00Z"}}) == ["piaf-dev/0000", "xquad-en/0000"]
    assert kept({"published": {"gte": "2026-01-06T00:00:01+00:00"}}) == []
    assert kept({"lang": "EN", "source": "a.example"}) == ["xquad-en/0000", "xquad-en/0002", "xquad-en/0004"]
    assert kept({"topic": "y"}) == ["piaf-dev/0001", "piaf-dev/0004", "xquad-en/0001", "xquad-en/0004"]
    with pytest.raises(InvalidFilterError, match="unknown filter field 'sourse'"):
        kept({"sourse": "a.example"})


def test_documents_without_a_date_are_left_out_by_a_date_filter(tmp_path: Path):
    docs = _documents()[:2]
    docs[1] = replace(docs[1], metadata={})
    columns = DocumentColumns(docs, ["fr", "fr"])
    assert columns.allowed(parse_filters({"published": {"gte": "2000-01-01"}})).tolist() == [True, False]


def test_an_ivf_search_of_a_skewed_subset_probes_until_it_has_k_rows(monkeypatch):
    """Half the rows, all in the lists farthest from the query: the first ``nprobe / fraction`` probes see
    none of them, so probing doubles until k are found."""
    monkeypatch.setattr(vectorstore, "EXACT_SUBSET_ROWS", 0)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = vectorstore.FaissVectorStore.approximate(vectors, nprobe=8)  # few probes of 126 lists, as at scale
    store.add(np.arange(4000), vectors)
    index, query = store.faiss_index, vectors[0]
    _, lists = index.quantizer.search(vectors, 1)
    _, by_distance = index.quantizer.search(query[None, :], index.nlist)
    far = by_distance[0][index.nlist // 2 :]
    subset = vectorstore.IdSubset(np.flatnonzero(np.isin(lists[:, 0], far)), 4000)
    assert index.nprobe / subset.fraction < index.nlist / 2  # the first probes miss the subset entirely
    scores, ids = store.search_subset(query, 10, subset)
    assert len(ids[0]) == 10 and set(ids[0].tolist()) <= set(subset.ids.tolist())
    assert np.allclose(scores[0], store.get(ids[0]) @ query, atol=1e-4)  # approximate, as IVF is: k of them
