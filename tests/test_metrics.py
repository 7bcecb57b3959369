"""GET /metrics: names, types and labels as Prometheus parses them, stage times, and one view of N processes."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from index.build.builder import build_index
from index.config import DEFAULT_MODEL
from index.searcher import Searcher
from service.metrics import Metrics
from service.state import ServiceState
from tests.conftest import LiveServer, make_corpus, make_settings
from tests.helpers import QAServe
from tests.test_serve_workers import search_processes

ASK = {"question": "Who mediated the talks?", "k": 2}
TYPES = {
    "qa_http_requests": "counter",
    "qa_ask_duration_seconds": "histogram",
    "qa_search_stage_duration_seconds": "histogram",
    "qa_index_documents": "gauge",
    "qa_index_passages": "gauge",
    "qa_index_built_timestamp_seconds": "gauge",
    "qa_index_info": "gauge",  # an Info metric, which the text format declares as a gauge
    "qa_rebuilds": "counter",
    "qa_rebuild_last_duration_seconds": "gauge",
    "qa_rebuild_last_end_timestamp_seconds": "gauge",
    "qa_search_processes": "gauge",
    "qa_search_process_restarts": "counter",
}
Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """The type of each metric family, and each sample's value by (name, labels)."""
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=60)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return parse(response.text)[1]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def stage_counts(samples: Samples) -> dict[str, float]:
    return {stage: value(samples, "qa_search_stage_duration_seconds_count", stage=stage)
            for stage in ("encode", "retrieve", "fuse", "highlight")}  # fmt: skip


# ---------------------------------------------------------------- the Metrics object


def test_every_metric_parses_with_its_type_and_labels():
    from index.searcher import StageTimes

    metrics = Metrics()
    metrics.request("POST", "/ask", 200, 0.012)
    metrics.request("GET", "/documents/{doc_id}", 404, 0.001)
    metrics.stages(StageTimes(0.004, 0.002, 0.0005, 0.001))
    metrics.index({"documents": 3, "chunks": 7, "build": "20260101T000000-abc", "model": "usem3",
                   "index_built_at": "2026-01-01T00:00:00+00:00"})  # fmt: skip
    metrics.rebuild("failed", 1.5, 1_700_000_000.0)
    metrics.rebuild("ok", 2.5, 1_700_000_100.0)
    metrics.rebuild("busy", 0.001, 1_700_000_200.0)
    metrics.processes(alive=2, restarts=2)
    metrics.processes(alive=2, restarts=2)  # the backend's running count: not added twice

    types, samples = parse(metrics.render().decode())
    assert types == TYPES
    assert value(samples, "qa_http_requests_total", method="POST", route="/ask", status="200") == 1
    assert value(samples, "qa_http_requests_total", method="GET", route="/documents/{doc_id}", status="404") == 1
    assert value(samples, "qa_ask_duration_seconds_count") == 1  # /ask only
    assert value(samples, "qa_ask_duration_seconds_bucket", le="0.015") == 1
    assert stage_counts(samples) == {"encode": 1, "retrieve": 1, "fuse": 1, "highlight": 1}
    assert value(samples, "qa_search_stage_duration_seconds_sum", stage="encode") == 0.004
    assert value(samples, "qa_index_documents") == 3 and value(samples, "qa_index_passages") == 7
    assert value(samples, "qa_index_info", build="20260101T000000-abc", model="usem3") == 1
    assert value(samples, "qa_index_built_timestamp_seconds") == 1767225600
    assert [value(samples, "qa_rebuilds_total", outcome=o) for o in ("ok", "failed", "busy")] == [1, 1, 1]
    assert value(samples, "qa_rebuild_last_duration_seconds", outcome="ok") == 2.5
    assert ("qa_rebuild_last_duration_seconds", frozenset({("outcome", "failed")})) not in samples  # one series
    assert value(samples, "qa_rebuild_last_end_timestamp_seconds") == 1_700_000_100.0  # "busy" ran nothing
    assert value(samples, "qa_search_processes") == 2 and value(samples, "qa_search_process_restarts_total") == 2


def test_each_app_has_a_registry_of_its_own():
    first, second = Metrics(), Metrics()
    first.request("GET", "/health", 200, 0.001)
    assert value(parse(second.render().decode())[1], "qa_http_requests_total", method="GET", route="/health",
                 status="200") == 0  # fmt: skip


# ---------------------------------------------------------------- stage times from the searcher


def test_the_searcher_times_each_stage_within_the_whole(built, encoder):
    state = ServiceState(built, encoder)
    state.load(missing_ok=False)
    searcher: Searcher = state.searcher
    results = [searcher.search("Who mediated the talks?", 3), *searcher.search_batch([("Qui ?", 2), ("Lyon", 1)])]
    for result in results:
        stages = result.stages
        parts = [stages.encode, stages.retrieve, stages.fuse, stages.highlight]
        assert all(part > 0 for part in parts)
        assert sum(parts) <= result.took_ms / 1000 + 1e-6


# ---------------------------------------------------------------- one process, over HTTP


def test_metrics_over_http_count_routes_by_template(client):
    before = scrape(str(client.base_url))
    client.post("/ask", json=ASK)
    client.post("/ask", json={"question": ""})
    client.get("/documents/weather.en.txt")
    client.get("/documents/notes/cuisine.fr.md")
    client.get("/no/such/page")
    client.get("/openapi.json")
    client.get("/static/no-such-file.css")
    after = scrape(str(client.base_url))

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("qa_http_requests_total", method="POST", route="/ask", status="200") == 1
    assert delta("qa_http_requests_total", method="POST", route="/ask", status="422") == 1
    assert delta("qa_http_requests_total", method="GET", route="/documents/{doc_id}", status="200") == 2
    assert delta("qa_http_requests_total", method="GET", route="(unmatched)", status="404") == 1
    assert delta("qa_http_requests_total", method="GET", route="/openapi.json", status="200") == 1  # Starlette's
    assert delta("qa_http_requests_total", method="GET", route="/static/{path}", status="404") == 1  # a mount
    assert delta("qa_http_requests_total", method="GET", route="/metrics", status="200") == 1  # the first scrape
    assert delta("qa_ask_duration_seconds_count") == 2
    assert delta("qa_search_stage_duration_seconds_count", stage="encode") == 1  # the 422 never searched
    assert value(after, "qa_index_documents") == 3 and value(after, "qa_search_processes") == 1
    build = client.get("/health").json()["build"]
    assert value(after, "qa_index_info", build=build, model=DEFAULT_MODEL) == 1


def test_a_rebuild_sets_its_duration_and_outcome(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path, api_token="tok-metrics")
    build_index(settings, encoder, show_progress=False)
    admin = {"Authorization": "Bearer tok-metrics"}
    with LiveServer(settings, encoder) as live, httpx.Client(base_url=live.url, timeout=120) as http:
        assert ("qa_rebuild_last_duration_seconds", frozenset({("outcome", "ok")})) not in scrape(live.url)
        assert http.post("/index/rebuild", headers=admin).status_code == 200
        samples = scrape(live.url)
        assert value(samples, "qa_rebuilds_total", outcome="ok") == 1
        assert value(samples, "qa_rebuild_last_duration_seconds", outcome="ok") > 0
        assert value(samples, "qa_index_info", build=http.get("/health").json()["build"], model=DEFAULT_MODEL) == 1

        for path in (tmp_path / "corpus").rglob("*.*"):
            path.unlink()
        assert http.post("/index/rebuild", headers=admin).status_code == 409  # an empty corpus
        samples = scrape(live.url)
        assert value(samples, "qa_rebuilds_total", outcome="failed") == 1
        assert value(samples, "qa_rebuild_last_duration_seconds", outcome="failed") > 0
        assert ("qa_rebuild_last_duration_seconds", frozenset({("outcome", "ok")})) not in samples
        assert value(samples, "qa_index_documents") == 3  # the old index still answers


# ---------------------------------------------------------------- `qa serve --workers 2`: one view


@pytest.mark.slow
def test_two_search_processes_give_one_coherent_view_and_count_restarts(tmp_path, encoder):
    make_corpus(tmp_path / "corpus")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    questions = ["Who mediated the talks?", "Qui accompagne Steve Witkoff ?", "Will it rain in the Alps?"] * 4
    server = QAServe(settings.index_dir, tmp_path / "serve.log", "--workers", "2")
    try:
        server.wait_ready()
        with ThreadPoolExecutor(4) as pool:  # concurrent, so both search processes answer, some in batches
            statuses = list(pool.map(lambda q: httpx.post(f"{server.url}/ask", json={"question": q},
                                                          timeout=60).status_code, questions))  # fmt: skip
        assert statuses == [200] * len(questions)
        samples = scrape(server.url)
        assert value(samples, "qa_http_requests_total", method="POST", route="/ask", status="200") == len(questions)
        assert value(samples, "qa_ask_duration_seconds_count") == len(questions)
        assert stage_counts(samples) == dict.fromkeys(("encode", "retrieve", "fuse", "highlight"), len(questions))
        assert value(samples, "qa_search_processes") == 2 and value(samples, "qa_search_process_restarts_total") == 0
        assert value(samples, "qa_index_documents") == 3

        before = search_processes(server.proc.pid)
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while value(samples := scrape(server.url), "qa_search_process_restarts_total") < 2 or value(
            samples, "qa_search_processes"
        ) < 2:  # a scrape asks the pool for the index figures, which finds it broken and replaces it
            assert time.monotonic() < deadline, f"no restart seen:\n{server.log()}"
            time.sleep(0.3)
        assert value(samples, "qa_search_process_restarts_total") == 2  # both processes of the broken pool
        assert not set(search_processes(server.proc.pid)) & set(before)
        assert server.terminate() == 0
    finally:
        server.close()


def test_docs_operations_names_every_metric():
    text = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    metrics = Metrics()
    metrics.rebuild("ok", 1.0, 1.0)  # the one series that appears only after a rebuild
    names = set(parse(metrics.render().decode())[0])  # family names, counters without their _total
    documented = {name.removesuffix("_total") for name in re.findall(r"`(qa_\w+)`", text)}
    assert names <= documented, f"not in docs/operations.md: {sorted(names - documented)}"
