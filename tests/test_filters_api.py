"""Filters over real HTTP and the real ``qa`` command: 422s that name the field, empty 200s, CLI flags, workers."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from index.build.builder import build_index
from tests.conftest import LiveServer, make_settings
from tests.helpers import QAServe, run_qa
from tests.test_metadata import FRONT, PAGE

QUESTION = "Who mediated the talks?"


def _ask(client, filters, k: int = 5, question: str = QUESTION) -> httpx.Response:
    return client.post("/ask", json={"question": question, "k": k, "filters": filters})


def test_a_language_filter_keeps_only_that_language(client):
    body = _ask(client, {"lang": ["en"]}).json()
    assert [p["doc_id"] for p in body["passages"]] == ["weather.en.txt"]  # its only passage, though k is 5
    french = _ask(client, {"lang": ["fr"]}, k=3).json()["passages"]
    assert len(french) == 3 and all(p["doc_id"].endswith((".fr.txt", ".fr.md")) for p in french)


def test_doc_id_and_path_filters(client):
    passages = _ask(client, {"doc_id": ["notes/cuisine.fr.md", "weather.en.txt"]}).json()["passages"]
    assert {p["doc_id"] for p in passages} == {"notes/cuisine.fr.md", "weather.en.txt"}
    assert {p["doc_id"] for p in _ask(client, {"path": "weather.en.txt"}).json()["passages"]} == {"weather.en.txt"}


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"source": "lemonde.fr"}, "unknown filter field 'source'"),
        ({"published": {"gte": "2026-31-01"}}, "published.gte"),
        ({"published": {"lte": "yesterday"}}, "published.lte"),
        ({"published": {"after": "2026-01-01"}}, "filters.published.after"),
        ({"lang": "fr"}, "filters.lang"),
        ({"path": {"nested": 1}}, "'path'"),
    ],
)
def test_bad_filters_are_422_naming_the_field(client, filters, named):
    response = _ask(client, filters)
    assert response.status_code == 422
    assert named in response.json()["detail"]


def test_a_filter_matching_nothing_is_200_with_no_passages(client):
    for filters in ({"doc_id": ["no-such-doc"]}, {"lang": ["es"]}, {"published": {"gte": "2000-01-01"}}):
        response = _ask(client, filters)
        assert response.status_code == 200
        assert response.json()["passages"] == []


def test_no_filter_and_empty_filters_answer_alike(client):
    plain = client.post("/ask", json={"question": QUESTION, "k": 5}).json()["passages"]
    empty = _ask(client, {}).json()["passages"]
    assert [(p["doc_id"], p["start"]) for p in plain] == [(p["doc_id"], p["start"]) for p in empty]


def test_web_page_and_front_matter_filters_and_offsets_over_http(tmp_path, encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "talks.html").write_text(PAGE, encoding="utf-8")
    (corpus / "fm.txt").write_text(FRONT, encoding="utf-8")
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    with LiveServer(settings, encoder) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        source = {"source": "The Daily Planet"}
        page = _ask(client, source, question="Where did the delegations meet?").json()["passages"]
        assert page and {p["doc_id"] for p in page} == {"talks.html"}
        doc = client.get("/documents/talks.html").json()
        assert doc["title"] == "Talks resume in Muscat" and doc["metadata"]["published"] == "2026-02-06"
        assert "discount watches" not in doc["text"]
        for passage in page:
            assert doc["text"][passage["start"] : passage["end"]] == passage["text"]
        dated = _ask(client, {"published": {"gte": "2026-02-06", "lte": "2026-02-06"}}).json()["passages"]
        assert {p["doc_id"] for p in dated} == {"talks.html", "fm.txt"}  # a date and a datetime on that day
        tagged = _ask(client, {"tags": "iran", "source": ["lemonde.fr", "other"]}).json()["passages"]
        assert {p["doc_id"] for p in tagged} == {"fm.txt"}
        fm = client.get("/documents/fm.txt").json()
        for passage in tagged:
            assert fm["text"][passage["start"] : passage["end"]] == passage["text"]


def test_qa_ask_filter_flags(built):
    index = str(built.index_dir)
    done = run_qa("ask", QUESTION, "--index", index, "--json", "--filter", "lang=en", "--filter", "lang=es")
    assert done.returncode == 0, done.stderr
    assert [p["doc_id"] for p in json.loads(done.stdout)["passages"]] == ["weather.en.txt"]
    done = run_qa("ask", QUESTION, "--index", index, "--since", "2026-02-01", "--until", "2026-02-30")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "published.lte" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = run_qa("ask", QUESTION, "--index", index, "--filter", "langfr")
    assert done.returncode == 2 and "KEY=VALUE" in done.stderr
    done = run_qa("ask", QUESTION, "--index", index, "--since", "2026-02-01")
    assert done.returncode == 0 and done.stdout.startswith("0 passages")


@pytest.mark.slow
def test_filters_through_search_processes(built, tmp_path):
    """`qa serve --workers 2`: filters cross the process boundary, batched questions keep their own filters."""
    with QAServe(built.index_dir, tmp_path / "serve.log", "--workers", "2") as live:

        async def many() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
                asks = [{"lang": ["en"]}, {"lang": ["fr"]}, {"source": "x"}, None] * 3
                return await asyncio.gather(
                    *(client.post("/ask", json={"question": QUESTION, "k": 3, "filters": f}) for f in asks)
                )

        responses = asyncio.run(many())
        for i, response in enumerate(responses):
            if i % 4 == 2:
                assert response.status_code == 422 and "'source'" in response.json()["detail"]
                continue
            assert response.status_code == 200
            docs = {p["doc_id"] for p in response.json()["passages"]}
            if i % 4 == 0:
                assert docs == {"weather.en.txt"}
            elif i % 4 == 1:
                assert docs and all(".fr." in d for d in docs)
