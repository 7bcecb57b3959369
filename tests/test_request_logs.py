"""Request ids and JSON request logs: the pure functions, an in-process server, and a real `qa serve`."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from index.build.builder import build_index
from service.app import create_app
from service.logs import SANE_ID, filter_keys, request_id
from tests.conftest import LiveServer, make_corpus, make_settings
from tests.helpers import QAServe

TOKEN = "tok-Abc123.secret"
ASK = {"question": "Who mediated the talks?", "k": 2}
FIELDS = {"time", "request_id", "method", "route", "status", "took_ms", "k", "question_chars", "filter_keys"}
GENERATED = re.compile(r"[0-9a-f]{32}")


# ---------------------------------------------------------------- pure functions


@pytest.mark.parametrize("given", [b"abc", b"client-42", b"a.b:c_d-E", b"x" * 128])
def test_a_sane_request_id_is_kept(given):
    assert request_id(given) == given.decode()


@pytest.mark.parametrize("given", [None, b"", b"x" * 129, b"has space", b"semi;colon", b"caf\xc3\xa9", b"a\nb", b"{}"])
def test_an_absent_or_insane_request_id_is_replaced_by_a_uuid4_hex(given):
    made = request_id(given)
    assert GENERATED.fullmatch(made) and made != request_id(given)


def test_the_api_token_is_never_taken_as_a_request_id():
    assert SANE_ID.fullmatch(TOKEN)
    assert GENERATED.fullmatch(request_id(TOKEN.encode(), secret=TOKEN))
    assert request_id(TOKEN.encode(), secret="another") == TOKEN


def test_filter_keys_of_a_dict_a_model_or_nothing():
    class Filters(BaseModel):
        lang: list[str] | None = None
        published: dict | None = None
        doc_id: list[str] | None = None

    assert filter_keys(None) == []
    assert filter_keys({"published": {}, "lang": ["fr"]}) == ["lang", "published"]
    assert filter_keys(Filters(lang=["fr"], doc_id=None)) == ["lang"]
    assert filter_keys(object()) == []


# ---------------------------------------------------------------- an in-process server with JSON logs


class Lines(logging.Handler):
    """The JSON request-log lines, as dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))

    def of(self, rid: str) -> dict:
        """The line of request ``rid``: written just after the response, so perhaps not yet."""
        deadline = time.monotonic() + 10
        while not (found := [line for line in self.lines if line["request_id"] == rid]):
            assert time.monotonic() < deadline, f"no log line for request {rid}"
            time.sleep(0.01)
        [line] = found
        return line


@pytest.fixture(scope="module")
def logged(built, encoder) -> Iterator[tuple[LiveServer, Lines]]:
    lines = Lines()
    requests_log = logging.getLogger("qa.requests")
    requests_log.addHandler(lines)
    settings = built.model_copy(update={"log_format": "json"})
    try:
        with LiveServer(settings, encoder) as live:
            yield live, lines
    finally:
        requests_log.removeHandler(lines)


def test_an_ask_logs_one_line_with_every_field_and_no_question(logged):
    live, lines = logged
    response = httpx.post(f"{live.url}/ask", json=ASK, headers={"X-Request-ID": "client-42"}, timeout=30)
    assert response.status_code == 200 and response.headers["x-request-id"] == "client-42"
    line = lines.of("client-42")
    assert set(line) == FIELDS
    assert line | {"method": "POST", "route": "/ask", "status": 200, "k": 2, "question_chars": 23} == line
    assert line["filter_keys"] == [] and line["took_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "mediated" not in json.dumps(lines.lines)


def test_ids_are_generated_or_replaced_and_echoed_on_errors_too(logged):
    live, lines = logged
    with httpx.Client(base_url=live.url, timeout=30) as http:
        plain = http.post("/ask", json=ASK)
        insane = http.post("/ask", json=ASK, headers={"X-Request-ID": "not a sane id"})
        invalid = http.post("/ask", json={"question": ""}, headers={"X-Request-ID": "bad-body"})
        missing = http.get("/documents/nope.txt", headers={"X-Request-ID": "doc-1"})
        unknown = http.get("/no/such/route")
        too_big = http.post("/ask", content=b"x" * 70_000, headers={"content-type": "application/json"})
    for response in (plain, insane, unknown, too_big):
        assert GENERATED.fullmatch(response.headers["x-request-id"])
    assert insane.headers["x-request-id"] != "not a sane id"
    assert (invalid.status_code, invalid.headers["x-request-id"]) == (422, "bad-body")
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "doc-1")
    assert lines.of("bad-body") | {"route": "/ask", "status": 422, "k": None, "question_chars": None} == lines.of(
        "bad-body"
    )
    assert lines.of("doc-1") | {"route": "/documents/{doc_id}", "status": 404} == lines.of("doc-1")
    assert lines.of(unknown.headers["x-request-id"])["route"] == "(unmatched)"
    assert lines.of(too_big.headers["x-request-id"])["status"] == 413


def test_the_bearer_token_never_reaches_the_log(logged):
    live, lines = logged
    token = live.state.settings.api_token.get_secret_value()
    for header in (f"Bearer {token}x", f"Basic {token}"):  # refused: the shared index is not rebuilt
        response = httpx.post(f"{live.url}/index/rebuild", headers={"Authorization": header, "X-Request-ID": token})
        assert response.status_code in (401, 403) and response.headers["x-request-id"] != token
    assert token not in json.dumps(lines.lines)


def test_the_keys_of_the_filters_are_logged(logged):
    live, lines = logged
    body = {**ASK, "filters": {"lang": ["fr"]}}
    response = httpx.post(f"{live.url}/ask", json=body, headers={"X-Request-ID": "filtered"}, timeout=30)
    assert response.status_code == 200, response.text
    assert lines.of("filtered")["filter_keys"] == ["lang"]


def test_an_unhandled_error_is_a_500_that_still_carries_the_request_id(tmp_path, caplog):
    app = create_app(make_settings(tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http:
            return await http.get("/boom", headers={"X-Request-ID": "boom-1"})

    response = asyncio.run(call())
    assert response.status_code == 500 and response.headers["x-request-id"] == "boom-1"
    assert "boom-1" in response.json()["detail"] and "request boom-1 failed" in caplog.text


# ---------------------------------------------------------------- a real `qa serve`


def json_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def index(tmp_path_factory, encoder) -> Path:
    tmp = tmp_path_factory.mktemp("logs")
    make_corpus(tmp / "corpus")
    settings = make_settings(tmp)
    build_index(settings, encoder, show_progress=False)
    return settings.index_dir


@pytest.mark.slow
def test_qa_serve_access_log_json_writes_json_lines_and_no_plain_ones(index, tmp_path):
    with QAServe(index, tmp_path / "serve.log", "--access-log", "json", QA_API_TOKEN=TOKEN) as server:
        asked = httpx.post(f"{server.url}/ask", json=ASK, headers={"X-Request-ID": "real-1"}, timeout=60)
        refused = httpx.post(f"{server.url}/index/rebuild", headers={"Authorization": f"Bearer {TOKEN}0"})
        assert asked.status_code == 200 and refused.status_code == 403
        assert server.terminate() == 0
        log = server.log()
    lines = {line["request_id"]: line for line in json_lines(log)}
    assert set(lines["real-1"]) == FIELDS and lines["real-1"]["question_chars"] == len(ASK["question"])
    assert lines[refused.headers["x-request-id"]]["status"] == 403
    assert TOKEN not in log and ASK["question"] not in log
    assert '"POST /ask HTTP/1.1" 200' not in log  # uvicorn's plain line is replaced, not doubled


@pytest.mark.slow
def test_qa_log_questions_adds_the_question_and_the_bare_flag_follows_qa_log_format(index, tmp_path):
    env = {"QA_LOG_FORMAT": "json", "QA_LOG_QUESTIONS": "1"}
    with QAServe(index, tmp_path / "serve.log", "--access-log", **env) as server:
        httpx.post(f"{server.url}/ask", json=ASK, headers={"X-Request-ID": "real-2"}, timeout=60)
        assert server.terminate() == 0
        log = server.log()
    [line] = [line for line in json_lines(log) if line["request_id"] == "real-2"]
    assert line["question"] == ASK["question"] and set(line) == {*FIELDS, "question"}
    assert '"POST /ask HTTP/1.1" 200' not in log
