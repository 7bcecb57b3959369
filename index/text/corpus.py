"""Reading the corpus folder into documents.

A document id is stable: the file path relative to the corpus folder, or the
``id`` field of a JSONL line. Unusable files are skipped with a warning that
names them; only an empty result is an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.errors import CorpusNotFoundError, EmptyCorpusError
from index.text.metadata import MetadataError, clean_fields, headline, read_html, split_front_matter

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIX = ".jsonl"
MAX_FILE_BYTES = 20 * 1024 * 1024  # larger files are almost always dumps, not articles
KNOWN_LANGS = {"fr", "en", "es", "de", "it", "pt", "nl"}


@dataclass(frozen=True)
class Document:
    """One article: its stable id, a title, the exact text, and free metadata."""

    doc_id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """SHA-256 of everything that affects the vectors (title and text).

        Metadata is left out: a build always stores the documents' current
        metadata and rebuilds BM25 whole, so a metadata change needs no new
        vectors (see ``index.build.builder._reusable_spans`` for the language).
        """
        digest = hashlib.sha256()
        digest.update(self.title.encode("utf-8"))
        digest.update(b"\0")
        digest.update(self.text.encode("utf-8"))
        return digest.hexdigest()


@dataclass
class CorpusLoad:
    """The documents read from a folder, plus one warning per skipped input."""

    documents: list[Document]
    warnings: list[str]


def load_corpus(corpus_dir: Path, max_file_bytes: int = MAX_FILE_BYTES) -> CorpusLoad:
    """Read every supported file under ``corpus_dir``; raise if nothing usable is found."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise CorpusNotFoundError(
            f"corpus folder {root} does not exist: create it and put .txt, .md, .html or .jsonl files in it"
        )
    documents: list[Document] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for path in _walk(root, warnings):
        for doc in _read_file(root, path, max_file_bytes, warnings):
            if doc.doc_id in seen:
                warnings.append(f"{doc.doc_id}: duplicate document id, later copy skipped")
                continue
            seen.add(doc.doc_id)
            documents.append(doc)
    for warning in warnings:
        log.warning("skipped %s", warning)
    if not documents:
        raise EmptyCorpusError(
            f"corpus folder {root} holds no usable document: add UTF-8 .txt, .md, .jsonl or .html files"
        )
    return CorpusLoad(documents, warnings)


def _walk(root: Path, warnings: list[str]) -> list[Path]:
    """Files under root in a stable order; symlinks that leave the corpus are never followed."""
    real_root = root.resolve()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            link = Path(dirpath) / name
            if link.is_symlink():  # os.walk does not descend into it: say so
                rel = link.relative_to(root).as_posix()
                where = "a folder" if _inside(_target(link), real_root) else "outside the corpus folder"
                warnings.append(f"{rel}/: symlinked folder ({where}), not followed")
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (Path(dirpath) / d).is_symlink())
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = _target(path)
                if target is None:
                    warnings.append(f"{rel}: symlink loop or unreadable link, not followed")
                    continue
                if not _inside(target, real_root):
                    warnings.append(f"{rel}: symlink points outside the corpus folder, not followed")
                    continue
            found.append(path)
    return found


def _target(link: Path) -> Path | None:
    """Where a symlink leads, or None for a loop or an unreadable link."""
    try:
        return link.resolve()
    except (OSError, RuntimeError):  # RuntimeError: symlink loop (Python < 3.13)
        return None


def _inside(path: Path | None, root: Path) -> bool:
    return path is not None and (path == root or root in path.parents)


def _read_file(root: Path, path: Path, max_bytes: int, warnings: list[str]) -> list[Document]:
    rel = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES and suffix != JSONL_SUFFIX:
        warnings.append(f"{rel}: unsupported file type (use .txt, .md, .html or .jsonl)")
        return []
    if not path.is_file():
        warnings.append(f"{rel}: not a regular file")
        return []
    try:
        size = path.stat().st_size
        if size > max_bytes:
            warnings.append(f"{rel}: {size / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB limit")
            return []
        raw = path.read_bytes()
    except OSError as exc:  # vanished or unreadable since the walk
        warnings.append(f"{rel}: cannot be read ({exc.strerror or type(exc).__name__})")
        return []
    if b"\0" in raw:
        warnings.append(f"{rel}: binary file (contains NUL bytes)")
        return []
    if suffix in HTML_SUFFIXES:
        return _read_page(rel, path, raw, warnings)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        warnings.append(f"{rel}: not valid UTF-8 (byte {exc.start})")
        return []
    if suffix == JSONL_SUFFIX:
        return _parse_jsonl(rel, text, warnings)
    try:
        fields, text = split_front_matter(text)
    except MetadataError as exc:
        warnings.append(f"{rel}: {exc}")
        return []
    if not text.strip():
        warnings.append(f"{rel}: empty file")
        return []
    metadata = _file_metadata(rel, path, fields)
    title = metadata.pop("title", None) or _title_for(path, text)
    return [Document(rel, title, text, metadata)]


def _read_page(rel: str, path: Path, raw: bytes, warnings: list[str]) -> list[Document]:
    """A web page: its main text, title, date and site, as trafilatura extracts them."""
    try:
        text, fields = read_html(raw)
    except MetadataError as exc:
        warnings.append(f"{rel}: {exc}")
        return []
    metadata = _file_metadata(rel, path, fields)
    title = metadata.pop("title", None) or _file_title(path)
    return [Document(rel, title, text, metadata)]


def _file_metadata(rel: str, path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """The file's own fields over what its name says: its path, and ``lang`` from ``name.fr.txt``."""
    metadata: dict[str, Any] = {"path": rel}
    lang = _lang_from_name(path.name)
    if lang:
        metadata["lang"] = lang
    metadata.update(fields)
    return metadata


def _parse_jsonl(rel: str, text: str, warnings: list[str]) -> list[Document]:
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            warnings.append(f"{rel}:{number}: broken JSON line ({exc.msg})")
            continue
        problem = _jsonl_problem(record)
        if problem:
            warnings.append(f"{rel}:{number}: {problem}")
            continue
        try:
            metadata = clean_fields({k: v for k, v in record.items() if k not in ("id", "text", "title")})
        except MetadataError as exc:
            warnings.append(f"{rel}:{number}: {exc}")
            continue
        metadata["path"] = rel
        title = str(record.get("title") or record["id"])
        documents.append(Document(str(record["id"]), title, record["text"], metadata))
    return documents


def _jsonl_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "line is not a JSON object"
    if not isinstance(record.get("id"), (str, int)) or str(record.get("id")).strip() == "":
        return "missing 'id'"
    if not isinstance(record.get("text"), str) or not record["text"].strip():
        return "missing or empty 'text'"
    if "title" in record and not isinstance(record["title"], str):
        return "'title' is not a string"
    return None


def _title_for(path: Path, text: str) -> str:
    """The first Markdown heading of a .md, the first line of a .txt when it reads as a headline, else the
    file name made readable. The line stays in the text: offsets are on the file's text."""
    if path.suffix.lower() == ".md":
        for line in text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    elif title := headline(text):
        return title
    return _file_title(path)


def title_from_file_name(doc: Document) -> bool:
    """Whether ``doc``'s title is only its file name made readable: no heading, headline or metadata gave one."""
    return doc.title == _file_title(Path(doc.doc_id))


def _file_title(path: Path) -> str:
    stem = path.name.split(".")[0]
    return stem.replace("-", " ").replace("_", " ").strip().capitalize() or path.name


def _lang_from_name(name: str) -> str | None:
    """``article.fr.txt`` declares French."""
    parts = name.lower().split(".")
    if len(parts) >= 3 and parts[-2] in KNOWN_LANGS:
        return parts[-2]
    return None
