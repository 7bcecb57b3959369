"""Front matter, headline titles and web pages: real files, read as a build reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.build.builder import build_index
from index.storage.store import read_index, resolve_live
from index.text.corpus import load_corpus
from index.text.metadata import MetadataError, headline, parse_instant, split_front_matter
from tests.conftest import SEED, make_settings

FRONT = """---
title: Talks resume in Muscat
published: 2026-02-06
source: lemonde.fr
url: https://lemonde.fr/a
lang: fr
tags: [diplomatie, iran]
---
Les délégations se sont réunies à Mascate.

Un second tour est prévu.
"""

# A saved page written for the test: navigation, an advert, a cookie banner and a footer around the article.
PAGE = """<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Talks resume in Muscat | The Daily Planet</title>
<meta property="og:title" content="Talks resume in Muscat">
<meta property="og:site_name" content="The Daily Planet">
<meta property="article:published_time" content="2026-02-06T10:30:00Z">
<link rel="canonical" href="https://dailyplanet.example/world/talks-muscat">
</head><body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/sport">Sport</a></li>
<li><a href="/weather">Weather</a></li></ul></nav></header>
<div class="advert">SPONSORED: Buy discount watches today, limited offer, free shipping!</div>
<div id="cookie-banner">We use cookies to improve your experience. Accept all cookies?</div>
<main><article>
<h1>Talks resume in Muscat</h1>
<p>Iranian and American delegations met in Muscat on Friday for indirect talks mediated by the foreign
minister of Oman, the first such meeting since the strikes of June 2025 on Iranian nuclear sites.</p>
<p>Both sides described the discussions as constructive, and diplomats said a second round was expected in
the coming weeks, although no date has been announced so far.</p>
<p>The talks focused on the nuclear programme and on ways to prevent a military escalation in the region.</p>
</article></main>
<aside><h3>Most read</h3><ul><li><a href="/x">Ten recipes for summer</a></li><li><a href="/y">Transfer news</a></li>
</ul></aside>
<footer><p>Copyright 2026 The Daily Planet. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>
"""


def _write(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def _docs(folder: Path):
    loaded = load_corpus(folder)
    return {doc.doc_id: doc for doc in loaded.documents}, loaded.warnings


def test_front_matter_is_metadata_and_offsets_start_after_it(tmp_path):
    docs, warnings = _docs(_write(tmp_path, {"talks.txt": FRONT}))
    doc = docs["talks.txt"]
    assert warnings == []
    assert doc.title == "Talks resume in Muscat"
    assert doc.text == FRONT.split("---\n", 2)[2]
    assert doc.text.startswith("Les délégations")
    meta = doc.metadata
    assert meta["published"] == "2026-02-06" and meta["source"] == "lemonde.fr" and meta["lang"] == "fr"
    assert meta["url"] == "https://lemonde.fr/a" and meta["tags"] == ["diplomatie", "iran"]
    assert "title" not in meta and meta["path"] == "talks.txt"


def test_front_matter_offsets_survive_a_build(tmp_path, encoder):
    _write(tmp_path / "corpus", {"talks.md": FRONT})
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    data = read_index(resolve_live(settings.index_dir))
    doc = data.documents[0]
    assert doc.text.startswith("Les délégations") and "---" not in doc.text
    for start, end in zip(data.sentences.start, data.sentences.end, strict=True):
        assert doc.text[start:end].strip() == doc.text[start:end] and doc.text[start:end]
    assert data.doc_langs == ["fr"]


def test_a_metadata_change_is_picked_up_by_an_incremental_build(tmp_path, encoder):
    _write(tmp_path / "corpus", {"talks.txt": FRONT, "other.txt": "Another short article about the weather."})
    settings = make_settings(tmp_path)
    build_index(settings, encoder, show_progress=False)
    changed = FRONT.replace("published: 2026-02-06", "published: 2026-03-01").replace("lang: fr\n", "")
    _write(tmp_path / "corpus", {"talks.txt": changed})
    report = build_index(settings, encoder, show_progress=False)
    data = read_index(resolve_live(settings.index_dir))
    doc = next(d for d in data.documents if d.doc_id == "talks.txt")
    assert report.reused_documents == 2  # same title and text: no vector recomputed
    assert doc.metadata["published"] == "2026-03-01" and "lang" not in doc.metadata
    assert data.doc_langs[data.documents.index(doc)] == "fr"  # detected now, no longer declared


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\ntitle: [unclosed\n---\nBody.\n", "not valid YAML"),
        ("---\ntitle: Never closed\nBody.\n", "never closed"),
        ("---\n- a\n- b\n---\nBody.\n", "key: value"),
        ("---\npublished: next tuesday\n---\nBody.\n", "'published' is not an ISO date"),
        ("---\ntitle: 12\n---\nBody.\n", "'title' must be text"),
    ],
)
def test_malformed_front_matter_skips_the_file_with_a_warning(tmp_path, text, problem):
    docs, warnings = _docs(_write(tmp_path, {"bad.txt": text, "good.txt": "Fine text."}))
    assert list(docs) == ["good.txt"]
    assert len(warnings) == 1 and warnings[0].startswith("bad.txt: ") and problem in warnings[0]


def test_a_dashed_line_later_in_the_text_is_not_front_matter(tmp_path):
    text = "Headline of the day\n---\nbody: not metadata\n---\n"
    docs, _ = _docs(_write(tmp_path, {"a.txt": text}))
    assert docs["a.txt"].text == text and docs["a.txt"].title == "Headline of the day"


def test_a_headline_first_line_is_the_title_and_stays_in_the_text(tmp_path):
    text = "Talks resume in Muscat\n\nIranian and American delegations met on Friday."
    docs, _ = _docs(_write(tmp_path, {"talks-2026.txt": text}))
    assert docs["talks-2026.txt"].title == "Talks resume in Muscat"
    assert docs["talks-2026.txt"].text == text


def test_a_prose_first_line_leaves_the_file_name_as_title(tmp_path):
    docs, _ = _docs(_write(tmp_path, {"weather-lyon.txt": "The weather in Lyon was sunny all week.\n\nRain."}))
    assert docs["weather-lyon.txt"].title == "Weather lyon"
    seed = SEED.read_text(encoding="utf-8")
    assert headline(seed) is None  # its first line is a long paragraph: the title stays the file name's


@pytest.mark.parametrize(
    ("line", "title"),
    [
        ("Why did the talks fail?", "Why did the talks fail?"),
        ("Talks resume in Muscat.", None),
        ("Ce que l'on sait :", None),
        ("x" * 121, None),
        ("  \n\nLate headline\nbody", "Late headline"),
    ],
)
def test_headline_rules(line, title):
    assert headline(line) == title


def test_a_web_page_is_read_without_its_boilerplate(tmp_path):
    docs, warnings = _docs(_write(tmp_path, {"news/talks.html": PAGE}))
    doc = docs["news/talks.html"]
    assert warnings == []
    assert "Iranian and American delegations met in Muscat" in doc.text
    assert "second round" in doc.text
    for boilerplate in ("discount watches", "cookies", "Copyright", "Privacy policy", "Transfer news", "Sport"):
        assert boilerplate not in doc.text
    assert doc.title == "Talks resume in Muscat"
    assert doc.metadata["published"] == "2026-02-06"
    assert doc.metadata["source"] == "The Daily Planet"
    assert doc.metadata["url"] == "https://dailyplanet.example/world/talks-muscat"


def test_a_page_without_main_text_is_skipped_with_a_warning(tmp_path):
    empty = "<html><head><title>Menu</title></head><body><nav><a href='/'>Home</a></nav></body></html>"
    docs, warnings = _docs(_write(tmp_path, {"menu.htm": empty, "good.txt": "Fine text."}))
    assert list(docs) == ["good.txt"]
    assert warnings == ["menu.htm: web page has no extractable main text"]


def test_jsonl_keeps_every_metadata_field_and_checks_the_date(tmp_path):
    lines = [
        '{"id": "a", "text": "Un texte.", "published": "2026-02-06T10:00:00+01:00", "source": "lemonde.fr"}',
        '{"id": "b", "text": "Un autre.", "published": "06/02/2026"}',
    ]
    docs, warnings = _docs(_write(tmp_path, {"feed.jsonl": "\n".join(lines)}))
    assert docs["a"].metadata["source"] == "lemonde.fr"
    assert docs["a"].metadata["published"] == "2026-02-06T10:00:00+01:00"
    assert list(docs) == ["a"] and "feed.jsonl:2" in warnings[0] and "published" in warnings[0]


def test_parse_instant_takes_dates_and_datetimes():
    assert parse_instant("2026-02-06")[1] is True
    moment, bare = parse_instant("2026-02-06T10:00:00+01:00")
    assert not bare and moment.hour == 9
    assert parse_instant("2026-02-06T10:00:00Z")[0].hour == 10
    with pytest.raises(ValueError):
        parse_instant("2026-13-01")


def test_split_front_matter_without_a_block_returns_the_text():
    assert split_front_matter("No block here.") == ({}, "No block here.")
    with pytest.raises(MetadataError):
        split_front_matter("---\nkey: {a: 1}\n---\nBody")
