"""`qa serve --cluster` against the session's real two-node Ray cluster on 127.0.0.1 (tests/ray_cluster.py).

A real `qa serve` subprocess serves a two-shard index with two replicas per shard: it answers as
the same index searched in this process, a rebuild under load swaps every shard at once, and a
replica killed under load costs no request. The tests share the server and run in file order.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index.build.builder import build_index
from index.searcher import Searcher
from index.storage.store import builds_dir, read_shards, resolve_live
from service.bench.serving import replica_pids
from tests.conftest import make_corpus, make_settings
from tests.helpers import QAServe, wait_until
from tests.test_reliability_serve import NEW_CODES, OLD_CODES, QUESTIONS  # the same rebuild-under-load story

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

def cluster_server(tmp: Path, address: str, replicas: int, log_name: str, **env: str) -> QAServe:
    settings = make_settings(tmp)
    return QAServe(
        settings.index_dir, tmp / log_name, "--cluster", address, "--replicas", str(replicas), "--replica-cpus",
        "0.2", "--access-log", QA_CORPUS_DIR=str(tmp / "corpus"), QA_SHARDS="2", **env,
    )  # fmt: skip


def sharded_corpus(tmp: Path, encoder) -> None:
    corpus = make_corpus(tmp / "corpus")
    (corpus / "codes.en.txt").write_text(OLD_CODES, encoding="utf-8")
    build_index(make_settings(tmp, shards=2), encoder, show_progress=False)


@pytest.fixture(scope="module")
def served(ray_cluster, tmp_path_factory, encoder) -> Iterator[tuple[QAServe, str, Path]]:
    tmp = tmp_path_factory.mktemp("cluster-served")
    sharded_corpus(tmp, encoder)
    token = f"tok-{secrets.token_hex(16)}"
    server = cluster_server(tmp, ray_cluster.address, 2, "serve.log", QA_API_TOKEN=token)
    with server:
        yield server, token, tmp
        server.terminate(60)


def ask(http: httpx.Client, question: str) -> tuple[int, str | None, list[tuple]]:
    response = http.post("/ask", json={"question": question, "k": 4})
    if response.status_code != 200:
        return response.status_code, response.text, []
    passages = [(p["doc_id"], p["start"], p["end"], p["text"], p["score"]) for p in response.json()["passages"]]
    return 200, response.headers.get("x-index-build"), passages


def local_answers(folder: Path, encoder) -> dict[str, list[tuple]]:
    searcher = Searcher.of_shards(read_shards(folder), encoder)
    return {
        q: [(p.doc_id, p.start, p.end, p.text, p.score) for p in searcher.search(q, 4).passages] for q in QUESTIONS
    }


def test_the_cluster_answers_as_the_index_searched_in_process(served, encoder):
    server, token, tmp = served
    folder = resolve_live(tmp / "var" / "index")
    expected = local_answers(folder, encoder)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for question in QUESTIONS:
            status, build, passages = ask(http, question)
            assert status == 200 and build == folder.name
            assert _same(passages, expected[question]), question
        assert http.get("/documents/codes.en.txt").json()["text"] == OLD_CODES
        assert http.get("/documents/nope.txt").status_code == 404
        response = http.post("/ask", json={"question": "code?", "filters": {"colour": "red"}})
        assert response.status_code == 422 and "colour" in response.json()["detail"]
        kept = http.post("/ask", json={"question": "code?", "filters": {"doc_id": ["codes.en.txt"]}}).json()
        assert {p["doc_id"] for p in kept["passages"]} == {"codes.en.txt"}
        assert http.post("/index/rebuild").status_code == 401
        assert http.get("/health").json()["documents"] == 4
    ray_token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()  # the session cluster's (conftest)
    assert token not in server.log() and ray_token not in server.log()


def test_rebuild_under_load_swaps_every_shard_at_once(served, encoder):
    server, token, tmp = served
    with httpx.Client(base_url=server.url, timeout=120) as http:
        old_build = http.get("/health").json()["build"]
    old = local_answers(builds_dir(tmp / "var" / "index") / old_build, encoder)
    corpus = tmp / "corpus"
    (corpus / "codes.en.txt").write_text(NEW_CODES, encoding="utf-8")
    (corpus / "weather.en.txt").unlink()
    (corpus / "ports.en.txt").write_text("The port of Muscat handled record traffic in 2025.", encoding="utf-8")

    results, errors, stop = _load(server.url, clients=6)
    try:
        wait_until(lambda: len(results) >= 12, 120)
        with httpx.Client(base_url=server.url, timeout=600) as http:
            rebuilt = http.post("/index/rebuild", headers={"Authorization": f"Bearer {token}"})
        assert rebuilt.status_code == 200, rebuilt.text
        after = len(results)
        wait_until(lambda: len(results) >= after + 12, 120)
    finally:
        stop.set()
    assert not errors, errors
    with httpx.Client(base_url=server.url, timeout=120) as http:
        new_build = http.get("/health").json()["build"]
    assert new_build != old_build and rebuilt.json()["reused_documents"] == 2
    new = local_answers(builds_dir(tmp / "var" / "index") / new_build, encoder)
    assert "AMBER-7" in old[QUESTIONS[0]][0][3] and "COBALT-9" in new[QUESTIONS[0]][0][3]
    expected = {old_build: old, new_build: new}
    for question, status, build, passages in list(results):
        assert status == 200, build
        assert _same(passages, expected[build][question]), (question, build)  # one build per answer, all shards
    assert {build for _, _, build, _ in results} == {old_build, new_build}


def test_killing_one_of_two_replicas_under_load_fails_no_request(served):
    server, _, _ = served
    with httpx.Client(base_url=server.url, timeout=60) as http:
        build = http.get("/health").json()["build"]
    replicas = replica_pids(f"qa-{build}-000:")
    assert len(replicas) == 2, replicas
    results, errors, stop = _load(server.url, clients=8)
    try:
        wait_until(lambda: len(results) >= 16, 120)
        os.kill(replicas[0], signal.SIGKILL)
        killed_at = len(results)
        wait_until(lambda: len(results) >= killed_at + 40, 120)
        wait_until(lambda: len(replica_pids(f"qa-{build}-000:")) == 2, 120)  # Serve started a replacement
    finally:
        stop.set()
    assert not errors, errors
    failed = [(status, detail) for _, status, detail, _ in results if status != 200]
    assert not failed, failed[:3]
    assert replicas[0] not in replica_pids(f"qa-{build}-000:")


def _load(url: str, clients: int):
    """``clients`` threads asking in a loop until ``stop`` is set; (question, status, build or detail, passages)."""
    results: list[tuple] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client(n: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=120) as http:
                i = n
                while not stop.is_set():
                    question = QUESTIONS[i % len(QUESTIONS)]
                    results.append((question, *ask(http, question)))
                    i += 1
        except BaseException as exc:  # any transport error fails the test
            errors.append(exc)

    for n in range(clients):
        threading.Thread(target=client, args=(n,), daemon=True).start()
    return results, errors, stop


def _same(got: list[tuple], want: list[tuple]) -> bool:
    return [p[:4] for p in got] == [p[:4] for p in want] and all(
        abs(a[4] - b[4]) <= 1e-5 for a, b in zip(got, want, strict=True)
    )


def test_only_shard_applications_count_as_old_builds():
    from service.cluster import SHARD_APP

    assert SHARD_APP.fullmatch("qa-20261201T163051-cd2cce88-000")
    for other in ("qa-bench-echo", "bench-echo", "qa-20261201T163051-cd2cce88", "my-app", "qa-x-000"):
        assert not SHARD_APP.fullmatch(other)
