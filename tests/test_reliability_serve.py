"""A real ``qa serve`` subprocess under load: rebuild and swap, token hygiene in its logs, SIGTERM.

The tests share one server and run in file order; the last one stops it with SIGTERM.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index.build.builder import build_index
from index.storage.store import builds_dir, read_index
from tests.conftest import make_corpus, make_settings
from tests.helpers import QAServe, wait_until

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is the launch code of the lighthouse?",
    "Quel est le code de lancement du phare ?",
    "Who mediated the talks?",
    "What weather is expected in the Alps?",
]
OLD_CODES = "The lighthouse keeper wrote that the launch code of the lighthouse is AMBER-7, kept in the red box."
NEW_CODES = "The harbour master announced that the launch code of the lighthouse is now COBALT-9, in the blue safe."


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder) -> Iterator[tuple[QAServe, str, Path]]:
    tmp = tmp_path_factory.mktemp("served")
    corpus = make_corpus(tmp / "corpus")
    (corpus / "codes.en.txt").write_text(OLD_CODES, encoding="utf-8")
    settings = make_settings(tmp)
    build_index(settings, encoder, show_progress=False)
    token = f"tok-{secrets.token_hex(16)}"
    server = QAServe(
        settings.index_dir, tmp / "serve.log", "--access-log", QA_CORPUS_DIR=str(corpus), QA_API_TOKEN=token
    )
    with server:
        yield server, token, tmp


def ask(http: httpx.Client, question: str) -> tuple[int, str | None, list[tuple]]:
    response = http.post("/ask", json={"question": question, "k": 4})
    if response.status_code != 200:
        return response.status_code, None, []
    passages = [(p["doc_id"], p["start"], p["end"], p["text"], p["score"]) for p in response.json()["passages"]]
    return 200, response.headers.get("x-index-build"), passages


def test_auth_failures_answer_401_and_403_without_echoing_the_token(served):
    server, token, _ = served
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.post("/index/rebuild").status_code == 401
        for wrong in ("wrong", token[:-1], token + "0", token.upper()):
            response = http.post("/index/rebuild", headers={"Authorization": f"Bearer {wrong}"})
            assert response.status_code == 403 and token not in response.text
        response = http.post("/index/rebuild", headers={"Authorization": f"Basic {token}"})
        assert response.status_code == 401 and token not in response.text


def test_rebuild_under_load_swaps_builds_and_every_answer_comes_from_one(served):
    server, token, tmp = served
    with httpx.Client(base_url=server.url, timeout=120) as http:
        old_build = http.get("/health").json()["build"]
        old = {q: ask(http, q) for q in QUESTIONS}
    assert all(status == 200 and build == old_build for status, build, _ in old.values())

    corpus = tmp / "corpus"
    (corpus / "codes.en.txt").write_text(NEW_CODES, encoding="utf-8")
    (corpus / "weather.en.txt").unlink()
    (corpus / "ports.en.txt").write_text("The port of Muscat handled record traffic in 2025.", encoding="utf-8")

    results: list[tuple[str, int, str | None, list[tuple]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()
    counts = [0] * 8

    def client(n: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                i = n
                while not stop.is_set():
                    question = QUESTIONS[i % len(QUESTIONS)]
                    outcome = ask(http, question)
                    with lock:
                        results.append((question, *outcome))
                        counts[n] += 1
                    i += 1
        except BaseException as exc:  # any transport error fails the test
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: min(counts) >= 2, 120)  # the load is on before the rebuild starts
        with httpx.Client(base_url=server.url, timeout=600) as http:
            rebuilt = http.post("/index/rebuild", headers={"Authorization": f"Bearer {token}"})
        assert rebuilt.status_code == 200, rebuilt.text
        after = list(counts)
        wait_until(lambda: all(c >= a + 2 for c, a in zip(counts, after, strict=True)), 120)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not errors, errors

    with httpx.Client(base_url=server.url, timeout=120) as http:
        new_build = http.get("/health").json()["build"]
        new = {q: ask(http, q) for q in QUESTIONS}
    assert new_build != old_build
    assert rebuilt.json()["documents"] == 4 and rebuilt.json()["reused_documents"] == 2
    # The two indexes answer differently ...
    assert "AMBER-7" in old[QUESTIONS[0]][2][0][3] and "COBALT-9" in new[QUESTIONS[0]][2][0][3]
    assert old[QUESTIONS[3]][2][0][0] == "weather.en.txt"
    assert all(p[0] != "weather.en.txt" for p in new[QUESTIONS[3]][2])
    # ... and every answer under load is exactly one of them, as its header claims.
    expected = {old_build: old, new_build: new}
    docs = {name: _documents(builds_dir(tmp / "var" / "index") / name) for name in expected}
    seen = set()
    for question, status, build, passages in results:
        assert status == 200
        assert build in expected, build
        assert _same(passages, expected[build][question][2]), (question, build)
        for doc_id, start, end, text, _ in passages:
            assert docs[build][doc_id][start:end] == text
        seen.add(build)
    assert seen == {old_build, new_build}, "the load saw both the old and the new index"


def test_token_never_appears_in_the_server_output(served):
    server, token, _ = served
    log = server.log()
    assert '"POST /index/rebuild HTTP/1.1" 401' in log and '"POST /index/rebuild HTTP/1.1" 200' in log
    assert token not in log and token[4:] not in log


def test_sigterm_under_load_finishes_in_flight_requests_and_exits_0(served):
    server, token, _ = served
    body = json.dumps({"question": "Who mediated the talks?", "k": 3}).encode()
    head = (
        f"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    # Requests surely in flight: headers and half the body sent, the rest after the SIGTERM.
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(3)]
    for sock in held:
        sock.sendall(head + body[:10])

    outcomes: list[tuple[float, object]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        limits = httpx.Limits(max_keepalive_connections=0)  # one connection per request
        with httpx.Client(base_url=server.url, timeout=60, limits=limits) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = http.post("/ask", json={"question": "Where did the delegations meet?"})
                    outcome: object = (response.status_code, response.json()["passages"][0]["doc_id"])
                except httpx.TransportError as exc:
                    outcome = exc
                with lock:
                    outcomes.append((sent, outcome))
                if isinstance(outcome, httpx.ConnectError):
                    return  # the server no longer accepts connections

    threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(outcomes) >= 16, 120)
    time.sleep(0.3)
    signalled = time.monotonic()
    server.proc.send_signal(15)
    time.sleep(1.0)
    assert server.proc.poll() is None, "the server waits for the requests in flight"
    answers = []
    for sock in held:
        sock.sendall(body[10:])
        answers.append(_read_response(sock))
        sock.close()
    status = server.proc.wait(30)
    stop.set()
    for thread in threads:
        thread.join(60)

    assert status == 0, server.log()[-2000:]
    for answer in answers:
        head_part, _, payload = answer.partition(b"\r\n\r\n")
        assert head_part.startswith(b"HTTP/1.1 200"), answer[:200]
        assert json.loads(payload)["passages"]
    for sent, outcome in outcomes:
        if isinstance(outcome, Exception):
            assert sent >= signalled - 0.5, f"a request failed before the shutdown: {outcome!r}"
        else:
            assert outcome[0] == 200, outcome
    assert sum(1 for _, o in outcomes if not isinstance(o, Exception)) >= 16
    log = server.log()
    assert "Shutting down" in log and "Finished server process" in log and "Traceback" not in log
    assert token not in log


def _same(got: list[tuple], want: list[tuple]) -> bool:
    return [p[:4] for p in got] == [p[:4] for p in want] and all(
        abs(a[4] - b[4]) <= 1e-6 for a, b in zip(got, want, strict=True)
    )


def _documents(folder: Path) -> dict[str, str]:
    return {doc.doc_id: doc.text for doc in read_index(folder).documents}


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        head, sep, payload = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if sep and length and len(payload) >= int(length.group(1)):
            return data
