"""The ``qa`` console script, run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_EVAL, make_corpus
from tests.helpers import run_qa, squad_part


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    corpus = make_corpus(tmp / "corpus")
    (corpus / "broken.txt").write_bytes(b"\xff\xfe caf\xe9")
    result = run_qa("build", "--corpus", str(corpus), "--index", str(tmp / "index"))
    assert result.returncode == 0, result.stderr
    assert "indexed 3 documents" in result.stdout and "reused" in result.stdout
    assert "broken.txt" in result.stderr  # skipped with a warning that names it
    return corpus, tmp / "index"


def test_ask_prints_passages_and_json(cli_index):
    _, index = cli_index
    result = run_qa("ask", "Who mediated the talks?", "-k", "2", "--index", str(index))
    assert result.returncode == 0, result.stderr
    assert "Badr al-Busaidi" in result.stdout
    as_json = json.loads(run_qa("ask", "Who mediated the talks?", "--json", "--index", str(index)).stdout)
    assert as_json["passages"][0]["highlight"]["text"]


def test_eval_jsonl_against_the_index(cli_index, tmp_path):
    _, index = cli_index
    questions = tmp_path / "set.jsonl"
    rows = [
        {"id": "1", "question": "Who mediated the talks?", "answers": ["Badr al-Busaidi"], "lang": "en"},
        {"id": "2", "question": "Où se sont réunies les délégations ?", "answers": ["Mascate"], "lang": "fr"},
    ]
    questions.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = run_qa("eval", str(questions), "--json", "--index", str(index))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["set.jsonl"]
    assert set(figures) >= {"hit@1", "hit@5", "mrr@10", "n", "seconds", "passage_chars"}
    assert figures["n"] == 2 and figures["hit@5"] == 1.0
    table = run_qa("eval", str(questions), "--index", str(index)).stdout
    assert "hit@1" in table and "set.jsonl" in table


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_EVAL / "xquad-es.json").exists(), reason="../shared/eval is not present")
def test_eval_squad_cross_lingual(tmp_path):
    # A quarter of XQuAD's articles: building and asking all 1190 questions twice took a minute.
    spanish, questions = squad_part(SHARED_EVAL / "xquad-es.json", tmp_path / "sets", every=4)
    english, _ = squad_part(SHARED_EVAL / "xquad-en.json", tmp_path / "sets", every=4)
    index = tmp_path / "index"
    result = run_qa("eval", str(spanish), "--questions-from", str(english), "--json", "--index", str(index))
    assert result.returncode == 0, result.stderr
    [(name, figures)] = json.loads(result.stdout).items()
    assert "xquad-en.json" in name and figures["n"] == questions >= 250
    assert figures["hit@1"] > 0.5  # a sanity floor, far below the measured figure


def test_errors_are_one_line_without_traceback(tmp_path, cli_index):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_qa("build", "--corpus", str(empty), "--index", str(tmp_path / "index"))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    result = run_qa("ask", "hello", "--index", str(tmp_path / "missing"))
    assert result.returncode == 2 and "qa build" in result.stderr
    result = run_qa("ask", "hello", "--index", str(cli_index[1]), QA_MODEL="minilm")
    assert result.returncode == 2 and "rebuild" in result.stderr and "Traceback" not in result.stderr
    result = run_qa("eval", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_bench_sizes_are_checked_before_anything_runs():
    for sizes in ("x", "10", ""):
        result = run_qa("bench", "--sizes", sizes)
        assert result.returncode == 2 and "--sizes" in result.stderr and "Traceback" not in result.stderr
