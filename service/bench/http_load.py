"""HTTP part of the benchmark: ``qa serve`` in a subprocess, driven by a load generator in another.

The load generator (``python -m service.bench.http_load spec.json``) runs N asyncio
clients that POST /ask back to back for a fixed time and prints one JSON
object: requests/s, latency percentiles and error count. Only loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from index.storage.store import read_manifest, resolve_live
from service.bench import wrk as bench_wrk
from service.bench.scale import peak_rss_mb

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens at now (the bench's servers, and the tests')."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


WORKERS = 2  # search processes: one per core


def run_http(
    index_dir: Path, model: str, questions: list[str], clients: int, seconds: float, runs: int = 1
) -> dict:
    """Serve ``index_dir`` with ``qa serve --workers 2`` and load it ``runs`` times.

    The figures are the medians over the runs (each run is also kept, under
    ``runs``; errors are summed). Peak RSS is read before the server stops.
    """
    port = free_port()
    url = f"http://{HOST}:{port}"
    built = read_manifest(resolve_live(index_dir)).settings  # serve it with the settings it was built with
    env = {**os.environ, "QA_MODEL": model, "QA_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1",
           "QA_WORKERS": str(WORKERS)}  # fmt: skip
    env.update(QA_CHUNK_SIZE=str(built.chunk_size), QA_CHUNK_OVERLAP=str(built.chunk_overlap))
    log = index_dir.parent / "serve.log"
    cmd = [sys.executable, "-m", "service.cli", "serve", "--host", HOST, "--port", str(port)]
    began = time.perf_counter()
    with log.open("wb") as sink:
        server = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, server, timeout=300, log=log)
        startup = time.perf_counter() - began
        drive_load(url, questions, clients, min(seconds, 3.0))  # warm-up, not counted
        probe = lambda: connections_per_worker(port, process_tree(server.pid))  # noqa: E731
        result = _median([drive_load(url, questions, clients, seconds, probe) for _ in range(runs)])
        result["server_startup_s"] = round(startup, 1)
        result["workers"] = WORKERS
        result["server_peak_rss_mb"] = round(sum(peak_rss_mb(pid) for pid in process_tree(server.pid)), 0)
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def drive_load(url: str, questions: list[str], clients: int, seconds: float, probe=None) -> dict:
    """Drive the server from another process: wrk when installed, else the Python generator below."""
    if bench_wrk.available():
        return bench_wrk.drive_wrk(url, questions, clients, seconds, probe)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"url": url, "questions": questions, "clients": clients, "seconds": seconds}, spec)
    try:
        load = subprocess.run(
            [sys.executable, "-m", "service.bench.http_load", spec.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 120,
        )
    finally:
        os.unlink(spec.name)
    return json.loads(load.stdout.strip().splitlines()[-1]) | {"load_generator": "python-httpx"}


def _median(loads: list[dict]) -> dict:
    """One result from several runs: the median of each figure, errors and requests summed."""
    out = dict(loads[0])
    for key in ("requests_per_s", "p50_ms", "p99_ms", "seconds"):
        out[key] = round(float(np.median([load[key] for load in loads])), 1)
    out["errors"] = sum(load["errors"] for load in loads)
    out["requests"] = sum(load["requests"] for load in loads)
    out["runs"] = loads
    out.pop("probe", None)
    return out


def connections_per_worker(port: int, pids: list[int]) -> list[int]:
    """Established connections to ``port`` held by each process, busiest first (from /proc).

    Keep-alive connections stay with the worker that accepted them, so this
    shows how evenly the load generator's clients were spread.
    """
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:  # 01: ESTABLISHED
            inodes.add(fields[9])
    counts = []
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        held = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (the uvicorn supervisor and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            children = (task / "children").read_text().split()
            todo.extend(int(child) for child in children)
    return found


def _wait_ready(url: str, server: subprocess.Popen, timeout: float, log: Path) -> None:
    """Wait for /health; the server answers only once every search process has loaded the index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise RuntimeError(f"qa serve exited with status {server.returncode} before answering: {tail}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("status") == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"qa serve did not answer /health within {timeout:.0f} s")


async def _client(http: httpx.AsyncClient, questions: list[str], offset: int, stop: float, out: dict) -> None:
    i = offset
    while time.perf_counter() < stop:
        question = questions[i % len(questions)]
        i += 1
        t0 = time.perf_counter()
        try:
            response = await http.post("/ask", json={"question": question, "k": 5})
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        elapsed = (time.perf_counter() - t0) * 1000
        if ok:
            out["latencies"].append(elapsed)
        else:
            out["errors"] += 1


async def drive(url: str, questions: list[str], clients: int, seconds: float) -> dict:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        warm = {"latencies": [], "errors": 0}
        await asyncio.gather(*(_client(http, questions, -1 - c, time.perf_counter() + 1.0, warm) for c in range(2)))
        out = {"latencies": [], "errors": 0}
        began = time.perf_counter()
        stop = began + seconds
        step = max(1, len(questions) // clients)
        await asyncio.gather(*(_client(http, questions, c * step, stop, out) for c in range(clients)))
        wall = time.perf_counter() - began
    values = np.asarray(out["latencies"] or [float("nan")])
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(out["latencies"]) + out["errors"],
        "errors": out["errors"],
        "requests_per_s": round(len(out["latencies"]) / wall, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
    }


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(asyncio.run(drive(spec["url"], spec["questions"], spec["clients"], spec["seconds"]))))
