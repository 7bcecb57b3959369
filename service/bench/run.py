"""``qa bench``: build throughput (local and on a Ray cluster), query latency at scale, HTTP load, ANN recall and a
LangChain peer.

Writes ``var/bench/bench.json`` and ``var/bench/bench.md`` (plus timestamped
copies). ``--quick`` runs every part on small sizes, for CI.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from index.build.builder import build_from_documents, passage_text, sentence_text
from index.config import Settings
from index.evaluation.datasets import EvalSet, squad_documents
from index.evaluation.runner import evaluate
from index.models.encoders import load_encoder
from index.searcher import Searcher
from index.storage.store import read_index, resolve_live
from index.text.corpus import load_corpus
from service.bench.cluster import NETNS_RUN, namespace_problem, run_cluster
from service.bench.encoder import bench_encoder
from service.bench.http_load import run_http
from service.bench.peer import interleaved_latency, run_peer
from service.bench.report import render_markdown, targets
from service.bench.scale import peak_rss_mb

ROOT = Path(__file__).resolve().parents[2]  # the project root
EVAL = ROOT.parent / "shared" / "eval"  # ../shared/eval beside it
SIGMA = 0.02  # per-dimension noise of synthetic vector copies (cosine ~0.9 to the original)
FULL = {"docs": None, "questions": (400, 100, 100), "encoder_passages": 64, "encoder_runs": 3,
        "sizes": [10_000, 100_000, 1_000_000], "http_size": 100_000,
        "http_seconds": 20.0, "http_runs": 3, "ann_threshold": None, "build_runs": 3,
        "cluster_docs": None, "cluster_runs": 2, "serving_sizes": [100_000, 1_000_000]}  # fmt: skip
QUICK = {"docs": 4, "questions": (30, 10, 10), "encoder_passages": 16, "encoder_runs": 1,
         "sizes": [5_000], "http_size": 5_000,
         "http_seconds": 3.0, "http_runs": 1, "ann_threshold": 10_000, "build_runs": 1,
         "cluster_docs": 2, "cluster_runs": 1, "serving_sizes": [5_000]}  # fmt: skip
SERVING_SHARDS = 2


def run_bench(settings: Settings, quick: bool = False, as_json: bool = False, sizes: list[int] | None = None) -> int:
    """Run every measurement, write the reports, print a summary (or the JSON); returns 0.

    ``sizes`` replaces the index sizes timed in process (the HTTP load keeps its own size, which is
    always among them), and serving on Ray is timed at those of its sizes that remain:
    ``--sizes 10000,100000`` skips the 1M index, the longest part of a full run.
    """
    cfg = QUICK if quick else FULL
    if sizes:
        chosen = sorted(set(sizes) | {cfg["http_size"]})
        cfg = {**cfg, "sizes": chosen, "serving_sizes": [size for size in cfg["serving_sizes"] if size in chosen]}
    out_dir = Path(settings.index_dir).parent / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=out_dir))
    began = time.perf_counter()
    try:
        results = _run(settings, cfg, quick, work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["total_s"] = round(time.perf_counter() - began, 1)
    results["targets"] = targets(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(results, indent=1, ensure_ascii=False)
    markdown = render_markdown(results)
    for name in ("bench", f"bench-{stamp}"):
        (out_dir / f"{name}.json").write_text(text, encoding="utf-8")
        (out_dir / f"{name}.md").write_text(markdown, encoding="utf-8")
    print(text if as_json else markdown)
    return 0


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _save_partial(out_dir: Path, results: dict) -> None:
    """Figures so far, so a run that fails late still leaves its measurements behind."""
    (out_dir / "bench.partial.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


def _run(settings: Settings, cfg: dict, quick: bool, work: Path, out_dir: Path) -> dict:
    documents, piaf_questions = squad_documents(EVAL / "piaf-dev.json")
    if cfg["docs"]:
        documents = documents[: cfg["docs"]]
        kept = {doc.doc_id for doc in documents}
        piaf_questions = [q for q in piaf_questions if q.gold_doc in kept]
    documents += load_corpus(settings.corpus_dir).documents
    questions, warmup = latency_questions(piaf_questions, cfg["questions"])
    ann_threshold = cfg["ann_threshold"] or settings.ann_threshold
    results = {"quick": quick, "model": settings.model, "machine": _machine(), "started_at": _now()}
    results["method"] = {"sigma": SIGMA, "ann_threshold": ann_threshold, "latency_questions": len(questions)}

    _log("build throughput")
    encoder = load_encoder(settings.model, settings.e5_engine)
    base_dir = work / "base" / "index"
    build_settings = settings.model_copy(update={"index_dir": base_dir, "shards": 1})
    results["build"] = _bench_build(documents, build_settings, encoder, cfg["build_runs"], work / "builds")
    _log("encoder speed")
    passages = _embedded_texts(read_index(resolve_live(base_dir)), passages_only=True)
    results["encoder"] = bench_encoder(
        encoder, passages[: cfg["encoder_passages"]], questions, runs=cfg["encoder_runs"]
    )
    _save_partial(out_dir, results)

    _log("cluster build (Ray on 127.0.0.1, in a private network namespace)")
    results["cluster"] = run_cluster(settings, EVAL, cfg["cluster_docs"], cfg["cluster_runs"], work)
    _save_partial(out_dir, results)

    results["scale"] = []
    http_dir = work / "http" / "index"
    for size in cfg["sizes"]:
        _log(f"in-process latency at {size} chunks")
        spec = {"base_index": str(base_dir), "questions": questions, "warmup": warmup, "model": settings.model,
                "chunks": size, "ann_threshold": ann_threshold, "sigma": SIGMA,
                "search": settings.search.model_dump(), "profile": os.environ.get("QA_BENCH_PROFILE_DIR")}  # fmt: skip
        if spec["profile"]:
            spec["profile"] = str(Path(spec["profile"]) / f"search-{size}.txt")
        if size == cfg["http_size"]:
            spec["save_to"] = str(http_dir)
        results["scale"].append(_child("service.bench.scale", spec, work / f"scale-{size}.json"))
        _save_partial(out_dir, results)

    _log(f"HTTP load at {cfg['http_size']} chunks")
    results["http"] = run_http(http_dir, settings.model, questions, 8, cfg["http_seconds"], cfg["http_runs"])
    results["http"]["chunks"] = next(s["chunks"] for s in results["scale"] if s["target_chunks"] == cfg["http_size"])
    shutil.rmtree(http_dir.parent, ignore_errors=True)
    _save_partial(out_dir, results)

    results["serving"] = []
    for size in cfg["serving_sizes"]:
        _log(f"serving on Ray at {size} chunks, {SERVING_SHARDS} shards")
        results["serving"].append(
            _bench_serving(size, base_dir, questions, warmup, settings, ann_threshold, work, cfg["http_seconds"])
        )
        _save_partial(out_dir, results)

    _log("peer comparison")
    results["peer"] = _bench_peer(documents, piaf_questions, questions, settings, encoder, base_dir, work)
    results["peak_rss_mb"] = round(peak_rss_mb(), 0)
    return results


def latency_questions(piaf, counts: tuple[int, int, int]) -> tuple[list[str], list[str]]:
    """Distinct questions: PIAF (fr), XQuAD en and es; plus 10 others to warm up with."""
    _, en = squad_documents(EVAL / "xquad-en.json")
    _, es = squad_documents(EVAL / "xquad-es.json")
    rng = random.Random(0)
    picked, warm = [], []
    for pool, count in zip((piaf, en, es), counts, strict=True):
        texts = list(dict.fromkeys(q.question.strip() for q in pool))
        rng.shuffle(texts)
        picked += texts[:count]
        warm += texts[count : count + 4]
    return list(dict.fromkeys(picked)), warm[:10]


def _bench_serving(size: int, base_dir: Path, questions, warmup, settings: Settings, ann_threshold: int, work: Path,
                   http_seconds: float):  # fmt: skip
    """service.bench.serving in a child process in a private network namespace (Ray sees loopback only);
    skipped, and said so, without Ray Serve or such a namespace."""
    from service.cluster import serve_installed

    if not serve_installed():
        return {"target_chunks": size, "skipped": "Ray Serve is not installed (make install)"}
    problem = namespace_problem()
    if problem not in (None, "outside"):
        return {"target_chunks": size, "skipped": problem}
    spec = {"base_index": str(base_dir), "questions": questions, "warmup": warmup, "model": settings.model,
            "chunks": size, "ann_threshold": ann_threshold, "sigma": SIGMA, "search": settings.search.model_dump(),
            "shards": SERVING_SHARDS, "work": str(work / f"serving-{size}"), "http_seconds": http_seconds}  # fmt: skip
    try:
        return _child("service.bench.serving", spec, work / f"serving-{size}.json", netns=problem == "outside")
    finally:
        shutil.rmtree(work / f"serving-{size}", ignore_errors=True)


def _bench_build(documents, settings: Settings, encoder, runs: int, scratch: Path) -> dict:
    """Full builds and raw encoding of the same texts, alternated ``runs`` times; medians of each."""
    encoder.encode_passages(["warm up " * 20] * 8, batch_size=settings.batch_size)
    full_s, raw_s = [], []
    for run in range(runs):
        # Every build but the last goes to its own folder, so that each is a full build;
        # the last one is the index the rest of the bench uses.
        folder = settings.index_dir if run == runs - 1 else scratch / str(run)
        full = build_from_documents(documents, settings.model_copy(update={"index_dir": folder}), encoder,
                                    show_progress=False)  # fmt: skip
        full_s.append(full.seconds)
        texts = _embedded_texts(read_index(resolve_live(folder)))
        t0 = time.perf_counter()
        encoder.encode_passages(texts, batch_size=settings.batch_size)
        raw_s.append(time.perf_counter() - t0)
    shutil.rmtree(scratch, ignore_errors=True)
    full_median, raw_median = statistics.median(full_s), statistics.median(raw_s)
    incremental_s, changed, incremental_texts = _bench_incremental(documents, settings, encoder, runs)
    incremental_median = statistics.median(incremental_s)
    count = full.embedded_texts
    return {
        "model": settings.model,
        "batch_size": settings.batch_size,
        "runs": runs,
        "documents": full.documents,
        "chunks": full.chunks,
        "sentences": full.sentences,
        "words": count - full.chunks - full.sentences,  # the vocabulary, embedded by a full build too
        "embedded_texts": count,
        "full_s": round(full_median, 2),
        "full_s_each": [round(x, 2) for x in full_s],
        "full_texts_per_s": round(count / full_median, 1),
        "full_chunks_per_s": round(full.chunks / full_median, 1),
        "raw_encoder_s": round(raw_median, 2),
        "raw_encoder_s_each": [round(x, 2) for x in raw_s],
        "raw_texts_per_s": round(count / raw_median, 1),
        "raw_chunks_per_s": round(full.chunks / raw_median, 1),
        "build_vs_raw": round(raw_median / full_median, 3),
        "incremental_changed_docs": changed,
        "incremental_embedded_texts": incremental_texts,
        "incremental_s": round(incremental_median, 2),
        "incremental_s_each": [round(x, 2) for x in incremental_s],
        "incremental_vs_full": round(incremental_median / full_median, 4),
    }


def _bench_incremental(documents, settings: Settings, encoder, runs: int) -> tuple[list[float], int, int]:
    """Seconds of ``runs`` rebuilds of the live index, each with the same 1% of the documents edited anew."""
    changed = max(1, math.ceil(len(documents) / 100))
    seconds, embedded = [], 0
    for run in range(runs):
        edited = list(documents)
        for i in range(changed):
            at = i * len(edited) // changed
            added = f"\n\nCe paragraphe a été ajouté pour le test numéro {run + 1}."
            edited[at] = replace(edited[at], text=edited[at].text + added)
        report = build_from_documents(edited, settings, encoder, show_progress=False)
        seconds.append(report.seconds)
        embedded = report.embedded_texts
    return seconds, changed, embedded


def _embedded_texts(data, passages_only: bool = False) -> list[str]:
    """Exactly the texts a full build of ``data`` embedded, in its order: passages, sentences (each titled as its
    manifest says), then the vocabulary's words."""
    built = data.manifest.settings
    texts = [passage_text(data.documents, data.chunks, row, built.title_in_passages) for row in range(len(data.chunks))]
    if passages_only:
        return texts
    texts += [sentence_text(data.documents, data.sentences, row, built.title_in_sentences)
              for row in range(len(data.sentences))]  # fmt: skip
    return texts + [word for words in data.vocabulary.words.values() for word in words]


def _bench_peer(documents, piaf_questions, questions, settings, encoder, base_dir: Path, work: Path) -> dict:
    """Ours at the defaults and ours with MiniLM against LangChain FAISS + MiniLM: quality, then the three
    searches' latency over the same questions in turns."""
    eval_set = EvalSet("piaf-dev", piaf_questions, documents)
    ours_default = Searcher(read_index(resolve_live(base_dir)), encoder, settings.search)
    out = {"ours_default": _ours(eval_set, ours_default, {})}
    # A new Settings, not a copy: MiniLM gets its own search defaults (index.config.MODEL_SEARCH_DEFAULTS).
    minilm_settings = Settings(model="minilm", index_dir=work / "minilm" / "index", corpus_dir=settings.corpus_dir)
    minilm = load_encoder("minilm")
    report = build_from_documents(documents, minilm_settings, minilm, show_progress=False)
    built = {"build_s": round(report.seconds, 2), "chunks": report.chunks, "embedded_texts": report.embedded_texts}
    data = read_index(resolve_live(minilm_settings.index_dir))
    ours_minilm = Searcher(data, minilm, minilm_settings.search)
    out["ours_minilm"] = _ours(eval_set, ours_minilm, built)
    out["langchain_minilm"], peer_search = run_peer(data, piaf_questions)
    searches = {"ours_default": partial(ours_default.search, k=5), "ours_minilm": partial(ours_minilm.search, k=5),
                "langchain_minilm": peer_search}  # fmt: skip
    for name, latency in interleaved_latency(searches, questions).items():
        out[name].update(latency)
    peer, ours, default = out["langchain_minilm"], out["ours_minilm"], out["ours_default"]
    out["ratios"] = {
        "p50_ours_default_over_peer": round(default["search"]["p50_ms"] / peer["search"]["p50_ms"], 3),
        "p99_ours_default_over_peer": round(default["search"]["p99_ms"] / peer["search"]["p99_ms"], 3),
        "p50_ours_minilm_over_peer": round(ours["search"]["p50_ms"] / peer["search"]["p50_ms"], 3),
        "p99_ours_minilm_over_peer": round(ours["search"]["p99_ms"] / peer["search"]["p99_ms"], 3),
        "build_s_ours_minilm_over_peer": round(ours["build_s"] / peer["build_s"], 3),
        "hit@1_ours_minilm_minus_peer": round(ours["hit@1"] - peer["hit@1"], 4),
        "hit@1_ours_default_minus_peer": round(default["hit@1"] - peer["hit@1"], 4),
    }
    return out


def _ours(eval_set, searcher: Searcher, built: dict) -> dict:
    score = evaluate(eval_set, searcher, k=5, show_progress=False)
    out = {"model": searcher.encoder.name, **built}
    out.update({"hit@1": round(score.hit_at_1, 4), "hit@5": round(score.hit_at_5, 4), "questions": score.n})
    return out


def _child(module: str, spec: dict, path: Path, netns: bool = False) -> dict:
    path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", module, str(path)]
    done = subprocess.run([str(NETNS_RUN), *command] if netns else command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    import faiss

    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(int(mem.split()[1]) / 2**20, 1),
        "gpu": "none",
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "platform": platform.platform(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
