"""Sharded indexes: the layout on disk, and search results equal to the unsharded index's."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from index.build.builder import build_from_documents, build_index
from index.evaluation.datasets import squad_documents
from index.search.fusion import top_k
from index.search.retrievers.bm25 import merge_top, top_k_with_zero
from index.search.retrievers.nearest import VectorHits, merge_hits
from index.search.retrievers.sentence_bm25 import best_sentence_of
from index.searcher import Searcher
from index.storage.sharding import join_shards, shard_of, split_index
from index.storage.store import new_build_folder, read_index, read_shards, resolve_live, write_index
from tests.conftest import ROOT, SHARED_EVAL, make_corpus, make_settings
from tests.helpers import run_qa


def test_a_document_shard_is_a_stable_hash_of_its_id():
    assert [shard_of("piaf-dev/0001", 3), shard_of("piaf-dev/0002", 3)] == [2, 0]  # fixed across processes
    counts = np.bincount([shard_of(f"doc-{i}", 4) for i in range(4000)], minlength=4)
    assert counts.min() > 900


@pytest.mark.parametrize("k", [1, 3, 8, 40])
def test_merged_top_k_of_shards_is_the_top_k_of_the_whole(k):
    rng = np.random.default_rng(k)
    scores = np.where(rng.random(60) < 0.8, 0.0, rng.random(60)).astype(np.float32)
    scores[[5, 6]] = scores[7] = 0.5  # ties across shards
    allowed = rng.random(60) < 0.7
    owner = rng.integers(0, 3, 60)
    for mask in (None, allowed):
        parts = []
        for number in range(3):
            rows = np.flatnonzero(owner == number)
            part = top_k_with_zero(scores[rows], k, None if mask is None else mask[rows])
            parts.append(type(part)(rows[part.rows], part.scores))
        whole = top_k(scores, k, mask)
        merged = merge_top(parts, k)
        assert merged.rows.tolist() == whole.rows.tolist()
        assert merged.scores.tolist() == whole.scores.tolist()


def test_merged_vector_hits_are_the_best_of_all_shards_the_later_row_first_among_equals():
    parts = [
        VectorHits(np.array([4, 1]), np.array([0.9, 0.5], dtype=np.float32), np.array([0.1, 0.2], dtype=np.float32)),
        VectorHits(np.array([2, 3]), np.array([0.7, 0.5], dtype=np.float32), np.array([0.3, 0.4], dtype=np.float32)),
    ]
    merged = merge_hits(parts, 3)
    assert merged.rows.tolist() == [4, 2, 3] and merged.discount.tolist() == pytest.approx([0.1, 0.3, 0.4])
    assert merged.scores.dtype == np.float32  # the penalty is then applied in the stores' precision


def test_best_sentence_counts_only_sentences_overlapping_a_candidate():
    # sentences: rows 0..2 with their passage ranges; a sentence over passages 1-2 reaches passage 2 too
    terms = VectorHits(np.array([0, 1, 2]), np.array([3.0, 2.0, 5.0]), np.zeros(3, dtype=np.float32),
                       np.array([0, 1, 4]), np.array([0, 2, 4]))  # fmt: skip
    best = best_sentence_of([terms], np.array([1, 3]))
    assert dict(best) == {1: 2.0, 2: 2.0}


def test_a_sharded_build_has_one_manifest_and_rebuilds_incrementally(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path, shards=2)
    build_index(settings, encoder, show_progress=False)
    folder = resolve_live(settings.index_dir)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["shards"] == 2 and sorted(p.name for p in (folder / "shards").iterdir()) == ["000", "001"]
    assert not list(folder.glob("shards/*/manifest.json")) and (folder / "vocabulary").is_dir()
    parts = read_shards(folder)
    assert sum(len(part.documents) for part in parts) == 3
    for number, part in enumerate(parts):
        assert {shard_of(doc.doc_id, 2) for doc in part.documents} <= {number}

    (tmp_path / "corpus" / "weather.en.txt").write_text("Snow fell on Grenoble overnight.", encoding="utf-8")
    report = build_index(settings, encoder, show_progress=False)
    assert report.reused_documents == 2 and report.documents == 3
    assert report.folder != folder and len(list(report.folder.glob("shards/*"))) == 2  # all shards swap together

    unsharded = settings.model_copy(update={"shards": 1})
    assert build_index(unsharded, encoder, show_progress=False).reused_documents == 3
    assert "shards" not in json.loads((resolve_live(settings.index_dir) / "manifest.json").read_text())
    assert len(read_shards(resolve_live(settings.index_dir))) == 1


def _documents():
    """Every third piaf-dev article, with metadata some lack, plus English articles: French questions cross languages.

    Every piaf-dev question is asked, also those about articles left out: the comparison wants many searches, and
    a question whose answer is not indexed has close scores, ties among them.
    """
    fr, questions = squad_documents(SHARED_EVAL / "piaf-dev.json")
    en, _ = squad_documents(SHARED_EVAL / "xquad-en.json")
    docs = []
    for i, doc in enumerate([*fr[::3], *en[:8]]):
        metadata = {"published": f"2026-01-{i % 9 + 1:02d}"}
        if i % 4 == 1:
            metadata["topic"] = "xy"[i % 2]  # only in some documents, so a shard may have none
        docs.append(replace(doc, metadata=metadata))
    return docs, [question.question for question in questions]


@pytest.fixture(scope="module")
def piaf(tmp_path_factory, encoder):
    """The index, its unsharded searcher and every piaf-dev question encoded once by it, for both shard counts."""
    if not (SHARED_EVAL / "piaf-dev.json").is_file():
        pytest.skip("needs ../shared/eval/piaf-dev.json")
    tmp = tmp_path_factory.mktemp("piaf-shards")
    settings = make_settings(tmp, ann_threshold=10**9)  # exact (flat) stores
    docs, questions = _documents()
    build_from_documents(docs, settings, encoder, show_progress=False)
    data = read_index(resolve_live(settings.index_dir))
    whole = Searcher(data, encoder, settings.search)
    return settings, data, whole, whole.encode(questions)


@pytest.mark.slow
@pytest.mark.timeout(900)  # the fixture embeds 37 articles and 1683 questions: minutes on a loaded machine
@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_search_equals_unsharded_over_every_piaf_dev_question(piaf, encoder, shards):
    settings, data, whole, queries = piaf
    folder = new_build_folder(settings.index_dir)  # written and read back: the layout on disk is what is searched
    write_index(data, folder, split_index(data, shards))
    sharded = Searcher.of_shards(read_shards(folder), encoder, settings.search, prefetch=True)  # as on Ray Serve
    assert sharded.sharded and len(sharded.shards) == shards
    fetches = []  # second round trips: final passages no shard sent along with its lists
    for shard in sharded.shards:
        shard.passages = _counted(shard.passages, fetches)
    filters = [None, {"topic": "x"}, {"published": {"gte": "2026-01-03", "lte": "2026-01-05"}}]
    compared = 0
    for at, query in enumerate(queries):
        restriction = filters[at % len(filters)] if at % 5 == 0 else None
        expected = _answer(whole, query, restriction)
        got = _answer(sharded, query, restriction)
        assert [p[:-1] for p in got] == [p[:-1] for p in expected], query.text
        # One path for both (the whole index is one shard): the scores agree too.
        assert np.allclose([p[-1] for p in got], [p[-1] for p in expected], atol=1e-6, rtol=0)
        compared += 1
    assert compared == 1683
    assert len(fetches) < compared / 5, len(fetches)  # most questions need one round trip


def _counted(passages, calls: list):
    def counting(*args):
        calls.append(args[0])
        return passages(*args)

    return counting


def _answer(searcher: Searcher, query, filters) -> list[tuple]:
    """The search of an encoded question, as ``Searcher.search`` runs it (shards prefetching passages)."""
    return [
        (p.doc_id, p.start, p.end, p.highlight.start, p.highlight.end, p.score)
        for p in searcher.answer(query, 5, searcher.filters(filters)).passages
    ]


@pytest.mark.slow  # the piaf fixture embeds 37 articles
@pytest.mark.timeout(900)
def test_joined_shards_are_the_whole_index(piaf):
    _, data, _, _ = piaf
    joined = join_shards(split_index(data, 3))
    assert [doc.doc_id for doc in joined.documents] == [doc.doc_id for doc in data.documents]
    for name in ("ids", "doc", "start", "end"):
        assert np.array_equal(getattr(joined.chunks, name), getattr(data.chunks, name))
        assert np.array_equal(getattr(joined.sentences, name), getattr(data.sentences, name))
    assert np.array_equal(joined.chunk_hubness, data.chunk_hubness)
    ids = data.sentences.ids[:50]
    assert np.array_equal(joined.sentence_vectors.get(ids), data.sentence_vectors.get(ids))


def test_the_cli_builds_shards_and_refuses_bad_counts(tmp_path):
    make_corpus(tmp_path / "corpus")
    index = tmp_path / "var" / "index"
    done = run_qa("build", "--corpus", str(tmp_path / "corpus"), "--index", str(index), "--shards", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads((resolve_live(index) / "manifest.json").read_text())["shards"] == 2
    bad = run_qa("build", "--corpus", str(tmp_path / "corpus"), "--index", str(index), "--shards", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid configuration")
    alone = run_qa("serve", "--index", str(index), "--replicas", "2")
    assert alone.returncode == 2 and "--replicas needs --cluster" in alone.stderr


def test_serving_without_a_cluster_never_imports_ray():
    code = "import sys, service.cli, service.app, service.state, index.searcher; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
