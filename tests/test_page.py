"""The ask page in a real browser (Debian's Chromium through Playwright) against a real `qa serve`.

Screenshots land in var/screenshots/ (git-ignored): ask-375.png, ask-1280.png, document-375.png
and report-piaf.png (slow test, on every fourth piaf-dev article).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import QA, QAServe, run_qa, squad_part

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "oman-iran-us-talks-2026-02-06.fr.txt"
PIAF = ROOT.parent / "shared" / "eval" / "piaf-dev.json"
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUESTION = "Who mediated the talks?"
HOSTILE_NAME = "piege-hostile.fr.txt"
HOSTILE_TEXT = (
    "Le document piège « hostile » contient du code : <script>alert(1)</script> et <img src=x onerror=alert(2)>.\n\n"
    "Les apiculteurs de Provence récoltent le miel de lavande en juillet, dit l’article « Abeilles »."
)
HOSTILE_QUESTION = "Quand les apiculteurs de Provence récoltent-ils le miel de lavande ?"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """A real index over the seed article and a hostile document, built by `qa build`."""
    tmp = tmp_path_factory.mktemp("page")
    corpus = tmp / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    (corpus / HOSTILE_NAME).write_text(HOSTILE_TEXT, encoding="utf-8")
    index = tmp / "index"
    done = run_qa("build", "--corpus", str(corpus), "--index", str(index), "--quiet", timeout=600)
    assert done.returncode == 0, done.stderr
    return index


@pytest.fixture(scope="module")
def server(index_dir, tmp_path_factory) -> Iterator[QAServe]:
    live = QAServe(index_dir, tmp_path_factory.mktemp("log") / "serve.log")
    live.wait_ready()
    yield live
    live.terminate()
    live.close()


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory) -> Iterator[QAServe]:
    """A server pointed at an index folder that does not exist: /ask answers 503."""
    tmp = tmp_path_factory.mktemp("noindex")
    live = QAServe(tmp / "does-not-exist", tmp / "serve.log")
    live.wait_ready()
    yield live
    live.terminate()
    live.close()


@pytest.fixture()
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.dialogs, page.js_errors = dialogs, errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")


def wait_results(page) -> None:
    page.wait_for_selector("#results li.result")
    page.wait_for_function("document.querySelector('#status').textContent.includes('ms')")


def document_json(server: QAServe, doc_id: str) -> dict:
    response = httpx.get(f"{server.url}/documents/{doc_id}", timeout=30)
    response.raise_for_status()
    return response.json()


def ask_json(server: QAServe, question: str, k: int = 5) -> dict:
    response = httpx.post(f"{server.url}/ask", json={"question": question, "k": k}, timeout=60)
    response.raise_for_status()
    return response.json()


def test_answers_with_marked_sentence_timing_and_live_region(server, page) -> None:
    page.goto(server.url)
    assert page.title() == "Ask the corpus"
    assert page.get_by_label("Question", exact=True).count() == 1
    assert page.get_by_role("search", name="Ask a question").count() == 1
    assert page.get_by_role("button", name="Ask", exact=True).count() == 1
    ask(page, QUESTION)
    wait_results(page)

    items = page.locator("#results li.result")
    expected = ask_json(server, QUESTION)
    assert items.count() == len(expected["passages"]) == 5
    status = page.locator("#status")
    assert status.get_attribute("aria-live") == "polite"
    assert "passages found" in status.inner_text() and "round trip" in status.inner_text()

    for i in range(items.count()):
        item = items.nth(i)
        doc_id = expected["passages"][i]["doc_id"]
        title = item.locator(".result-title").inner_text()
        text = document_json(server, doc_id)
        assert title == text["title"]
        passage_text = item.locator(".passage-text").text_content()
        marks = item.locator(".passage-text mark")
        assert marks.count() == 1
        mark = marks.text_content()
        link = item.locator("a.open-doc").get_attribute("href")
        params = dict(p.split("=", 1) for p in link[1:].split("&"))
        start, end, hs, he = (int(params[key]) for key in ("start", "end", "hs", "he"))
        assert passage_text == text["text"][start:end]
        assert mark == text["text"][hs:he], "the <mark> must be the highlight's slice of the document"
        assert item.locator(".score").inner_text().startswith("score ")
    assert "Oman" in page.locator("#results").inner_text()


def test_document_view_marks_and_scrolls_to_the_passage(server, page) -> None:
    page.goto(server.url)
    ask(page, QUESTION)
    wait_results(page)
    # open the last result: further down the article, so scrolling matters
    link = page.locator("#results a.open-doc").last
    href = link.get_attribute("href")
    link.click()
    page.wait_for_selector("#doc-passage")
    params = dict(p.split("=", 1) for p in href[1:].split("&"))
    start, end, hs, he = (int(params[key]) for key in ("start", "end", "hs", "he"))
    doc_id = httpx.QueryParams(href[1:])["doc"]
    doc = document_json(server, doc_id)

    assert page.locator("#doc-title").inner_text() == doc["title"]
    assert page.locator("#doc-text").text_content() == doc["text"]
    assert page.locator("#doc-passage").text_content() == doc["text"][start:end]
    assert page.locator("#doc-passage mark.sentence").text_content() == doc["text"][hs:he]
    in_view = page.evaluate(
        """() => { const r = document.querySelector('#doc-passage').getBoundingClientRect();
                   return r.top < innerHeight && r.bottom > 0; }"""
    )
    assert in_view, "the passage must be scrolled into view"
    assert page.locator("#results-view").is_hidden()

    # back to the results, focus returns to the link that opened the document
    page.go_back()
    page.wait_for_selector("#results-view", state="visible")
    assert page.locator("#doc-view").is_hidden()
    assert page.evaluate("document.activeElement.classList.contains('open-doc')")


@pytest.mark.parametrize("question", ["", "   \t  "])
def test_empty_question_shows_a_readable_message(server, page, question: str) -> None:
    page.goto(server.url)
    ask(page, question)
    error = page.locator("#error")
    error.wait_for(state="visible")
    message = error.inner_text()
    assert "empty" in message.lower() or "at least 1 character" in message
    assert message.startswith("Question")
    assert "{" not in message and "detail" not in message
    assert error.get_attribute("role") == "alert"
    assert page.locator("#results li").count() == 0


def test_too_long_question_shows_a_readable_message(server, page) -> None:
    page.goto(server.url)
    ask(page, "pourquoi " * 300)
    error = page.locator("#error")
    error.wait_for(state="visible")
    message = error.inner_text()
    assert "2000" in message and "{" not in message


def test_no_index_shows_a_readable_503_message(empty_server, page) -> None:
    assert httpx.post(f"{empty_server.url}/ask", json={"question": QUESTION}).status_code == 503
    page.goto(empty_server.url)
    ask(page, QUESTION)
    error = page.locator("#error")
    error.wait_for(state="visible")
    message = error.inner_text()
    assert "no index" in message.lower() and "qa build" in message
    assert "{" not in message and "detail" not in message


def test_hostile_document_is_shown_as_text(server, page) -> None:
    page.goto(server.url)
    ask(page, HOSTILE_QUESTION)
    wait_results(page)
    titles = page.locator("#results .result-title").all_inner_texts()
    expected = ask_json(server, HOSTILE_QUESTION)
    rank = [p["doc_id"] for p in expected["passages"]].index(HOSTILE_NAME)
    item = page.locator("#results li.result").nth(rank)
    shown = item.locator(".passage-text").text_content()
    assert "<script>alert(1)</script>" in shown and "« hostile »" in shown
    assert len(titles) == len(expected["passages"])

    item.locator("a.open-doc").click()
    page.wait_for_selector("#doc-passage")
    assert page.locator("#doc-text").text_content() == HOSTILE_TEXT
    assert "l’article « Abeilles »" in page.locator("#doc-text").inner_text()

    page.wait_for_timeout(300)
    assert page.dialogs == [], "no alert may fire"
    assert page.locator("script").count() == 1  # only app.js
    assert page.locator("#results img, #doc-text img").count() == 0


def test_keyboard_only(server, page) -> None:
    page.goto(server.url)
    page.keyboard.press("Tab")  # the page title link comes first
    for _ in range(3):
        if page.evaluate("document.activeElement.id") == "question":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    wait_results(page)
    # Tab on, past the filters (a date field is three stops), to the first document link and open it with Enter
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('open-doc')"):
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("#doc-passage")
    assert page.evaluate("document.activeElement.id") == "doc-title"


def test_language_and_date_filters(server, page) -> None:
    page.goto(server.url)
    page.select_option("#lang", "es")  # no Spanish document in this index: nothing may come back
    ask(page, QUESTION)
    page.wait_for_function("document.querySelector('#status').textContent.includes('No passage found')")
    assert "filters keep" in page.inner_text("#status") and page.locator("#results li.result").count() == 0
    page.select_option("#lang", "fr")
    page.fill("#since", "2000-01-01")  # the test corpus has no dates: a date range keeps nothing
    ask(page, QUESTION)
    page.wait_for_function("document.querySelector('#status').textContent.includes('No passage found')")
    page.fill("#since", "")
    ask(page, QUESTION)
    wait_results(page)
    assert page.locator("#results li.result").count() == 5


@pytest.mark.parametrize("width", [375, 1280])
def test_screenshots(server, chromium, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url)
        ask(page, QUESTION)
        wait_results(page)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways at {width} px"
        page.screenshot(path=str(SCREENSHOTS / f"ask-{width}.png"), full_page=True)
        page.locator("#results a.open-doc").nth(1).click()
        page.wait_for_selector("#doc-passage")
        page.screenshot(path=str(SCREENSHOTS / f"document-{width}.png"))
    finally:
        context.close()
    assert (SCREENSHOTS / f"ask-{width}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_report_screenshot(chromium, tmp_path) -> None:
    if not PIAF.is_file():
        pytest.skip(f"{PIAF} is missing")
    report = ROOT / "var" / "report-piaf"
    piaf, _ = squad_part(PIAF, tmp_path / "sets", every=4)  # a quarter: embedding all of piaf-dev takes a minute
    done = subprocess.run(
        [*QA, "eval", str(piaf), "--report", str(report), "--json", "--index", str(tmp_path / "index")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page_file = report / "index.html"
    assert page_file.is_file()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1280, "height": 1600})
    page = context.new_page()
    try:
        page.goto(page_file.as_uri())
        assert page.locator("table.figures tbody tr").count() >= 1
        assert page.locator("svg.curve polyline").count() == 1
        assert page.locator("li.miss").count() >= 1
        assert page.locator("li.miss mark").count() >= 1
        page.screenshot(path=str(SCREENSHOTS / "report-piaf.png"))
    finally:
        context.close()
