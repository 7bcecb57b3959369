"""Document metadata: YAML front matter, headline titles, web pages, and published dates.

A ``.txt`` or ``.md`` file may start with a front-matter block::

    ---
    title: Talks resume in Muscat
    published: 2026-02-06
    source: lemonde.fr
    ---

The block is metadata, not text: the document's text (and every offset) starts
after its closing line. A ``.html`` page is reduced to its main text by
trafilatura, which also reads its title, date and site name.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml

HEADLINE_MAX_CHARS = 120
_FENCE = re.compile(r"\A---[ \t]*\r?\n")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.MULTILINE)
_SENTENCE_END = (".", ",", ";", ":")  # a line ending so is prose, not a headline ("?" and "!" may end one)


class MetadataError(ValueError):
    """Front matter or a page that cannot be read; the message says what is wrong."""


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The front matter's fields and the text after the block (``{}`` and ``text`` when there is none)."""
    opening = _FENCE.match(text)
    if not opening:
        return {}, text
    closing = _CLOSE.search(text, opening.end())
    if not closing:
        raise MetadataError("front matter opened with '---' is never closed by a '---' line")
    try:
        fields = yaml.safe_load(text[opening.end() : closing.start()])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise MetadataError(f"front matter is not valid YAML{where}") from exc
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise MetadataError("front matter is not a set of 'key: value' lines")
    return clean_fields(fields), text[closing.end() :]


def clean_fields(fields: dict) -> dict[str, Any]:
    """Metadata values made JSON-ready: strings, numbers, booleans, lists of them; ``published`` in ISO form."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if not isinstance(key, str) or not key.strip():
            raise MetadataError(f"metadata key {key!r} is not a name")
        if value is None:
            continue
        if key == "published":
            out[key] = iso_published(value)
        elif key in ("title", "lang", "url", "source") and not isinstance(value, str):
            raise MetadataError(f"metadata field {key!r} must be text")
        else:
            out[key] = _scalar_or_list(key, value)
    if "lang" in out:
        out["lang"] = out["lang"].strip().lower()
    return out


def _scalar_or_list(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_scalar(key, item) for item in value]
    return _scalar(key, value)


def _scalar(key: str, value: Any) -> str | int | float | bool:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    raise MetadataError(f"metadata field {key!r} holds a {type(value).__name__}: use text, a number or a list")


def iso_published(value: Any) -> str:
    """A publication date or datetime as ISO 8601 text; MetadataError if it is neither."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            parse_instant(value)
        except ValueError as exc:
            raise MetadataError(f"'published' is not an ISO date: {value!r}") from exc
        return value.strip()
    raise MetadataError(f"'published' is not an ISO date: {value!r}")


def parse_instant(text: str) -> tuple[dt.datetime, bool]:
    """An ISO date or datetime as a UTC datetime, and whether it was a bare date (ValueError if neither).

    A datetime without a zone is taken as UTC; a bare date as its midnight UTC.
    """
    text = text.strip()
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), True
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC), False


def headline(text: str) -> str | None:
    """The first non-blank line when it reads as a headline: short, not empty, not ending like a sentence."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first or len(first) > HEADLINE_MAX_CHARS or first.endswith(_SENTENCE_END) or first.endswith("…"):
        return None
    return first


def read_html(raw: bytes) -> tuple[str, dict[str, Any]]:
    """The main text of a web page and its metadata (title, published, source, url); MetadataError if none."""
    import trafilatura  # loaded only for corpora with web pages: it takes ~0.3 s

    # Precision over recall, and no fallback extractors: on a page of menus only, they return a menu item.
    found = trafilatura.bare_extraction(
        raw, with_metadata=True, include_comments=False, include_tables=True, favor_precision=True, fast=True
    )
    text = (found.text if found is not None else None) or ""
    if not text.strip():
        raise MetadataError("web page has no extractable main text")
    fields = {"title": found.title, "published": found.date, "source": found.sitename, "url": found.url}
    metadata = {key: value.strip() for key, value in fields.items() if isinstance(value, str) and value.strip()}
    if "published" in metadata:
        try:
            parse_instant(metadata["published"])
        except ValueError:
            del metadata["published"]  # a date trafilatura guessed but did not normalise: leave it out
    return text, metadata
