"""A ``qa build`` killed with SIGKILL part-way: the previous index stays live and intact, the next build
succeeds and removes what the killed one left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from index.build.builder import build_index
from index.storage.store import TMP_PREFIX, builds_dir, read_index, resolve_live
from service.state import ServiceState
from tests.conftest import ROOT, SHARED_EVAL, make_corpus, make_settings
from tests.helpers import QA, qa_env, run_qa

pytestmark = pytest.mark.slow


def write_large_corpus(corpus: Path, articles: int = 30) -> None:
    """PIAF articles as .txt files (generated paragraphs when ../shared/eval is absent)."""
    piaf = SHARED_EVAL / "piaf-dev.json"
    if piaf.exists():
        data = json.loads(piaf.read_text(encoding="utf-8"))["data"][:articles]
        texts = ["\n\n".join(p["context"] for p in article["paragraphs"]) for article in data]
    else:
        texts = [
            "\n\n".join(f"Paragraphe {i}.{j} : le conseil municipal a voté le budget {j} de l'an {1900 + i}." * 5
                        for j in range(20))
            for i in range(articles)
        ]
    for i, text in enumerate(texts):
        (corpus / "large" / f"article-{i:03d}.fr.txt").parent.mkdir(exist_ok=True)
        (corpus / "large" / f"article-{i:03d}.fr.txt").write_text(text, encoding="utf-8")


def start_build(index: Path, corpus: Path, log: Path, quiet: bool) -> subprocess.Popen:
    args = [*QA, "build", "--corpus", str(corpus), "--index", str(index), *(["--quiet"] if quiet else [])]
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT, env=qa_env())


def temporary(index: Path) -> list[Path]:
    folder = builds_dir(index)
    return sorted(p for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)) if folder.is_dir() else []


def assert_live_and_intact(index: Path, build: Path, doc_ids: set[str], encoder) -> None:
    assert resolve_live(index) == build
    data = read_index(build)  # every checksum verified
    assert {doc.doc_id for doc in data.documents} == doc_ids
    state = ServiceState(make_settings(index.parent.parent), encoder)
    state.load(missing_ok=False)
    assert state.searcher.search("Who mediated the talks?", 3).passages


def test_sigkilled_builds_leave_the_previous_index_live_and_are_cleaned_up_next_time(tmp_path, encoder):
    corpus = make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    index = settings.index_dir
    build_index(settings, encoder, show_progress=False)
    previous = resolve_live(index)
    doc_ids = {doc.doc_id for doc in read_index(previous).documents}

    # 1. Killed while embedding a larger corpus.
    write_large_corpus(corpus)
    log = tmp_path / "build-1.log"
    proc = start_build(index, corpus, log, quiet=False)
    deadline = time.monotonic() + 240
    while b"Embedding" not in log.read_bytes():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the build never started embedding"
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL, "the build was still running when killed"
    assert_live_and_intact(index, previous, doc_ids, encoder)

    # 2. Killed while writing its temporary build folder (a small incremental build, so retried if it wins
    #    the race against the watcher).
    for rel in [p for p in (corpus / "large").iterdir()]:
        rel.unlink()
    (corpus / "large").rmdir()
    leftovers: list[Path] = []
    for attempt in range(4):
        (corpus / "weather.en.txt").write_text(f"Snow is forecast in Lyon, attempt {attempt}.", encoding="utf-8")
        proc = start_build(index, corpus, tmp_path / f"build-2-{attempt}.log", quiet=True)
        while proc.poll() is None and not temporary(index):
            time.sleep(0.0002)
        proc.send_signal(signal.SIGKILL)
        status = proc.wait(30)
        if status == -signal.SIGKILL and temporary(index):
            leftovers = temporary(index)
            break
        assert status == 0, (tmp_path / f"build-2-{attempt}.log").read_text()
        previous = resolve_live(index)  # the build won the race: it is the previous index now
    assert leftovers, "no attempt was killed while its temporary folder existed"
    assert_live_and_intact(index, previous, doc_ids, encoder)

    # 3. The next build succeeds; it removes the leftovers when it starts, before it publishes.
    log = tmp_path / "build-3.log"
    proc = start_build(index, corpus, log, quiet=True)
    gone_at = published_at = None
    known = {p.name for p in builds_dir(index).iterdir()}
    while proc.poll() is None:
        names = {p.name for p in builds_dir(index).iterdir()}
        now = time.monotonic()
        if gone_at is None and not any(p.name in names for p in leftovers):
            gone_at = now
        if published_at is None and any(not n.startswith(TMP_PREFIX) for n in names - known):
            published_at = now
        time.sleep(0.001)
    assert proc.returncode == 0, log.read_text()
    assert gone_at is not None and (published_at is None or gone_at <= published_at)
    assert temporary(index) == [] and not list(index.parent.glob(f"{index.name}.link-*"))
    final = resolve_live(index)
    assert final != previous and len(list(builds_dir(index).iterdir())) <= 2
    assert_live_and_intact(index, final, doc_ids, encoder)
    result = run_qa("ask", "Snow in Lyon?", "--json", "--index", str(index))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passages"][0]["doc_id"] == "weather.en.txt"
    assert os.path.islink(index)
