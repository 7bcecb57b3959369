"""`qa serve --cluster local` starts a Ray instance of its own, as `qa build --cluster local` does.

Ray joins whatever RAY_ADDRESS names unless it is told to start a new instance, so a user with
RAY_ADDRESS set for another purpose would have served on that cluster, or failed to reach it.
"""

from __future__ import annotations

import httpx
import pytest

from tests.test_cluster_serving import ask, cluster_server, sharded_corpus
from tests.test_reliability_serve import QUESTIONS

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_serving_on_a_local_cluster_ignores_ray_address(ray_cluster, tmp_path, encoder):
    # ray_cluster: only for its checks (Ray installed, a private network namespace); nothing listens on port 1
    sharded_corpus(tmp_path, encoder)
    with cluster_server(tmp_path, "local", 1, "serve.log", RAY_ADDRESS="127.0.0.1:1") as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            status, _, passages = ask(http, QUESTIONS[0])
        assert status == 200 and passages, server.log()
        assert server.terminate(60) == 0  # a clean stop, as without --cluster
