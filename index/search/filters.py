"""Metadata filters: which documents a question may be answered from.

A filter is plain JSON (the ``filters`` object of ``POST /ask``)::

    {"doc_id": ["a.txt", "b.txt"], "lang": ["fr"], "published": {"gte": "2026-01-01", "lte": "2026-02-28"},
     "source": "lemonde.fr"}

Every key narrows the documents further. ``doc_id``, ``lang`` (the indexed
language, declared or detected) and ``published`` are built in; any other key
is equality on that metadata field, a list meaning any of its values. The
search then runs on the rows of the allowed documents only (see
``index.searcher``): filtering happens inside retrieval, never after it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from index.errors import InvalidFilterError
from index.storage.vectorstore import IdSubset
from index.text.corpus import Document
from index.text.metadata import parse_instant
from index.text.tables import SpanTable

BUILT_IN = ("doc_id", "lang", "published")
DATE_HINT = "use an ISO date (2026-02-06) or datetime (2026-02-06T10:00:00+01:00)"


@dataclass(frozen=True)
class Filters:
    """A parsed filter; hashable, so that the rows it allows are computed once per distinct filter."""

    doc_ids: tuple[str, ...] | None = None
    langs: tuple[str, ...] | None = None
    since: float | None = None  # published >= since (UTC seconds)
    before: float | None = None  # published < before; an 'lte' date allows its whole day
    until: float | None = None  # published <= until, for an 'lte' datetime
    equals: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def fields(self) -> list[str]:
        return [name for name, _ in self.equals]


def parse_filters(raw: Mapping[str, Any] | None) -> Filters | None:
    """A ``filters`` object as a ``Filters`` (None when it filters nothing); InvalidFilterError naming the bad key."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidFilterError("filters must be an object of field: value pairs")
    if not raw:
        return None
    parsed: dict[str, Any] = {}
    equals = []
    for key, value in raw.items():
        if key == "doc_id":
            parsed["doc_ids"] = _texts(key, value)
        elif key == "lang":
            parsed["langs"] = tuple(lang.strip().lower() for lang in _texts(key, value))
        elif key == "published":
            parsed.update(_date_range(value))
        else:
            equals.append((str(key), _texts(key, value)))
    return Filters(**parsed, equals=tuple(sorted(equals)))


def _texts(key: str, value: Any) -> tuple[str, ...]:
    """One value or a list of them, as text (numbers and booleans too: ``--filter year=2026`` sends text)."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InvalidFilterError(f"filter {key!r} has an empty list: give at least one value")
    out = []
    for item in values:
        if isinstance(item, dict | list) or item is None:
            raise InvalidFilterError(f"filter {key!r} takes text, a number or a list of them, not {item!r}")
        out.append(as_text(item))
    return tuple(dict.fromkeys(out))


def as_text(value: Any) -> str:
    """How a metadata value compares: as text, booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _date_range(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidFilterError('filter \'published\' takes {"gte": date, "lte": date}, either may be left out')
    unknown = sorted(set(value) - {"gte", "lte"})
    if unknown:
        raise InvalidFilterError(f"filter 'published' has unknown bound {unknown[0]!r}: use 'gte' and 'lte'")
    out: dict[str, float] = {}
    for bound in ("gte", "lte"):
        if value.get(bound) is None:
            continue
        text = value[bound]
        try:
            if not isinstance(text, str):
                raise ValueError
            moment, bare = parse_instant(text)
        except ValueError:
            raise InvalidFilterError(f"filter published.{bound} is not a date: {text!r}; {DATE_HINT}") from None
        if bound == "gte":
            out["since"] = moment.timestamp()
        elif bare:
            out["before"] = (moment + timedelta(days=1)).timestamp()
        else:
            out["until"] = moment.timestamp()
    return out


class DocumentColumns:
    """The documents' filterable values as arrays, built once per loaded index."""

    def __init__(self, documents: Sequence[Document], langs: Sequence[str]) -> None:
        self.documents = documents
        self.doc_ids = np.array([doc.doc_id for doc in documents], dtype=object)
        self.langs = np.array(list(langs), dtype=object)
        self.published = np.array([_timestamp(doc.metadata.get("published")) for doc in documents])
        self.fields = set(BUILT_IN).union(*(doc.metadata for doc in documents))

    def allowed(self, filters: Filters, strict: bool = True) -> np.ndarray:
        """A boolean mask over document rows; InvalidFilterError for a field no document has (``strict``)."""
        if strict:
            check_fields(filters, self.fields)
        mask = np.ones(len(self.documents), dtype=bool)
        if filters.doc_ids is not None:
            mask &= np.isin(self.doc_ids, list(filters.doc_ids))
        if filters.langs is not None:
            mask &= np.isin(self.langs, list(filters.langs))
        published = self.published
        with np.errstate(invalid="ignore"):  # NaN (no date) compares False: such documents are left out
            if filters.since is not None:
                mask &= published >= filters.since
            if filters.before is not None:
                mask &= published < filters.before
            if filters.until is not None:
                mask &= published <= filters.until
        for name, values in filters.equals:
            mask &= self._equal(name, set(values))
        return mask

    def _equal(self, name: str, values: set[str]) -> np.ndarray:
        return np.fromiter(
            (_matches(doc.metadata.get(name), values) for doc in self.documents), dtype=bool, count=len(self.documents)
        )


def check_fields(filters: Filters, fields: set[str]) -> None:
    """InvalidFilterError for a filter on a field outside ``fields`` (every field some document has)."""
    for name in filters.fields():
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise InvalidFilterError(f"unknown filter field {name!r}: no indexed document has it (fields: {known})")


def _matches(value: Any, values: set[str]) -> bool:
    if value is None:
        return False
    if isinstance(value, list):
        return any(as_text(item) in values for item in value)
    return as_text(value) in values


def _timestamp(value: Any) -> float:
    if not isinstance(value, str):
        return math.nan
    try:
        return parse_instant(value)[0].timestamp()
    except ValueError:
        return math.nan


@dataclass
class AllowedRows:
    """The passage and sentence rows of the allowed documents, and per-language masks, for one filter."""

    chunks: np.ndarray  # boolean mask over passage rows
    chunk_ids: IdSubset  # their vector-store ids
    sentence_ids: IdSubset
    count: int  # allowed passages
    documents: int  # allowed documents
    by_language: dict[str, tuple] = field(default_factory=dict)  # Searcher's cache of language masks

    @classmethod
    def of(cls, documents: np.ndarray, chunks: SpanTable, sentences: SpanTable) -> AllowedRows:
        chunk_mask = documents[chunks.doc]
        sentence_mask = documents[sentences.doc]
        return cls(
            chunks=chunk_mask,
            chunk_ids=IdSubset(chunks.ids[chunk_mask], len(chunks)),
            sentence_ids=IdSubset(sentences.ids[sentence_mask], len(sentences)),
            count=int(chunk_mask.sum()),
            documents=int(documents.sum()),
        )
