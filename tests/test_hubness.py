"""Question hubness: the pure functions, the shipped reference, builds that store it and searches that use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index.build.builder import build_index
from index.config import DEFAULT_MODEL
from index.errors import EvalDataError, IndexMismatchError, ModelUnavailableError
from index.evaluation.datasets import every_other_article, load_eval_file
from index.searcher import Searcher
from index.storage.hubness import (
    QuestionReference,
    ReferenceInfo,
    carried_hubness,
    hubness,
    load_reference,
    shipped_reference,
    train_centroids,
)
from index.storage.store import read_index, resolve_live
from service.state import ServiceState
from tests.conftest import make_corpus, make_settings
from tests.helpers import run_qa


def write_squad(path: Path, articles: int) -> Path:
    """A SQuAD file of ``articles`` one-paragraph articles with one question each (ids q0, q1, ...)."""
    data = [
        {"title": f"T{i}", "paragraphs": [{"context": f"Text {i}.", "qas": [
            {"id": f"q{i}", "question": f"Who wrote book number {i}?", "answers": [{"text": "Text", "answer_start": 0}]}
        ]}]}
        for i in range(articles)
    ]  # fmt: skip
    path.write_text(json.dumps({"data": data}), encoding="utf-8")
    return path


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_hubness_is_the_mean_similarity_to_the_nearest_centroids():
    centroids = np.eye(3, dtype=np.float32)
    vectors = unit(np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, -1.0]]))
    assert np.allclose(hubness(vectors, centroids, 1), [1.0, 2**-0.5, 0.0])
    assert np.allclose(hubness(vectors, centroids, 2), [0.5, 2**-0.5, 0.0])


def test_carried_hubness_keeps_old_rows_by_id_and_sets_new_ones():
    previous_ids, previous = np.array([7, 3, 5]), np.array([0.7, 0.3, 0.5], dtype=np.float32)
    ids = np.array([5, 9, 3])  # 7 is gone, 9 is new, 5 and 3 moved
    out = carried_hubness(previous_ids, previous, ids, [1], np.array([0.9], dtype=np.float32))
    assert np.allclose(out, [0.5, 0.9, 0.3])
    assert np.allclose(carried_hubness(None, None, ids, [0, 1, 2], np.ones(3)), 1.0)


def test_centroids_are_unit_rows_and_the_same_on_every_run():
    vectors = unit(np.random.default_rng(0).normal(size=(200, 16)))
    first, second = train_centroids(vectors, 8), train_centroids(vectors, 8)
    assert first.shape == (8, 16) and np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert np.array_equal(first, second)
    with pytest.raises(ValueError, match="give more questions"):
        train_centroids(vectors[:5], 8)


def test_reference_round_trip_and_its_errors(tmp_path):
    centroids = unit(np.random.default_rng(1).normal(size=(6, 4)))
    reference = QuestionReference(centroids, ReferenceInfo("some/model", 2, 60, ["a.json: 60 questions"]))
    path = tmp_path / "refs" / "model.npy"
    reference.save(path)
    loaded = load_reference(path, "some/model", 4)
    assert loaded is not None and loaded.digest == reference.digest and loaded.info == reference.info
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(IndexMismatchError, match="qa reference"):
        load_reference(path, "other/model", 4)
    with pytest.raises(IndexMismatchError, match="dimensions"):
        load_reference(path, "some/model", 8)
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_reference(tmp_path / "nowhere.npy", "some/model", 4)
    assert load_reference(None, "a/model-without-reference", 4) is None
    path.with_suffix(".json").write_text("{", encoding="utf-8")
    with pytest.raises(ModelUnavailableError, match="unreadable"):
        load_reference(path, "some/model", 4)


def test_the_shipped_reference_fits_the_default_encoder(encoder):
    reference = load_reference(None, DEFAULT_MODEL, encoder.dim)
    assert reference is not None and shipped_reference(DEFAULT_MODEL).is_file()
    assert reference.centroids.shape == (512, encoder.dim) and reference.info.neighbours == 5
    # Short generic sentences lie nearer to questions in general than a long specific one.
    generic, specific = encoder.encode_passages(
        ["What is it?", "La quenelle se sert avec une sauce Nantua, une recette à base d'écrevisses et de crème."]
    )
    assert reference.hubness(np.array([generic]))[0] > reference.hubness(np.array([specific]))[0]


def test_builds_store_hubness_and_carry_it_over(tmp_path, encoder):
    corpus = make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    first = read_index(resolve_live(settings.index_dir))
    reference = load_reference(None, DEFAULT_MODEL, encoder.dim)
    assert first.manifest.settings.reference == reference.digest
    stored = first.chunk_vectors.get(first.chunks.ids)
    assert np.allclose(first.chunk_hubness, reference.hubness(stored), atol=1e-5)
    assert len(first.sentence_hubness) == len(first.sentences) and first.sentence_hubness.min() > 0

    (corpus / "weather.en.txt").write_text("Snow fell on the Alps overnight.", encoding="utf-8")
    build_index(settings, encoder, show_progress=False)
    second = read_index(resolve_live(settings.index_dir))
    kept = np.isin(second.sentences.ids, first.sentences.ids)
    old_rows = first.sentences.rows_of_ids(second.sentences.ids[kept])
    assert kept.sum() and not kept.all()
    assert np.array_equal(second.sentence_hubness[kept], first.sentence_hubness[old_rows])
    new_vectors = second.sentence_vectors.get(second.sentences.ids[~kept])
    assert np.allclose(second.sentence_hubness[~kept], reference.hubness(new_vectors), atol=1e-5)


def test_another_reference_means_a_full_rebuild(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    build_index(make_settings(tmp_path), encoder, show_progress=False)
    centroids = unit(np.random.default_rng(2).normal(size=(16, encoder.dim)))
    path = tmp_path / "mine.npy"
    QuestionReference(centroids, ReferenceInfo(DEFAULT_MODEL, 3, 16, ["made up"])).save(path)
    settings = make_settings(tmp_path, question_reference=path)
    with pytest.raises(IndexMismatchError, match=r"reference .*rebuild"):
        ServiceState(settings, encoder).load()  # the service refuses the index built with the shipped one
    report = build_index(settings, encoder, show_progress=False)
    assert report.reused_documents == 0
    data = read_index(resolve_live(settings.index_dir))
    assert np.allclose(data.chunk_hubness, hubness(data.chunk_vectors.get(data.chunks.ids), centroids, 3), atol=1e-5)


def test_the_penalty_takes_hubness_off_the_vector_scores(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    plain = Searcher(data, encoder, built.search.model_copy(update={"hub_penalty": 0.0, "language_gap": 0.0}))
    penalised = Searcher(data, encoder, built.search.model_copy(update={"hub_penalty": 0.5, "language_gap": 0.0}))
    query = plain.encode(["Who mediated the talks?"])[0]
    before, after = plain.retrieve(query)["dense"], penalised.retrieve(query)["dense"]
    cosines = data.chunk_vectors.get(data.chunks.ids) @ query.vector
    for row in after:
        assert after[row] == pytest.approx(cosines[row] - 0.5 * data.chunk_hubness[row], abs=1e-5)
        assert before[row] == pytest.approx(cosines[row], abs=1e-5)
    assert penalised.search("Who mediated the talks?", 1).passages[0].text


def test_the_language_gap_takes_off_the_vector_scores_in_the_question_language(built, encoder):
    data = read_index(resolve_live(built.index_dir))
    gapped = Searcher(data, encoder, built.search.model_copy(update={"hub_penalty": 0.0, "language_gap": 0.1}))
    query = gapped.encode(["Who mediated the talks?"])[0]
    cosines = data.chunk_vectors.get(data.chunks.ids) @ query.vector
    same = np.array(data.doc_langs)[data.chunks.doc] == query.lang
    assert query.lang == "en" and same.any() and not same.all()  # English weather beside French articles
    after = gapped.retrieve(query)["dense"]
    for row in after:
        assert after[row] == pytest.approx(cosines[row] - 0.1 * same[row], abs=1e-5)


def test_every_other_article_splits_questions_not_documents(tmp_path):
    full = load_eval_file(write_squad(tmp_path / "set.json", 5))
    even, odd = every_other_article(full, "even"), every_other_article(full, "odd")
    assert [q.qid for q in even.questions] == ["q0", "q2", "q4"] and [q.qid for q in odd.questions] == ["q1", "q3"]
    assert even.documents == odd.documents == full.documents
    jsonl = tmp_path / "set.jsonl"
    jsonl.write_text(json.dumps({"id": "1", "question": "Who?", "answers": ["x"]}), encoding="utf-8")
    with pytest.raises(EvalDataError, match="SQuAD"):
        every_other_article(load_eval_file(jsonl), "odd")


def test_qa_reference_writes_a_reference_and_refuses_too_few_questions(tmp_path):
    path = write_squad(tmp_path / "questions.json", 12)
    out = tmp_path / "ref" / "default.npy"
    result = run_qa("reference", str(path), "--centroids", "4", "--articles", "even", "--out", str(out))
    assert result.returncode == 0, result.stderr
    info = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    dim = np.load(out).shape[1]
    assert info["model"] == DEFAULT_MODEL and info["questions"] == 6 and np.load(out).shape == (4, dim)
    assert load_reference(out, DEFAULT_MODEL, dim).info.neighbours == 4  # no more neighbours than centroids
    refused = run_qa("reference", str(path), "--centroids", "64", "--out", str(out))
    assert refused.returncode == 2 and "cannot make 64 centroids" in refused.stderr
    assert "at least 1" in run_qa("reference", str(path), "--centroids", "0", "--out", str(out)).stderr


def test_a_model_without_a_reference_builds_without_hubness_and_says_so(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    result = run_qa("build", "--corpus", str(corpus), "--index", str(tmp_path / "index"), QA_MODEL="minilm")
    assert result.returncode == 0, result.stderr
    assert "no question reference for model 'minilm'" in result.stderr
    data = read_index(resolve_live(tmp_path / "index"))
    assert data.manifest.settings.reference == "" and not data.chunk_hubness.any()
