"""The manifest: what an index was built from and with, and checksums of its files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from index.errors import IndexCorruptError, IndexMismatchError

# 2: BM25 over word prefixes and over sentences; 3: the vocabulary of embedded words; 4: question hubness
FORMAT_VERSION = 4
MANIFEST_FILE = "manifest.json"
REBUILD_HINT = "rebuild it with `qa build` (or `make index`)"


@dataclass(frozen=True)
class BuildSettings:
    """Everything that changes the stored vectors or spans; a mismatch means rebuild."""

    model: str
    dim: int
    chunk_size: int
    chunk_overlap: int
    splitter: str = "prose-v1"
    title_in_passages: bool = False  # passages embedded and BM25-indexed with their document title
    title_in_sentences: bool = False  # sentences embedded (not BM25-indexed) with their document title
    reference: str = ""  # digest of the question reference the hubness was computed with ("" for none)


@dataclass
class Manifest:
    """Written last into a build folder; an index without a valid one is not an index."""

    settings: BuildSettings
    documents: dict[str, str]  # doc_id -> content hash
    counts: dict[str, int]
    created_at: str
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    format: int = FORMAT_VERSION
    shards: int = 1  # documents split by index.storage.sharding.shard_of into this many shard folders

    def to_json(self) -> str:
        fields = asdict(self)
        if self.shards == 1:
            del fields["shards"]  # an unsharded manifest stays as earlier versions wrote and read it
        return json.dumps(fields, ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str, where: Path) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT_VERSION:
                raise IndexMismatchError(
                    f"index at {where} has format {data.get('format')}, this version reads "
                    f"{FORMAT_VERSION}: {REBUILD_HINT}"
                )
            data["settings"] = BuildSettings(**data["settings"])
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise IndexCorruptError(f"manifest of the index at {where} is damaged: {REBUILD_HINT}") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_folder(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` except the manifest."""
    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Raise IndexCorruptError naming the first file that is missing or altered."""
    for rel, expected in manifest.files.items():
        path = folder / rel
        if not path.is_file():
            raise IndexCorruptError(f"index file {rel} is missing from {folder}: {REBUILD_HINT}")
        if file_sha256(path) != expected:
            raise IndexCorruptError(f"index file {rel} in {folder} is corrupt (checksum mismatch): {REBUILD_HINT}")


def check_compatible(stored: BuildSettings, wanted: BuildSettings, where: Path) -> None:
    """Raise IndexMismatchError when an index was built with other settings."""
    if stored == wanted:
        return
    differences = [
        f"{name} {getattr(stored, name)!r} (configured: {getattr(wanted, name)!r})"
        for name in (item.name for item in fields(BuildSettings))
        if getattr(stored, name) != getattr(wanted, name)
    ]
    raise IndexMismatchError(
        f"index at {where} was built with {', '.join(differences)}: {REBUILD_HINT}, "
        "or configure the settings it was built with"
    )
