"""The index on disk: one folder per build, swapped in atomically.

    var/index            -> symlink to index.builds/<build id>  (the live index)
    var/index.builds/    every finished build, plus .tmp-* folders being written
    var/index.lock       held while a build runs

A build writes a ``.tmp-*`` folder, fsyncs it, renames it to its final name
and then atomically replaces the ``var/index`` symlink. Readers resolve the
symlink once, so they see either the old build or the new one, never a mix.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.errors import BuildInProgressError, IndexCorruptError, IndexMismatchError, IndexMissingError
from index.storage.lexical import LexicalIndex
from index.storage.manifest import MANIFEST_FILE, REBUILD_HINT, Manifest, checksum_folder, verify_files
from index.storage.vectorstore import VectorStore, load_vector_store
from index.storage.vocabulary import Vocabulary
from index.text.corpus import Document
from index.text.tables import SpanTable

TMP_PREFIX = ".tmp-"


@dataclass
class IndexData:
    """Everything a searcher needs, as loaded from (or about to be written to) one build folder."""

    manifest: Manifest
    documents: list[Document]
    doc_langs: list[str]
    chunks: SpanTable
    sentences: SpanTable
    chunk_vectors: VectorStore
    sentence_vectors: VectorStore
    lexical: LexicalIndex  # passages, stems: questions in the document's language
    cognates: LexicalIndex  # passages, word prefixes: questions in another language
    sentence_lexical: LexicalIndex  # sentences, stems
    vocabulary: Vocabulary  # corpus words and their vectors, per language: translated query terms
    chunk_hubness: np.ndarray  # per passage row, its question hubness (storage.hubness; zeros without a reference)
    sentence_hubness: np.ndarray  # per sentence row
    folder: Path | None = None
    # A shard's rows in the whole index (index.storage.sharding): documents, passages, sentences; None when unsharded
    global_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def whole(self) -> bool:
        """Whether this is a whole index: not a shard of one (``read_shards``), nor a head (``read_head``)."""
        return self.global_rows is None and self.chunk_vectors is not None

    def lexical_parts(self) -> dict[str, LexicalIndex]:
        """The BM25 indexes by the folder name they are stored under."""
        return {"bm25": self.lexical, "bm25-cognates": self.cognates, "bm25-sentences": self.sentence_lexical}


def builds_dir(index_dir: Path) -> Path:
    return index_dir.parent / f"{index_dir.name}.builds"


def resolve_live(index_dir: Path) -> Path:
    """The concrete build folder behind ``index_dir``; IndexMissingError if there is none."""
    if not index_dir.exists():
        raise IndexMissingError(f"no index at {index_dir}: build one with `qa build` (or `make index`)")
    return index_dir.resolve()


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive lock for one build at a time; cleans up folders left by crashed builds."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = index_dir.parent / f"{index_dir.name}.lock"
    with lock_path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BuildInProgressError(f"another build of {index_dir} is running: wait for it to finish") from exc
        remove_stale_builds(index_dir)
        yield


def remove_stale_builds(index_dir: Path) -> None:
    """Delete temporary folders and links of interrupted builds, and builds no longer live."""
    for link in index_dir.parent.glob(f"{index_dir.name}.link-*"):
        if link.is_symlink():
            link.unlink()
    folder = builds_dir(index_dir)
    if not folder.is_dir():
        return
    live = index_dir.resolve() if index_dir.is_symlink() else None
    for child in folder.iterdir():
        if child.name.startswith(TMP_PREFIX) or (live is not None and child.resolve() != live):
            shutil.rmtree(child, ignore_errors=True)


def new_build_folder(index_dir: Path) -> Path:
    folder = builds_dir(index_dir) / f"{TMP_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def write_index(data: IndexData, folder: Path, shards: list[IndexData] | None = None) -> None:
    """Write every part of ``data`` into ``folder``; the manifest goes last, with checksums.

    With ``shards`` (index.storage.sharding.split_index), each shard's parts go to ``shards/NNN`` instead, and
    the vocabulary and the one manifest stay at the top.
    """
    if shards is None:
        write_parts(data, folder)
    else:
        for number, shard in enumerate(shards):
            part = shard_folder(folder, number)
            part.mkdir(parents=True)
            write_parts(shard, part)
            (part / "rows").mkdir()
            for name, rows in zip(("documents", "chunks", "sentences"), shard.global_rows, strict=True):
                np.save(part / "rows" / f"{name}.npy", rows.astype(np.int64), allow_pickle=False)
        data.manifest.shards = len(shards)
    (folder / "vocabulary").mkdir()
    data.vocabulary.save(folder / "vocabulary")
    data.manifest.files = checksum_folder(folder)
    (folder / MANIFEST_FILE).write_text(data.manifest.to_json(), encoding="utf-8")
    _fsync_tree(folder)


def shard_folder(folder: Path, number: int) -> Path:
    return folder / "shards" / f"{number:03d}"


def write_parts(data: IndexData, folder: Path) -> None:
    """Documents, tables, vector stores, BM25 and hubness of ``data`` (all but vocabulary and manifest)."""
    _write_documents(folder / "documents.jsonl", data.documents, data.doc_langs)
    data.chunks.save(folder, "chunks")
    data.sentences.save(folder, "sentences")
    for name, store in (("chunk_vectors", data.chunk_vectors), ("sentence_vectors", data.sentence_vectors)):
        (folder / name).mkdir()
        store.save(folder / name)
    for name, lexical in data.lexical_parts().items():
        (folder / name).mkdir()
        lexical.save(folder / name)
    (folder / "hubness").mkdir()
    for name, values in (("chunks", data.chunk_hubness), ("sentences", data.sentence_hubness)):
        np.save(folder / "hubness" / f"{name}.npy", values.astype(np.float32), allow_pickle=False)


def publish(folder: Path, index_dir: Path) -> Path:
    """Give the finished ``folder`` its final name and point ``index_dir`` at it atomically."""
    final = folder.with_name(folder.name.removeprefix(TMP_PREFIX))
    os.rename(folder, final)
    if index_dir.exists() and not index_dir.is_symlink():
        # An index folder from elsewhere (copied by hand): keep it as a build.
        os.rename(index_dir, builds_dir(index_dir) / f"adopted-{time.time_ns()}")
    link = index_dir.with_name(f"{index_dir.name}.link-{os.getpid()}")
    if link.is_symlink():
        link.unlink()
    os.symlink(os.path.relpath(final, index_dir.parent), link)
    os.replace(link, index_dir)
    _fsync_dir(index_dir.parent)
    return final


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise IndexCorruptError(f"index at {folder} has no {MANIFEST_FILE}: {REBUILD_HINT}")
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"manifest of the index at {folder} is unreadable: {REBUILD_HINT}") from exc
    return Manifest.from_json(raw, folder)


def read_index(folder: Path, verify: bool = True) -> IndexData:
    """Load an unsharded build folder; with ``verify``, every file must match its manifest checksum.

    A sharded build is loaded by ``read_shards`` (or joined into one by ``index.storage.sharding.join_shards``).
    """
    manifest = read_manifest(folder)
    if manifest.shards != 1:
        raise IndexMismatchError(f"index at {folder} has {manifest.shards} shards: load it with read_shards")
    if verify:
        verify_files(folder, manifest)
    vocabulary = _read_vocabulary(folder)
    data = read_parts(folder, manifest, vocabulary)
    if len(data.chunks) != manifest.counts.get("chunks") or len(data.documents) != manifest.counts.get("documents"):
        raise IndexCorruptError(f"index at {folder} does not match its manifest counts: {REBUILD_HINT}")
    return data


def read_shards(folder: Path, verify: bool = True) -> list[IndexData]:
    """Every shard of a build folder, each with its rows in the whole index (one shard when unsharded)."""
    manifest = read_manifest(folder)
    if manifest.shards == 1:
        return [read_index(folder, verify)]
    if verify:
        verify_files(folder, manifest)
    vocabulary = _read_vocabulary(folder)
    shards = [read_shard(folder, number, verify=False) for number in range(manifest.shards)]
    for shard in shards:
        shard.vocabulary = vocabulary
    if sum(len(shard.chunks) for shard in shards) != manifest.counts.get("chunks"):
        raise IndexCorruptError(f"index at {folder} does not match its manifest counts: {REBUILD_HINT}")
    return shards


def read_shard(folder: Path, number: int, verify: bool = True) -> IndexData:
    """One shard of a build folder (a shard replica's whole load), checked against its part of the manifest.

    Its vocabulary is left empty: the searcher holds the index's.
    """
    manifest = read_manifest(folder)
    if manifest.shards == 1:
        return read_index(folder, verify)
    if not 0 <= number < manifest.shards:
        raise IndexMismatchError(f"index at {folder} has {manifest.shards} shards, not a shard {number}")
    part = shard_folder(folder, number)
    if verify:
        prefix = part.relative_to(folder).as_posix() + "/"
        mine = {rel: digest for rel, digest in manifest.files.items() if rel.startswith(prefix)}
        verify_files(folder, replace(manifest, files=mine))
    shard = read_parts(part, manifest, Vocabulary({}, {}))
    try:
        shard.global_rows = tuple(
            np.load(part / "rows" / f"{name}.npy", allow_pickle=False) for name in ("documents", "chunks", "sentences")
        )
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"shard {number} of the index at {folder} is damaged: {REBUILD_HINT}") from exc
    shard.folder = folder
    return shard


def read_head(folder: Path) -> IndexData:
    """What a searcher whose shards live elsewhere needs of a build: manifest, vocabulary and folder."""
    manifest = read_manifest(folder)
    words = {rel: digest for rel, digest in manifest.files.items() if rel.startswith("vocabulary/")}
    verify_files(folder, replace(manifest, files=words))
    empty = SpanTable.empty()
    none = np.zeros(0, dtype=np.float32)
    return IndexData(manifest, [], [], empty, empty, None, None, None, None, None, _read_vocabulary(folder), none,
                     none, folder)  # type: ignore[arg-type]  # fmt: skip


def _read_vocabulary(folder: Path) -> Vocabulary:
    try:
        return Vocabulary.load(folder / "vocabulary")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"index at {folder} is damaged ({type(exc).__name__}): {REBUILD_HINT}") from exc


def read_parts(folder: Path, manifest: Manifest, vocabulary: Vocabulary) -> IndexData:
    """The parts ``write_parts`` wrote into ``folder``."""
    try:
        documents, langs = _read_documents(folder / "documents.jsonl")
        data = IndexData(
            manifest=manifest,
            documents=documents,
            doc_langs=langs,
            chunks=SpanTable.load(folder, "chunks"),
            sentences=SpanTable.load(folder, "sentences"),
            chunk_vectors=load_vector_store(folder / "chunk_vectors"),
            sentence_vectors=load_vector_store(folder / "sentence_vectors"),
            lexical=LexicalIndex.load(folder / "bm25"),
            cognates=LexicalIndex.load(folder / "bm25-cognates"),
            sentence_lexical=LexicalIndex.load(folder / "bm25-sentences"),
            vocabulary=vocabulary,
            chunk_hubness=np.load(folder / "hubness" / "chunks.npy", allow_pickle=False),
            sentence_hubness=np.load(folder / "hubness" / "sentences.npy", allow_pickle=False),
            folder=folder,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"index at {folder} is damaged ({type(exc).__name__}): {REBUILD_HINT}") from exc
    counts = (len(data.chunks), len(data.chunk_hubness), len(data.sentences), len(data.sentence_hubness))
    if counts[0] != counts[1] or counts[2] != counts[3]:
        raise IndexCorruptError(f"index at {folder} has hubness for other rows than its tables: {REBUILD_HINT}")
    return data


def _write_documents(path: Path, documents: list[Document], langs: list[str]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for doc, lang in zip(documents, langs, strict=True):
            record = {
                "doc_id": doc.doc_id,
                "title": doc.title,
                "text": doc.text,
                "metadata": doc.metadata,
                "lang": lang,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _read_documents(path: Path) -> tuple[list[Document], list[str]]:
    documents, langs = [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            documents.append(Document(record["doc_id"], record["title"], record["text"], record["metadata"]))
            langs.append(record["lang"])
    return documents, langs


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
