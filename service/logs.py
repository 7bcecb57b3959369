"""Request ids, per-request metrics and JSON request logs, in one pure-ASGI middleware.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs the app
in a task of its own and streams the response through a queue: a cost on
every /ask. The work per request is a header scan, a clock read, a counter
and, with JSON logs on, one line. What the log says of an /ask (k, the
question's length, the filters' keys) comes from the body the route already
parsed (``note_ask``), never from a second parse here.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import UNMATCHED, Metrics

log = logging.getLogger(__name__)
requests_log = logging.getLogger("qa.requests")  # one JSON object a line, with QA_LOG_FORMAT=json

ID_HEADER = b"x-request-id"  # X-Request-ID, as ASGI spells header names
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CLIENT_LEFT = 499  # status recorded when the client went away before any response (nginx's convention)


def request_id(given: bytes | None, secret: str | None = None) -> str:
    """The client's id when it is a sane token (and not the API token), a new uuid4 hex otherwise."""
    if given:
        text = given.decode("latin-1")
        if SANE_ID.fullmatch(text) and not (secret and secrets.compare_digest(text.encode(), secret.encode())):
            return text
    return uuid.uuid4().hex


def note_ask(request: Request, body: object) -> None:
    """Keep the parsed /ask body for the request log (read only if a line is written)."""
    request.state.qa_ask = body  # lands in scope["state"], where the middleware reads it


def filter_keys(filters: object) -> list[str]:
    """The keys of an /ask ``filters`` object (a dict or a pydantic model), sorted; [] when absent."""
    if filters is None:
        return []
    if isinstance(filters, dict):
        return sorted(filters)
    dump = getattr(filters, "model_dump", None)
    return sorted(dump(exclude_unset=True, exclude_none=True)) if dump else []


def route_of(scope: Scope, routes: Sequence[BaseRoute] = (), root_path: str = "") -> str:
    """The template of the route that took the request (``/documents/{doc_id}``), never the raw path.

    FastAPI records its own routes in the scope, not Starlette's (``/docs``, the
    ``/static`` mount): those are matched again, on the path alone.
    """
    route = scope.get("route")
    if route is None:
        probe = {"type": "http", "path": scope["path"], "root_path": root_path, "method": scope["method"]}
        route = next((each for each in routes if each.matches(probe)[0] is not Match.NONE), None)
    return getattr(route, "path_format", None) or UNMATCHED


class RequestObserver:
    """Gives each request an id (echoed in ``X-Request-ID``), counts it, and logs it as JSON if asked."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, json_log: bool = False, questions: bool = False,
        secret: str | None = None, routes: Sequence[BaseRoute] = (),
    ) -> None:  # fmt: skip
        self.app = app
        self.routes = routes  # the app's, to name the routes FastAPI leaves out of the scope
        self.metrics = metrics
        self.json_log = json_log
        self.questions = questions
        self.secret = secret
        if json_log:
            _log_to_stderr()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        root_path = scope.get("root_path", "")  # as it arrived: a mount changes it
        given = next((value for name, value in scope["headers"] if name == ID_HEADER), None)
        rid = request_id(given, self.secret)
        scope.setdefault("state", {})["request_id"] = rid  # for the app's own log lines
        status = CLIENT_LEFT
        id_header = (ID_HEADER, rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status != CLIENT_LEFT:
                raise  # the response has begun: nothing better to send
            log.exception("request %s failed", rid)
            await _internal_error(send_with_id, rid)
        finally:
            self._record(scope, root_path, rid, status, time.perf_counter() - began)

    def _record(self, scope: Scope, root_path: str, rid: str, status: int, seconds: float) -> None:
        route = route_of(scope, self.routes, root_path)
        self.metrics.request(scope["method"], route, status, seconds)
        if self.json_log:
            requests_log.info(self._line(scope, rid, route, status, seconds))

    def _line(self, scope: Scope, rid: str, route: str, status: int, seconds: float) -> str:
        ask = scope["state"].get("qa_ask")
        question = getattr(ask, "question", None)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": rid,
            "method": scope["method"],
            "route": route,
            "status": status,
            "took_ms": round(seconds * 1000, 2),
            "k": getattr(ask, "k", None),
            "question_chars": len(question) if question is not None else None,
            "filter_keys": filter_keys(getattr(ask, "filters", None)),
        }
        if self.questions and question is not None:
            line["question"] = question
        return json.dumps(line, ensure_ascii=False)


def _log_to_stderr() -> None:
    """Send the request log's lines, bare, to stderr (once, however many apps are made)."""
    requests_log.setLevel(logging.INFO)
    requests_log.propagate = False  # not through the root logger's "LEVEL: " format
    if not any(isinstance(handler, _StderrLines) for handler in requests_log.handlers):
        handler = _StderrLines(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        requests_log.addHandler(handler)


class _StderrLines(logging.StreamHandler):
    pass


async def _internal_error(send: Send, rid: str) -> None:
    body = json.dumps({"detail": f"internal error: see the server log for request {rid}"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
