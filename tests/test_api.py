"""The HTTP API over a real server: answers, offsets, and every bad input."""

from __future__ import annotations

import httpx
import pytest

from index.config import DEFAULT_MODEL
from tests.conftest import LiveServer, make_settings

SEED_ID = "oman-iran-us-talks-2026-02-06.fr.txt"


def test_who_mediated_the_talks(client):
    response = client.post("/ask", json={"question": "Who mediated the talks?"})
    assert response.status_code == 200
    body = response.json()
    assert body["question"] == "Who mediated the talks?" and body["took_ms"] >= 0
    assert 1 <= len(body["passages"]) <= 5
    top = body["passages"][0]
    assert "Badr al-Busaidi" in top["text"]


def test_the_ask_body_matches_its_declared_schema(client):
    from service.schemas import AskResponse

    response = client.post("/ask", json={"question": "Qui accompagne Steve Witkoff ?", "k": 3})
    assert response.headers["content-type"] == "application/json"
    body = AskResponse.model_validate(response.json(), strict=True)
    assert len(body.passages) == 3 and set(response.json()) == set(AskResponse.model_fields)


def test_offsets_slice_the_document_exactly(client):
    body = client.post("/ask", json={"question": "Qui a supervisé les discussions ?", "k": 10}).json()
    scores = [p["score"] for p in body["passages"]]
    assert scores == sorted(scores, reverse=True)
    for passage in body["passages"]:
        doc = client.get(f"/documents/{passage['doc_id']}").json()
        assert doc["text"][passage["start"] : passage["end"]] == passage["text"]
        light = passage["highlight"]
        assert doc["text"][light["start"] : light["end"]] == light["text"]
        assert passage["start"] <= light["start"] < light["end"] <= passage["end"]


def test_documents_health_and_docs(client):
    doc = client.get(f"/documents/{SEED_ID}").json()
    assert doc["doc_id"] == SEED_ID and doc["metadata"]["lang"] == "fr"
    assert client.get("/documents/notes/cuisine.fr.md").json()["title"] == "Cuisine lyonnaise"
    health = client.get("/health").json()
    assert health == health | {"status": "ok", "documents": 3, "model": DEFAULT_MODEL} and health["chunks"] > 3
    assert client.get("/docs").status_code == 200
    assert "/ask" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "empty"),
        ({"question": "x" * 2001}, "2000"),
        ({"question": "ok", "k": 0}, "k"),
        ({"question": "ok", "k": 51}, "k"),
        ({"question": "ok", "k": "5"}, "k"),
        ({"question": "ok", "k": 2.5}, "k"),
        ({"question": 42}, "question"),
        ({"question": "nul\x00byte"}, "control"),
        ({}, "question"),
        ({"question": "ok", "extra": 1}, "extra"),
    ],
)
def test_bad_questions_get_a_422_with_a_message(client, payload, fragment):
    response = client.post("/ask", json=payload)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_malformed_json_and_wrong_types(client):
    for raw in (b"{not json", b"\xff\xfe\x00", b'"a string"', b"[" * 5000 + b"]" * 5000):
        response = client.post("/ask", content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, raw[:20]
        assert response.json()["detail"]


def test_oversized_body_is_413(client):
    response = client.post("/ask", json={"question": "x" * 70_000})
    assert response.status_code == 413 and "KiB" in response.json()["detail"]


def test_unknown_document_is_404_and_never_a_path(client):
    for doc_id in ("nope.txt", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "notes%2F..%2F..%2Fpyproject.toml"):
        response = client.get(f"/documents/{doc_id}")
        assert response.status_code == 404, doc_id
        assert "root:" not in response.text


def test_rebuild_needs_the_token(client):
    assert client.post("/index/rebuild").status_code == 401
    assert client.post("/index/rebuild", headers={"Authorization": "Bearer wrong"}).status_code == 403
    wrong = client.post("/index/rebuild", headers={"Authorization": "Bearer wrong"}).json()["detail"]
    assert "s3cret" not in wrong


def test_rebuild_swaps_in_a_new_index(client):
    response = client.post("/index/rebuild", headers={"Authorization": "Bearer s3cret-token"})
    assert response.status_code == 200
    assert response.json()["documents"] == 3 and response.json()["reused_documents"] == 3
    assert client.post("/ask", json={"question": "Who mediated the talks?"}).status_code == 200


def test_rebuild_is_disabled_without_a_configured_token(tmp_path, built, encoder):
    settings = built.model_copy(update={"api_token": None})
    with LiveServer(settings, encoder) as live, httpx.Client(base_url=live.url) as http:
        response = http.post("/index/rebuild", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403 and "disabled" in response.json()["detail"]


def test_missing_index_is_503_with_how_to_build(tmp_path, encoder):
    with LiveServer(make_settings(tmp_path), encoder) as live, httpx.Client(base_url=live.url) as http:
        response = http.post("/ask", json={"question": "Who mediated the talks?"})
        assert response.status_code == 503 and "qa build" in response.json()["detail"]
        assert http.get("/health").json()["status"] == "no index"
        assert http.get(f"/documents/{SEED_ID}").status_code == 503
