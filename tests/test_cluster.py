"""Cluster builds against the session's real two-node Ray cluster on 127.0.0.1 (tests/ray_cluster.py): the same
index as a local build, incremental rebuilds, an encoder actor killed mid-build, and failures that leave the live
index alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.build.builder import build_index
from index.config import ClusterParams
from index.errors import ClusterError
from index.storage.store import read_index, resolve_live
from index.storage.vocabulary import corpus_words
from index.text.corpus import load_corpus
from service.bench.http_load import free_port
from tests.conftest import ROOT, make_corpus, make_settings
from tests.helpers import run_qa
from tests.test_builder import live, texts_of

ray = pytest.importorskip("ray", reason="the cluster tests need Ray: make install")
from index.build.cluster import ClusterEmbedder, EncoderActor  # noqa: E402 (needs Ray)

# Two actors of half a CPU on two one-CPU nodes; small blocks and batches, so each actor takes several.
PARAMS = ClusterParams(actors=2, actor_cpus=0.5, block_texts=48, max_restarts=2)
BATCH = 16


def cluster_build(settings, encoder, address: str, actor_class: type = EncoderActor, **params):
    chosen = PARAMS.model_copy(update=params)
    with ClusterEmbedder(address, settings.model, settings.batch_size, chosen, actor_class) as embedder:
        report = build_index(settings, encoder, show_progress=False, embedder=embedder)
    return report, embedder


@pytest.fixture(scope="module")
def local_build(tmp_path_factory, encoder):
    """The small corpus built in this process: what every cluster build of it must equal."""
    tmp = tmp_path_factory.mktemp("local")
    make_corpus(tmp / "corpus")
    settings = make_settings(tmp, batch_size=BATCH)
    build_index(settings, encoder, show_progress=False)
    return settings


def assert_same_index(built, expected) -> None:
    a, b = live(built), live(expected)
    assert [(d.doc_id, d.title, d.text) for d in a.documents] == [(d.doc_id, d.title, d.text) for d in b.documents]
    assert a.doc_langs == b.doc_langs
    for name in ("chunks", "sentences"):
        x, y = getattr(a, name), getattr(b, name)
        for column in ("ids", "doc", "start", "end"):
            assert np.array_equal(getattr(x, column), getattr(y, column)), (name, column)
    assert a.manifest.settings == b.manifest.settings
    assert a.manifest.documents == b.manifest.documents and a.manifest.counts == b.manifest.counts
    files_a, files_b = (json.loads((s.index_dir / "manifest.json").read_text())["files"] for s in (built, expected))
    assert files_a.keys() == files_b.keys()
    # Everything but vectors and what is computed from them is byte for byte the same: BM25, tables, words.
    exact = [f for f in files_a if not f.endswith(".faiss") and not f.startswith("hubness/")]
    assert [files_a[f] for f in exact] == [files_b[f] for f in exact]
    for store, table in (("chunk_vectors", "chunks"), ("sentence_vectors", "sentences")):
        ids = getattr(a, table).ids
        np.testing.assert_allclose(getattr(a, store).get(ids), getattr(b, store).get(ids), atol=1e-5)
    for lang in b.vocabulary.langs:
        words = b.vocabulary.words[lang]
        assert a.vocabulary.words[lang] == words
        vectors = a.vocabulary.vectors_of(lang, words)
        np.testing.assert_allclose(vectors, b.vocabulary.vectors_of(lang, words), atol=1e-5)
    np.testing.assert_allclose(a.chunk_hubness, b.chunk_hubness, atol=1e-5)
    np.testing.assert_allclose(a.sentence_hubness, b.sentence_hubness, atol=1e-5)


@pytest.mark.cluster
@pytest.mark.slow
def test_cluster_build_is_the_local_build(tmp_path, encoder, ray_cluster, local_build):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path, batch_size=BATCH)
    report, embedder = cluster_build(settings, encoder, ray_cluster.address)
    assert_same_index(settings, local_build)
    assert report.embedded_texts == embedder.embedded > 0
    assert report.actors == embedder.workers and 1 <= report.actors <= 2
    assert f"by {report.actors} encoder actor" in report.summary()


@pytest.mark.cluster
@pytest.mark.slow
def test_cluster_rebuild_embeds_only_changed_documents(tmp_path, encoder, ray_cluster):
    corpus = make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path, batch_size=BATCH)
    cluster_build(settings, encoder, ray_cluster.address)
    before = live(settings)

    (corpus / "weather.en.txt").unlink()
    changed = corpus / "notes" / "cuisine.fr.md"
    changed.write_text("# Cuisine lyonnaise\n\nLe tablier de sapeur est un plat lyonnais.", encoding="utf-8")
    # The rebuild as a user runs it: `qa build --cluster ADDRESS`, in a process of its own.
    done = run_qa("build", "--cluster", ray_cluster.address, "--actors", "2", "--actor-cpus", "0.5", "--quiet",
                  "--corpus", str(corpus), "--index", str(settings.index_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr

    new_doc = next(d for d in load_corpus(corpus).documents if d.doc_id == "notes/cuisine.fr.md")
    new_words = set(corpus_words([new_doc], ["fr"])["fr"]) - set(before.vocabulary.words["fr"])
    embedded = int(re.search(r"(\d+) texts embedded by \d encoder actors?", done.stdout).group(1))
    assert embedded == texts_of(new_doc, settings) + len(new_words)
    assert "1 documents reused" in done.stdout
    after = live(settings)
    assert {d.doc_id for d in after.documents} == {"oman-iran-us-talks-2026-02-06.fr.txt", "notes/cuisine.fr.md"}
    kept = np.isin(after.chunks.ids, before.chunks.ids)
    np.testing.assert_array_equal(
        after.chunk_vectors.get(after.chunks.ids[kept]), before.chunk_vectors.get(after.chunks.ids[kept])
    )

    unchanged, embedder = cluster_build(settings, encoder, ray_cluster.address)
    assert unchanged.embedded_texts == embedder.embedded == 0 and unchanged.reused_documents == 2


def crashing_actor(marker: Path, every_call: bool = False) -> type:
    """An encoder actor class whose process kills itself on its second batch, once (whichever actor first creates
    ``marker``), or on every batch. Defined in a function, and using no other function of this module, so that Ray
    ships the class itself to the workers (they cannot import the test modules)."""

    class Crashing(EncoderActor):
        def __init__(self, model: str) -> None:
            self.calls = 0
            if not every_call:
                super().__init__(model)

        def __call__(self, batch):
            self.calls += 1
            if every_call:
                os._exit(1)  # as a killed process dies: no exception, no cleanup
            if self.calls == 2:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    os._exit(1)
                except FileExistsError:
                    pass  # another actor (or this one, before its restart) has crashed already
            return super().__call__(batch)

    return Crashing


@pytest.mark.cluster
@pytest.mark.slow
def test_an_actor_killed_mid_build_is_restarted_and_the_index_is_the_same(
    tmp_path, encoder, ray_cluster, local_build
):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path, batch_size=BATCH)
    marker = tmp_path / "crashed"
    report, _ = cluster_build(settings, encoder, ray_cluster.address, crashing_actor(marker))
    assert marker.exists(), "an actor died mid-build"
    assert_same_index(settings, local_build)
    assert report.embedded_texts == len(live(local_build).chunks) + len(live(local_build).sentences) + sum(
        len(words) for words in live(local_build).vocabulary.words.values()
    )


def small_live_index(tmp_path: Path, encoder):
    """A built index over a small corpus, then a changed document, so that the next build has texts to embed."""
    corpus = tmp_path / "corpus"
    (corpus / "notes").mkdir(parents=True)
    (corpus / "notes" / "a.fr.md").write_text("# Lyon\n\nLa quenelle est une spécialité de Lyon.", encoding="utf-8")
    settings = make_settings(tmp_path, batch_size=BATCH)
    build_index(settings, encoder, show_progress=False)
    (corpus / "notes" / "a.fr.md").write_text("# Lyon\n\nLe tablier de sapeur est lyonnais.", encoding="utf-8")
    return settings, resolve_live(settings.index_dir), read_index(resolve_live(settings.index_dir)).manifest


def assert_untouched(settings, folder: Path, manifest) -> None:
    assert resolve_live(settings.index_dir) == folder
    assert read_index(folder).manifest == manifest
    builds = [p.name for p in folder.parent.iterdir()]
    assert builds == [folder.name], "no half-written build folder is left behind"


@pytest.mark.cluster
@pytest.mark.slow
def test_actors_that_keep_dying_fail_the_build_and_keep_the_live_index(tmp_path, encoder, ray_cluster):
    settings, folder, manifest = small_live_index(tmp_path, encoder)
    dying = crashing_actor(tmp_path / "unused", every_call=True)
    with pytest.raises(ClusterError, match=r"cluster build failed, the live index is unchanged: \w+") as caught:
        cluster_build(settings, encoder, ray_cluster.address, dying, max_restarts=1)
    assert "\n" not in str(caught.value)
    assert_untouched(settings, folder, manifest)


def test_an_unreachable_cluster_is_one_cli_line_and_keeps_the_live_index(tmp_path, encoder):
    settings, folder, manifest = small_live_index(tmp_path, encoder)
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    done = run_qa("build", "--cluster", address, "--quiet", "--corpus", str(settings.corpus_dir),
                  "--index", str(settings.index_dir), timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot reach the Ray cluster at {address}") and done.stderr.count("\n") == 1
    assert_untouched(settings, folder, manifest)


def test_cluster_flags_need_cluster_and_valid_values(tmp_path):
    done = run_qa("build", "--actors", "2", "--corpus", str(tmp_path), "--index", str(tmp_path / "index"))
    assert done.returncode == 2 and done.stderr.startswith("error: --actors and --actor-cpus need --cluster")
    done = run_qa("build", "--cluster", "local", "--actor-cpus", "0", "--corpus", str(tmp_path))
    assert done.returncode == 2 and done.stderr.startswith("error: invalid cluster option")
    assert "actor_cpus" in done.stderr and done.stderr.count("\n") == 1


def test_a_local_build_never_imports_ray(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.fr.txt").write_text("La quenelle est une spécialité de Lyon.", encoding="utf-8")
    script = (
        "import sys; from service.cli import main; import service.app, service.state; "
        f"code = main(['build', '--quiet', '--corpus', {str(tmp_path / 'corpus')!r}, '--index', "
        f"{str(tmp_path / 'index')!r}]); "
        "assert code == 0; assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
