"""`qa serve --cluster` with one replica per shard: a shard that stops answering gets a 503 naming it within
the shard timeout, never a hang; killed, Serve replaces it and answers come back.

Its own file, so that its server starts after test_cluster_serving.py's has stopped (one `qa serve
--cluster` per Ray cluster: both would deploy under the same application names).
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.test_cluster_serving import QUESTIONS, cluster_server, replica_pids, sharded_corpus

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
TIMEOUT = 2.0


def test_with_one_replica_a_dead_shard_answers_503_naming_it_within_the_timeout(ray_cluster, tmp_path, encoder):
    sharded_corpus(tmp_path, encoder)
    server = cluster_server(tmp_path, ray_cluster.address, 1, "serve.log", QA_SHARD_TIMEOUT=str(TIMEOUT))
    with server, httpx.Client(base_url=server.url, timeout=60) as http:
        build = http.get("/health").json()["build"]
        assert http.post("/ask", json={"question": QUESTIONS[0]}).status_code == 200
        [replica] = replica_pids(f"qa-{build}-000:")
        os.kill(replica, signal.SIGSTOP)  # hung: it holds its calls and answers none
        try:
            hung = [_timed(http, question) for question in QUESTIONS[:3]]
        finally:
            os.kill(replica, signal.SIGKILL)  # dead: Serve starts another
        recovered = _until_ok(http, 120)
        assert replica not in replica_pids(f"qa-{build}-000:")
        server.terminate(60)
    for status, took, body in hung:
        assert status == 503 and "shard 0 " in body["detail"] and "down" in body["detail"], body
        assert took < TIMEOUT + 3  # the timeout, plus the rest of the request on a loaded machine
    assert all(status in (200, 503) for status, _, _ in recovered), recovered
    assert all(took < TIMEOUT + 3 for _, took, _ in recovered)


def _timed(http: httpx.Client, question: str) -> tuple[int, float, dict]:
    began = time.monotonic()
    response = http.post("/ask", json={"question": question})
    return response.status_code, time.monotonic() - began, response.json()


def _until_ok(http: httpx.Client, timeout: float) -> list[tuple[int, float, dict]]:
    """Ask until an answer comes (every outcome meanwhile)."""
    outcomes = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcomes.append(_timed(http, QUESTIONS[len(outcomes) % len(QUESTIONS)]))
        if outcomes[-1][0] == 200:
            return outcomes
    raise AssertionError(f"the shard did not come back in {timeout} s: {outcomes[-1]}")
