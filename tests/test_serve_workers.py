"""Several server processes, and builds made outside the server, reach every request."""

from __future__ import annotations

import time

import httpx
import pytest

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
