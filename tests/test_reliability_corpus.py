"""A hostile corpus folder: the build finishes, names every skipped input, and never leaves the corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path

from index.build.builder import build_index
from index.storage.store import read_index, resolve_live
from tests.conftest import SEED, make_corpus, make_settings

SECRET = "Zanzibar-password-4417 lives outside the corpus"


def hostile_corpus(tmp: Path) -> tuple[Path, dict[str, str]]:
    """The usual three documents plus every kind of bad input; returns the folder and, per bad name,
    a fragment its warning must contain."""
    corpus = make_corpus(tmp / "corpus")
    outside = tmp / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET, encoding="utf-8")
    (outside / "folder" / "leak.txt").write_text(SECRET, encoding="utf-8")

    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (corpus / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "latin1.txt").write_bytes("Le café était très crème.".encode("latin-1"))
    (corpus / "cut.txt").write_bytes("Une phrase coupée au milieu d'un caractère é".encode()[:-1])
    with (corpus / "huge.txt").open("w", encoding="utf-8") as handle:  # 50 MB of real text
        line = "Une ligne de texte ordinaire, répétée pour faire un très gros fichier.\n"
        handle.write(line * (50 * 1024 * 1024 // len(line.encode()) + 1))
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.md").write_text(" \n\t\n", encoding="utf-8")
    (corpus / "report.pdf").write_bytes(b"%PDF-1.7")
    lines = [
        json.dumps({"id": "good-1", "title": "Bon", "text": "Le port de Mascate est très actif."}),
        '{"id": "broken", "text": "unterminated',
        "[1, 2, 3]",
        json.dumps({"id": "no-text"}),
        json.dumps({"id": "bad-title", "title": 7, "text": "Texte."}),
        json.dumps({"text": "no id"}),
        '{"id": "cut-off", "te',
    ]
    (corpus / "bulk.jsonl").write_text("\n".join(lines), encoding="utf-8")
    os.symlink(outside / "secret.txt", corpus / "escape.txt")  # absolute link out of the corpus
    os.symlink(Path("..") / "outside" / "secret.txt", corpus / "relative-escape.txt")
    os.symlink(outside / "folder", corpus / "linked-folder")  # a folder out of the corpus
    os.symlink("loop.txt", corpus / "loop.txt")
    os.symlink("nowhere.txt", corpus / "dangling.txt")
    os.mkfifo(corpus / "pipe.txt")  # reading it would block forever
    expected = {
        "binary.txt": "binary",
        "image.md": "binary",
        "latin1.txt": "not valid UTF-8",
        "cut.txt": "not valid UTF-8",
        "huge.txt": "50.0 MiB is over the 20 MiB limit",
        "empty.txt": "empty",
        "blank.md": "empty",
        "report.pdf": "unsupported file type",
        "bulk.jsonl:2": "broken JSON line",
        "bulk.jsonl:3": "not a JSON object",
        "bulk.jsonl:4": "missing or empty 'text'",
        "bulk.jsonl:5": "'title' is not a string",
        "bulk.jsonl:6": "missing 'id'",
        "bulk.jsonl:7": "broken JSON line",
        "escape.txt": "outside the corpus folder",
        "relative-escape.txt": "outside the corpus folder",
        "linked-folder/": "outside the corpus folder",
        "loop.txt": "symlink loop",
        "dangling.txt": "not a regular file",
        "pipe.txt": "not a regular file",
    }
    return corpus, expected


def test_hostile_corpus_builds_the_rest_and_names_each_skipped_input(tmp_path, encoder):
    _, expected = hostile_corpus(tmp_path)
    settings = make_settings(tmp_path)
    report = build_index(settings, encoder, show_progress=False)

    for name, reason in expected.items():
        matching = [w for w in report.warnings if w.startswith(f"{name}:") or w.startswith(name + " ")]
        assert len(matching) == 1, (name, report.warnings)
        assert reason in matching[0], matching[0]
    assert len(report.warnings) == len(expected), report.warnings

    data = read_index(resolve_live(settings.index_dir))
    ids = {doc.doc_id for doc in data.documents}
    assert ids == {SEED.name, "weather.en.txt", "notes/cuisine.fr.md", "good-1"}
    assert report.documents == 4 and len(data.chunks) == report.chunks
    # Nothing from outside the corpus folder reached the index, in any file.
    assert all("Zanzibar" not in doc.text for doc in data.documents)
    for path in resolve_live(settings.index_dir).rglob("*"):
        assert not path.is_file() or b"Zanzibar" not in path.read_bytes(), path
