"""Reliability of the HTTP API over real HTTP: fuzzing, hostile input, authentication, concurrent clients.

The plain 422/404/401 cases live in test_api.py; these tests add what an attacker or a crowd would send.
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error

from index.config import Settings
from service.app import create_app, require_admin
from tests.conftest import SEED, LiveServer

TOKEN = "s3cret-token"  # the `built` fixture's token


# ---------------------------------------------------------------- schemathesis: no input makes a 5xx


# The schema is the app's own OpenAPI document (no index is needed to produce it); the requests go over
# HTTP to the live server. (schemathesis.pytest.from_fixture does not run under pytest 9.)
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(
    max_examples=75,  # per operation (positive and negative data mixed): about 230 requests in all
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_never_cause_a_server_error(case, server):
    response = case.call(base_url=server.url, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])


# ---------------------------------------------------------------- hostile bodies


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """Send bytes exactly as given (no client normalisation); the status and the raw response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?i)content-length: *(\d+)", head)
    return len(head) + 4 + int(found.group(1)) if found else sys.maxsize


def test_body_over_64_kib_is_413_with_or_without_content_length(client, server):
    big = json.dumps({"question": "x" * 70_000}).encode()
    declared = client.post("/ask", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "64 KiB" in declared.json()["detail"]

    def chunks():
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    chunked = client.post("/ask", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and "64 KiB" in chunked.json()["detail"]

    # A header announcing a gigabyte is refused at once, before any body is sent.
    status, _ = raw_request(
        server.port,
        b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
        timeout=10,
    )
    assert status == 413
    assert client.post("/ask", json={"question": "Who mediated the talks?"}).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":' * 12_000 + b"1" + b"}" * 12_000,  # objects nested 12 000 deep, under 64 KiB
        b'{"question": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        b'{"question": "caf\xe9 cr\xe8me"}',  # Latin-1 bytes, not UTF-8
        b'{"question": "\xed\xa0\x80 surrogate as bytes"}',
        b'{"question": "\\ud800 lone surrogate"}',
        b'\x00\x00\x00{"question": "x"}',
    ],
    ids=["nested-objects", "nested-arrays", "latin1", "utf8-surrogate", "json-surrogate", "leading-nul"],
)
def test_hostile_json_is_a_4xx_and_the_server_keeps_answering(client, raw):
    response = client.post("/ask", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text[:200]
    assert response.json()["detail"]
    assert client.post("/ask", json={"question": "Who mediated the talks?"}).status_code == 200


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\x9f"])
def test_control_characters_and_null_bytes_in_questions_are_refused(client, char):
    response = client.post("/ask", json={"question": f"Who{char}mediated the talks?"})
    assert response.status_code == 422 and "control characters" in response.json()["detail"]


def test_tabs_newlines_and_unusual_unicode_are_fine(client):
    for question in ("Who\tmediated\r\nthe talks?", "Qui a \u2028servi de médiateur ?", "\ufeff¿Quién? 😀"):
        response = client.post("/ask", json={"question": question})
        assert response.status_code == 200, question
        assert response.json()["question"] == question.strip()


@pytest.mark.parametrize("k", ["5", "five", 2.5, 3.0, -1, 0, True, None, 10**30, [5], {"n": 5}])
def test_k_must_be_a_plain_integer_in_range(client, k):
    response = client.post("/ask", json={"question": "Who mediated the talks?", "k": k})
    assert response.status_code == 422 and response.json()["detail"].startswith("k:")


# ---------------------------------------------------------------- document ids never reach the file system

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None:
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while _opened is a list


def test_document_ids_are_looked_up_in_memory_never_opened(server):
    global _opened
    hostile = [
        b"/documents/../../../../etc/passwd",
        b"/documents/..%2F..%2F..%2Fetc%2Fpasswd",
        b"/documents/%2Fetc%2Fpasswd",
        b"/documents//etc/passwd",
        b"/documents/notes/../../pyproject.toml",
        b"/documents/" + str(SEED).encode(),  # the absolute path of a real corpus file
        b"/documents/%00",
        b"/documents/~root/.ssh/id_rsa",
    ]
    statuses = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=30):
        pass  # warm the listener; connect before recording
    _opened = []
    try:
        for path in hostile:
            statuses.append(raw_request(server.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"))
    finally:
        opened, _opened = _opened, None
    for path, (status, data) in zip(hostile, statuses, strict=True):
        assert status == 404, path
        assert b"root:" not in data and b"[project]" not in data
    assert opened == [], f"handlers opened files: {opened}"


# ---------------------------------------------------------------- authentication


def test_admin_token_is_checked_in_constant_time(client, monkeypatch):
    source = inspect.getsource(require_admin)
    assert "secrets.compare_digest(" in source and "== token" not in source and "token ==" not in source
    calls = []
    real = secrets.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets, "compare_digest", spy)
    for guess in ("wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        response = client.post("/index/rebuild", headers={"Authorization": f"Bearer {guess}"})
        assert response.status_code == 403
        assert TOKEN not in response.text and guess not in response.text
    assert len(calls) == 4 and all(b == TOKEN.encode() for _, b in calls)


def test_admin_endpoints_401_without_token_403_with_wrong_one(client):
    for headers in ({}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}):
        response = client.post("/index/rebuild", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in response.text
    response = client.post("/index/rebuild", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 403 and TOKEN not in response.text


@pytest.mark.parametrize("token", [None, ""])
def test_admin_endpoints_are_disabled_without_a_token(built, encoder, token):
    settings = built.model_copy(update={"api_token": None if token is None else SecretStr(token)})
    with LiveServer(settings, encoder) as live, httpx.Client(base_url=live.url) as http:
        before = live.state.searcher
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer anything"}):
            response = http.post("/index/rebuild", headers=headers)
            assert response.status_code == 403 and "disabled" in response.json()["detail"]
        assert live.state.searcher is before  # nothing was rebuilt


# ---------------------------------------------------------------- concurrency


def fifty_questions() -> list[str]:
    """Fifty distinct questions drawn from the seed article's sentences, plus a few in English."""
    text = SEED.read_text(encoding="utf-8")
    words = [w for w in re.findall(r"\w+", text) if len(w) > 3]
    questions = ["Who mediated the talks?", "Where did the delegations meet?", "What did Iran demand?"]
    for start in range(0, len(words), 4):
        if len(questions) == 50:
            break
        question = " ".join(words[start : start + 6]) + " ?"
        if question not in questions:
            questions.append(question)
    assert len(questions) == 50
    return questions


def answer_key(body: dict) -> list[tuple]:
    return [(p["doc_id"], p["start"], p["end"], p["score"]) for p in body["passages"]]


@pytest.mark.slow
def test_sixteen_concurrent_clients_get_the_sequential_results(server):
    questions = fifty_questions()
    with httpx.Client(base_url=server.url, timeout=120) as http:
        expected = {q: answer_key(http.post("/ask", json={"question": q, "k": 8}).json()) for q in questions}
    assert all(expected.values())
    start = threading.Barrier(16)

    def client_run(offset: int) -> list[tuple[str, int, list[tuple]]]:
        order = questions[offset:] + questions[:offset]  # each client in a different order
        out = []
        with httpx.Client(base_url=server.url, timeout=120) as http:
            start.wait()
            for question in order:
                response = http.post("/ask", json={"question": question, "k": 8})
                out.append((question, response.status_code, answer_key(response.json())))
        return out

    with ThreadPoolExecutor(16) as pool:
        runs = list(pool.map(client_run, [3 * i for i in range(16)]))
    assert sum(len(run) for run in runs) == 16 * 50
    for run in runs:
        for question, status, got in run:
            assert status == 200
            assert got == expected[question], question
