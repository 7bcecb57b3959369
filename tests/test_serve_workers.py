"""Several server processes, and builds made outside the server, reach every request."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from service.backend import process_running
from service.bench.http_load import process_tree
from tests.conftest import make_corpus
from tests.helpers import QAServe, run_qa

pytestmark = pytest.mark.slow


def builds_seen(url: str, requests: int = 20) -> set[str]:
    seen = set()
    for _ in range(requests):
        response = httpx.post(f"{url}/ask", json={"question": "Who mediated the talks?"}, timeout=30)
        assert response.status_code == 200
        seen.add(response.headers["x-index-build"])
    return seen


def test_two_workers_pick_up_a_build_made_by_qa_build(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    assert run_qa("build", "--corpus", str(corpus), "--index", str(index), "--quiet").returncode == 0
    first = index.resolve().name
    server = QAServe(index, tmp_path / "serve.log", QA_WORKERS="2")
    try:
        server.wait_ready()
        assert builds_seen(server.url) == {first}

        (corpus / "extra.en.txt").write_text("The talks resumed in Muscat a week later.", encoding="utf-8")
        assert run_qa("build", "--corpus", str(corpus), "--index", str(index), "--quiet").returncode == 0
        second = index.resolve().name
        deadline = time.monotonic() + 60
        while builds_seen(server.url) != {second}:  # both workers must move to the new build
            assert time.monotonic() < deadline, f"workers still answer from the old build:\n{server.log()}"
            time.sleep(0.5)
        assert httpx.get(f"{server.url}/health").json()["documents"] == 4
        assert server.terminate() == 0
    finally:
        server.close()


def test_search_processes_answer_like_one_process_and_keep_error_codes(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    corpus = make_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    assert run_qa("build", "--corpus", str(corpus), "--index", str(index), "--quiet").returncode == 0
    server = QAServe(index, tmp_path / "serve.log", QA_WORKERS="2", QA_CORPUS_DIR=str(corpus), QA_API_TOKEN="tok-2")
    questions = ["Who mediated the talks?", "Qui accompagne Steve Witkoff ?", "Will it rain in the Alps?"] * 8
    try:
        server.wait_ready()

        def ask(question: str) -> list:
            response = httpx.post(f"{server.url}/ask", json={"question": question, "k": 3}, timeout=60)
            assert response.status_code == 200, response.text
            # Questions that arrive together are encoded in one batch, which moves scores in the 7th digit.
            return [(p["doc_id"], p["start"], p["end"], round(p["score"], 4)) for p in response.json()["passages"]]

        sequential = [ask(q) for q in questions]
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(ask, questions)) == sequential

        doc = httpx.get(f"{server.url}/documents/weather.en.txt").json()
        assert doc["text"].startswith("The weather in Lyon")
        missing = httpx.get(f"{server.url}/documents/nope.txt")
        assert missing.status_code == 404 and "no document" in missing.json()["detail"]
        assert httpx.post(f"{server.url}/ask", json={"question": "  "}).status_code == 422
        rebuilt = httpx.post(f"{server.url}/index/rebuild", headers={"Authorization": "Bearer tok-2"}, timeout=120)
        assert rebuilt.status_code == 200 and rebuilt.json()["documents"] == 3
        assert httpx.post(f"{server.url}/index/rebuild").status_code == 401
        assert server.terminate() == 0
    finally:
        server.close()


def search_processes(server_pid: int) -> list[int]:
    """The pool's search processes: the server's descendants started by multiprocessing's spawn."""
    return [pid for pid in process_tree(server_pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_a_killed_search_process_costs_a_503_then_new_ones_answer(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    assert run_qa("build", "--corpus", str(corpus), "--index", str(index), "--quiet").returncode == 0
    server = QAServe(index, tmp_path / "serve.log", QA_WORKERS="2")
    ask = {"question": "Who mediated the talks?", "k": 1}
    try:
        server.wait_ready()
        before = search_processes(server.proc.pid)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        time.sleep(0.5)
        statuses = []
        deadline = time.monotonic() + 90
        while not statuses or statuses[-1] != 200:
            assert time.monotonic() < deadline, f"no answer after the pool broke:\n{server.log()}"
            response = httpx.post(f"{server.url}/ask", json=ask, timeout=60)
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert "search process stopped" in response.json()["detail"]
        assert set(statuses) <= {200, 503}, statuses
        assert response.json()["passages"][0]["doc_id"] == "oman-iran-us-talks-2026-02-06.fr.txt"
        while len(after := search_processes(server.proc.pid)) != 2:  # the pool starts both, not just one
            assert time.monotonic() < deadline, f"search processes: {after}\n{server.log()}"
            time.sleep(0.2)
        assert not set(after) & set(before)
        assert server.terminate() == 0
    finally:
        server.close()


def test_search_processes_exit_when_the_server_is_killed_outright(built, tmp_path):
    server = QAServe(built.index_dir, tmp_path / "serve.log", "--workers", "2")
    try:
        server.wait_ready()
        children = [pid for pid in process_tree(server.proc.pid) if pid != server.proc.pid]
        assert len(children) >= 2
        server.proc.kill()  # SIGKILL: no chance to shut the pool down
        server.proc.wait()
        deadline = time.monotonic() + 15
        while any(process_running(pid) for pid in children):
            assert time.monotonic() < deadline, "search processes outlived the killed server"
            time.sleep(0.2)
    finally:
        server.close()

