"""A corrupt or foreign index: ``qa serve`` and ``qa ask`` refuse it in one line; nothing is ever unpickled."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from index.build.builder import build_index
from index.config import DEFAULT_MODEL
from index.storage.store import read_index, resolve_live
from service.bench.http_load import free_port
from tests.conftest import ROOT, make_corpus, make_settings
from tests.helpers import run_qa


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, encoder) -> Path:
    """A freshly built index (the ``var`` folder holding the symlink and its build)."""
    tmp = tmp_path_factory.mktemp("pristine")
    make_corpus(tmp / "corpus")
    build_index(make_settings(tmp), encoder, show_progress=False)
    return tmp / "var"


def truncate(folder: Path) -> None:
    path = folder / "chunk_vectors" / "vectors.faiss"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bytes(folder: Path) -> None:
    path = folder / "documents.jsonl"
    raw = bytearray(path.read_bytes())
    for offset in (40, 41, 42):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def delete_manifest(folder: Path) -> None:
    (folder / "manifest.json").unlink()


def delete_a_file(folder: Path) -> None:
    (folder / "bm25" / "vocab.index.json").unlink()


def foreign_model(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["settings"]["model"] = "some-org/other-model"
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def garbled_manifest(folder: Path) -> None:
    path = folder / "manifest.json"
    path.write_bytes(path.read_bytes()[:50])


CASES = {
    "truncated-file": (truncate, r"chunk_vectors/vectors\.faiss .*corrupt"),
    "flipped-bytes": (flip_bytes, r"documents\.jsonl .*corrupt"),
    "deleted-manifest": (delete_manifest, r"has no manifest\.json"),
    "deleted-file": (delete_a_file, r"bm25/vocab\.index\.json is missing"),
    "foreign-model": (foreign_model, rf"built with model 'some-org/other-model' \(configured: '{DEFAULT_MODEL}'\)"),
    "garbled-manifest": (garbled_manifest, r"manifest .* is damaged"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_serve_and_ask_refuse_a_damaged_or_foreign_index_in_one_line(pristine, tmp_path, case):
    damage, problem = CASES[case]
    var = tmp_path / "var"
    shutil.copytree(pristine, var, symlinks=True)
    index = var / "index"
    damage(resolve_live(index))
    port = free_port()
    with ThreadPoolExecutor(2) as pool:
        serve = pool.submit(run_qa, "serve", "--index", str(index), "--port", str(port), timeout=240)
        ask = pool.submit(run_qa, "ask", "Who mediated the talks?", "--index", str(index), timeout=240)
        results = {"serve": serve.result(), "ask": ask.result()}
    for command, result in results.items():
        assert_refused(result, problem, command)


def assert_refused(result: subprocess.CompletedProcess, problem: str, command: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"qa {command}: {output[-2000:]}"
    assert "Traceback" not in output and "Uvicorn running" not in output, f"qa {command}: {output[-2000:]}"
    assert result.stdout == "", f"qa {command} printed results: {result.stdout[:500]}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.rstrip("\n").endswith(errors[0]), result.stderr
    assert re.search(problem, errors[0]), errors[0]  # names the problem ...
    assert "rebuild it with `qa build`" in errors[0]  # ... and says how to fix it


# ---------------------------------------------------------------- no pickle anywhere

SOURCES = [*sorted((ROOT / "index").rglob("*.py")), *sorted((ROOT / "service").rglob("*.py"))]
PICKLE_USES = re.compile(r"allow_pickle\s*=\s*True|^\s*(import|from)\s+(c?pickle|dill|joblib|cloudpickle)\b", re.M)


def test_no_code_unpickles():
    assert SOURCES
    for path in SOURCES:
        found = PICKLE_USES.search(path.read_text(encoding="utf-8"))
        assert found is None, f"{path.relative_to(ROOT)}: {found.group(0)}"


def test_no_index_file_is_a_pickle_and_loading_never_unpickles(pristine, monkeypatch):
    folder = resolve_live(pristine / "index")
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) >= 10
    for path in files:
        head = path.read_bytes()[:2]
        assert not (head[:1] == b"\x80" and head[1:2] in bytes(range(2, 6))), f"{path.name} looks like a pickle"
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            assert not array.dtype.hasobject, path.name
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    assert {p.suffix for p in files} <= {".npy", ".json", ".jsonl", ".faiss", ".txt"}

    def refuse(*args, **kwargs):
        raise AssertionError("the index loader unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(f"pickle.{name}", refuse)  # a tripwire: the project itself never imports pickle
    data = read_index(folder)
    assert len(data.documents) == 3
