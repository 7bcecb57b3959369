"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

MAX_QUESTION_CHARS = 2000
MAX_K = 50


class PublishedRange(BaseModel):
    """Publication dates to keep, bounds included; ISO dates (a day) or datetimes."""

    model_config = ConfigDict(extra="forbid")

    gte: StrictStr | None = Field(None, description="On or after, e.g. 2026-02-01 or 2026-02-01T08:00:00+01:00.")
    lte: StrictStr | None = Field(None, description="On or before; a date includes its whole day.")


class FiltersIn(BaseModel):
    """Which documents may answer; every key narrows further. Any other key is equality on that metadata
    field (a list: any of its values); a field no document has is a 422."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"lang": ["fr"], "published": {"gte": "2026-02-01"}, "source": "lemonde.fr"}],
            "additionalProperties": {"description": "Equality on a metadata field: a value or a list of values."},
        },
    )

    doc_id: list[StrictStr] | None = Field(None, description="Document ids to search in.")
    lang: list[StrictStr] | None = Field(None, description="Document languages (ISO 639-1, e.g. fr, en).")
    published: PublishedRange | None = None
    __pydantic_extra__: dict[str, Any]


class AskRequest(BaseModel):
    """A question and how many passages to return."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"question": "Who mediated the talks?", "k": 5}]}
    )

    question: StrictStr = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The question, any language.")
    k: StrictInt = Field(5, ge=1, le=MAX_K, description="Number of passages to return.")
    filters: FiltersIn | None = Field(None, description="Search only the documents these metadata allow.")

    @field_validator("question")
    @classmethod
    def _readable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is empty or only whitespace")
        if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
            raise ValueError("question contains control characters or null bytes")
        return value


class HighlightOut(BaseModel):
    start: int = Field(description="Offset of the highlighted sentence in the document.")
    end: int
    text: str


class PassageOut(BaseModel):
    doc_id: str
    title: str
    start: int = Field(description="Offset of the passage in the document text.")
    end: int
    text: str = Field(description="Exactly document.text[start:end].")
    score: float
    highlight: HighlightOut


class AskResponse(BaseModel):
    question: str
    passages: list[PassageOut]
    took_ms: float


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    text: str
    metadata: dict


class HealthOut(BaseModel):
    status: str = Field(description="'ok', or 'no index' when none is loaded.")
    documents: int
    chunks: int
    model: str
    index_built_at: str | None = None
    build: str | None = Field(None, description="Build folder of the loaded index, as in the X-Index-Build header.")


class RebuildOut(BaseModel):
    documents: int
    chunks: int
    reused_documents: int
    embedded_texts: int
    seconds: float
    skipped: list[str]


class ErrorOut(BaseModel):
    detail: str
