"""The serving part of ``qa bench``: one synthetic index searched whole, in shards in process, and on Ray Serve.

At one size (``service.bench.scale``'s synthetic tiling), with S shards and R = 1 replica each, on a
Ray instance this process starts on 127.0.0.1:

- p50/p99 per question: the whole index in process, its shards in process, and through the cluster
  (the searcher here, the shards in Serve replicas); the fan-out overhead is cluster p50 minus
  whole p50, beside a bare Serve handle round trip measured the same way;
- peak RSS of each shard replica (the shard plus Ray's worker) against a process that loads the
  whole index and searches, as ``qa serve`` does.

Run as ``python -m service.bench.serving spec.json`` in a child process, in a private network namespace
(``run.py`` sees to it); it prints one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from index.storage.store import new_build_folder, publish, read_index, resolve_live, write_index
from service.bench.scale import peak_rss_mb, percentiles, scaled_index, timed_searches

ROUND_TRIPS = 200


def measure(spec: dict) -> dict:
    from index.config import SearchParams, Settings
    from index.models.encoders import load_encoder
    from index.searcher import Searcher
    from index.storage.sharding import split_index
    from index.storage.store import read_shards

    base = read_index(resolve_live(Path(spec["base_index"])))
    encoder = load_encoder(spec["model"])
    questions, params, shards = spec["questions"], SearchParams(**spec["search"]), spec["shards"]
    copies = max(1, round(spec["chunks"] / len(base.chunks)))
    data, _ = scaled_index(base, copies, spec["ann_threshold"], spec["sigma"], encoder.encode_queries(questions))
    out = {"chunks": len(data.chunks), "shards": shards, "replicas": 1}
    whole_dir, sharded_dir = Path(spec["work"]) / "whole" / "index", Path(spec["work"]) / "sharded" / "index"
    for target, parts in ((whole_dir, None), (sharded_dir, split_index(data, shards))):
        folder = new_build_folder(target)
        write_index(data, folder, parts)
        publish(folder, target)
    whole = Searcher(data, encoder, params)
    out["whole"] = _latency(whole, spec)
    in_shards = Searcher.of_shards(read_shards(resolve_live(sharded_dir)), encoder, params)
    out["sharded_in_process"] = _latency(in_shards, spec)
    out["store"] = data.chunk_vectors.kind
    out["top5_overlap"] = top5_overlap(whole, in_shards, questions)
    del data, whole, in_shards
    out["whole_process_peak_rss_mb"] = _loader_rss(whole_dir, spec)
    settings = Settings(index_dir=sharded_dir, model=spec["model"], shards=shards, search=params)
    out.update(_on_ray(settings, encoder, spec))
    out["fanout_overhead_ms"] = round(out["cluster"]["p50_ms"] - out["whole"]["p50_ms"], 2)
    return out


def top5_overlap(whole, sharded, questions: list[str]) -> float:
    """Mean share of the whole index's top-5 passages that the sharded search also returns (1.0 with flat stores,
    where the results are equal; below with IVF stores, whose lists differ per shard)."""
    shares = []
    for question in questions:
        a, b = ({(p.doc_id, p.start) for p in s.search(question, 5).passages} for s in (whole, sharded))
        shares.append(len(a & b) / max(1, len(a)))
    return round(sum(shares) / max(1, len(shares)), 4)


def _latency(searcher, spec: dict) -> dict:
    for question in spec["warmup"]:
        searcher.search(question, 5)
    return percentiles(timed_searches(searcher, spec["questions"])[0])


def _on_ray(settings, encoder, spec: dict) -> dict:
    """Deploy the shards on a local Ray instance; time searches and handle round trips; read replica RSS."""
    from service.cluster import LOCAL, ClusterState, handle_round_trips

    state = ClusterState(settings, LOCAL, replicas=1, replica_cpus=spec.get("replica_cpus", 0.5), encoder=encoder)
    try:
        state.load()
        out = {"cluster": _latency(state.searcher, spec)}
        payload = np.zeros(512, dtype=np.float32)  # about a question's vector
        out["handle_round_trip"] = percentiles(handle_round_trips(payload, ROUND_TRIPS))
        out["http"] = _http(state, spec)
        out["replica_peak_rss_mb"] = [round(peak_rss_mb(pid), 0) for pid in replica_pids()]
        out["driver_peak_rss_mb"] = round(peak_rss_mb(), 0)  # this process: it built the synthetic index too
        return out
    finally:
        state.close()


def _http(state, spec: dict) -> dict:
    """Requests/s and latency with 8 clients (a load generator process) against `qa serve --cluster`'s app,
    served here by uvicorn on 127.0.0.1 around the deployed state."""
    import threading

    import uvicorn

    from service.app import create_app
    from service.bench.http_load import drive_load, free_port
    from service.cluster import ClusterBackend

    port = free_port()
    app = create_app(state.settings, backend=ClusterBackend(state))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:  # a server that cannot start ends the bench part instead of hanging it
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the HTTP server on port {port} did not start")
        time.sleep(0.05)
    try:
        url = f"http://127.0.0.1:{port}"
        drive_load(url, spec["questions"], 8, 3.0)  # warm-up, not counted
        return drive_load(url, spec["questions"], 8, spec.get("http_seconds", 10.0)) | {"clients": 8}
    finally:
        server.should_exit = True
        thread.join(30)


def replica_pids(app_prefix: str = "qa-") -> list[int]:
    """Processes of the Serve replicas whose application name starts with ``app_prefix`` (Ray titles them
    ``ray::ServeReplica:<app>:...``); the bench's echo app is named otherwise."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"ServeReplica:{app_prefix}" in command :
                pids.append(int(entry.name))
    return sorted(pids)


def _loader_rss(index_dir: Path, spec: dict) -> float:
    """Peak RSS of a fresh process that loads the whole index and searches, as a single `qa serve` would."""
    code = (
        "import json,sys; from pathlib import Path; from index.config import SearchParams;"
        "from index.models.encoders import load_encoder; from index.searcher import Searcher;"
        "from index.storage.store import read_index, resolve_live; from service.bench.scale import peak_rss_mb;"
        "s=json.loads(sys.argv[1]); e=load_encoder(s['model']);"
        "x=Searcher(read_index(resolve_live(Path(s['index']))), e, SearchParams(**s['search']));"
        "[x.search(q, 5) for q in s['questions']]; print(peak_rss_mb())"
    )
    args = {"index": str(index_dir), "model": spec["model"], "search": spec["search"], "questions": spec["warmup"]}
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True)
    return round(float(done.stdout.strip().splitlines()[-1]), 0)


if __name__ == "__main__":
    result = measure(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    print(json.dumps(result))
