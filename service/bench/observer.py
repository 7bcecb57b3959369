"""What the request observer (request id, metrics, JSON log) costs per request.

``python -m service.bench.observer`` calls a trivial endpoint through ASGI,
with no server and no network, bare and behind ``RequestObserver``, and prints
the microseconds per request of each (the median of several rounds, taken in
turn so that a noisy machine weighs on all alike). The difference is the
middleware's own cost, to set against the milliseconds of an /ask.
"""

from __future__ import annotations

import asyncio
import io
import logging
import statistics
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.logs import RequestObserver, requests_log
from service.metrics import Metrics

HEADERS = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", b"2")]


async def _endpoint(request: Request) -> Response:
    return Response(b"{}", media_type="application/json")


def _scope() -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/ask", "raw_path": b"/ask", "root_path": "", "query_string": b"", "headers": list(HEADERS),
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    }  # fmt: skip


async def _per_request(app, requests: int) -> float:
    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        pass

    began = time.perf_counter()
    for _ in range(requests):
        await app(_scope(), receive, send)
    return (time.perf_counter() - began) / requests * 1e6


def measure(requests: int = 20_000, rounds: int = 5) -> dict[str, float]:
    """Microseconds per request: bare, with the observer, and with the observer writing JSON lines."""
    bare = Starlette(routes=[Route("/ask", _endpoint, methods=["POST"])])
    apps = {
        "bare": bare,
        "observer": RequestObserver(bare, Metrics()),
        "observer + JSON log": RequestObserver(bare, Metrics(), json_log=True),
    }
    for handler in requests_log.handlers:  # the lines go to memory, not to the terminal
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(io.StringIO())
    times: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            times[name].append(asyncio.run(_per_request(app, requests)))
    return {name: statistics.median(each) for name, each in times.items()}


if __name__ == "__main__":
    for name, micros in measure().items():
        print(f"{name:20s} {micros:6.1f} µs per request")
