"""Prometheus metrics of one app, served at ``GET /metrics``.

Every metric is recorded in the HTTP process, in a registry of the app's own
(tests create several apps in one process). With ``qa serve --workers N`` the
searches run in other processes, yet the view stays whole without
prometheus-client's multiprocess mode (a shared directory of files, written
by every process and merged at each scrape, with its own limits on gauges):
each search process sends its stage times back with the answer it already
returns, and the HTTP process, which sees every request, every answer, every
pool restart and every rebuild, records them all. The live index's figures
are asked of a search process at scrape time.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from index.searcher import StageTimes

CONTENT_TYPE = CONTENT_TYPE_LATEST
STAGES = ("encode", "retrieve", "fuse", "highlight")
UNMATCHED = "(unmatched)"  # the route label of a request that matched no route

ASK_BUCKETS = (0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """The metrics of one app and the calls that record them."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they double a scrape and few dashboards use them
        self.registry = registry = CollectorRegistry()
        self._requests = Counter(
            "qa_http_requests", "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"], registry=registry,
        )  # fmt: skip
        self._ask = Histogram(
            "qa_ask_duration_seconds", "Time to answer POST /ask in the HTTP process, queueing included.",
            buckets=ASK_BUCKETS, registry=registry,
        )  # fmt: skip
        stage = Histogram(
            "qa_search_stage_duration_seconds", "Time of each search stage per answered question.",
            ["stage"], buckets=STAGE_BUCKETS, registry=registry,
        )  # fmt: skip
        self._stages = [stage.labels(name) for name in STAGES]  # children looked up once, not per request
        self._documents = Gauge("qa_index_documents", "Documents in the live index.", registry=registry)
        self._passages = Gauge("qa_index_passages", "Passages in the live index.", registry=registry)
        self._built = Gauge(
            "qa_index_built_timestamp_seconds", "When the live index was built (by this server or not).",
            registry=registry,
        )  # fmt: skip
        self._index = Info("qa_index", "The live index: its build folder and model.", registry=registry)
        self._rebuilds = Counter(
            "qa_rebuilds", "POST /index/rebuild runs by outcome: ok, failed, or busy (one was running).",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self._rebuild_seconds = Gauge(  # one series, labelled with its outcome, once a rebuild has run
            "qa_rebuild_last_duration_seconds", "Duration of the last rebuild this server ran, by its outcome.",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self._rebuild_ended = Gauge(
            "qa_rebuild_last_end_timestamp_seconds", "When the last rebuild this server ran ended.", registry=registry
        )
        self._alive = Gauge("qa_search_processes", "Processes that can search now.", registry=registry)
        self._restarts = Counter(
            "qa_search_process_restarts", "Search processes started to replace a pool that lost one.",
            registry=registry,
        )  # fmt: skip
        self._restarts_counted = 0
        self._index.info({"build": "", "model": ""})

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        if route == "/ask":
            self._ask.observe(seconds)

    def stages(self, stages: StageTimes) -> None:
        for child, seconds in zip(self._stages, (stages.encode, stages.retrieve, stages.fuse, stages.highlight),
                                  strict=True):  # fmt: skip
            child.observe(seconds)

    def rebuild(self, outcome: str, seconds: float, ended: float) -> None:
        """Count a rebuild; ``outcome`` 'busy' (refused while another ran) leaves the last-rebuild gauges."""
        self._rebuilds.labels(outcome).inc()
        if outcome != "busy":
            self._rebuild_seconds.clear()
            self._rebuild_seconds.labels(outcome).set(seconds)
            self._rebuild_ended.set(ended)

    def index(self, health: dict) -> None:
        """The live index's figures, from a ``/health`` answer."""
        self._documents.set(health.get("documents", 0))
        self._passages.set(health.get("chunks", 0))
        self._index.info({"build": health.get("build") or "", "model": health.get("model") or ""})
        built = health.get("index_built_at")
        self._built.set(datetime.fromisoformat(built).timestamp() if built else 0)

    def processes(self, alive: int, restarts: int) -> None:
        self._alive.set(alive)
        if restarts > self._restarts_counted:  # the backend keeps the count; the counter follows it
            self._restarts.inc(restarts - self._restarts_counted)
            self._restarts_counted = restarts

    def render(self) -> bytes:
        return generate_latest(self.registry)
