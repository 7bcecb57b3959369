"""The bench's cluster part: cluster build throughput with 1 and 2 encoder actors, and against a local build.

Ray must only ever see loopback, so this part runs in a private network namespace: ``run_cluster`` starts
this module as a child under ``tests/netns-run`` (``unshare -n``, loopback up; root only), or directly when
the bench already runs in such a namespace; otherwise the part is skipped, and the report says why. The child
starts one Ray instance on 127.0.0.1 and, on the same corpus, alternates a local single-process build, a
cluster build with 1 actor and one with 2 actors (1 CPU and one BLAS thread each), each a full build into a
fresh folder. Usage: ``python -m service.bench.cluster spec.json`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from index.build.builder import build_from_documents
from index.build.embedding import Embedder
from index.config import ClusterParams, Settings
from index.evaluation.datasets import squad_documents
from index.models.encoders import load_encoder
from index.text.corpus import load_corpus

ROOT = Path(__file__).resolve().parents[2]
NETNS_RUN = ROOT / "tests" / "netns-run"


def run_cluster(settings: Settings, eval_dir: Path, docs: int | None, runs: int, work: Path) -> dict:
    """The cluster figures, measured in a child process in a private network namespace (or why they were not)."""
    problem = namespace_problem()
    spec_path, out_path = work / "cluster-spec.json", work / "cluster.json"
    spec = {"piaf": str(eval_dir / "piaf-dev.json"), "docs": docs, "corpus": str(settings.corpus_dir),
            "model": settings.model, "batch_size": settings.batch_size, "runs": runs,
            "work": str(work / "cluster")}  # fmt: skip
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "service.bench.cluster", "--child", str(spec_path), str(out_path)]
    if problem == "outside":
        command = [str(NETNS_RUN), *command]
    elif problem:
        return {"skipped": problem}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the cluster bench failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(out_path.read_text(encoding="utf-8"))


def namespace_problem() -> str | None:
    """None inside a private network namespace; "outside" when one can be made here; else why not."""
    if network_interfaces() == {"lo"}:
        return None
    probe = subprocess.run([str(NETNS_RUN), "sh", "-c", "cat /proc/self/net/dev"], capture_output=True, text=True)
    if probe.returncode == 0 and _interface_names(probe.stdout) == {"lo"}:
        return "outside"
    return "needs a private network namespace: run the bench as root (it uses unshare -n), or inside tests/netns-run"


def network_interfaces() -> set[str]:
    """Interfaces of this process's network namespace (/sys/class/net shows the namespace sysfs was mounted in)."""
    return _interface_names(Path("/proc/self/net/dev").read_text())


def _interface_names(net_dev: str) -> set[str]:
    return {line.split(":", 1)[0].strip() for line in net_dev.splitlines()[2:]}


class _Timed:
    """An embedder that also times its embed calls, and keeps the cluster's encoding span (actors started)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.seconds, self.encoding_s, self.actor_peak_mb = inner, 0.0, 0.0, 0.0

    @property
    def workers(self) -> int:
        return self.inner.workers

    def embed(self, texts, dim, progress=None):
        began = time.perf_counter()
        try:
            return self.inner.embed(texts, dim, progress)
        finally:
            self.seconds += time.perf_counter() - began
            # Locally there is nothing to start: the whole call is encoding.
            self.encoding_s += getattr(self.inner, "encoding_s", time.perf_counter() - began)
            self.actor_peak_mb = max(self.actor_peak_mb, getattr(self.inner, "actor_peak_mb", 0.0))


def measure(spec: dict) -> dict:
    """Alternated full builds of one corpus: local, cluster with 1 actor, cluster with 2; medians of each."""
    from index.build.cluster import LOCAL, ClusterEmbedder, ray_session
    from index.build.embedding import LocalEmbedder

    documents, _ = squad_documents(Path(spec["piaf"]))
    documents = documents[: spec["docs"]] if spec["docs"] else documents
    documents += load_corpus(Path(spec["corpus"])).documents
    encoder = load_encoder(spec["model"])
    encoder.encode_passages(["warm up " * 20] * 8, batch_size=spec["batch_size"])  # as the actors' first batch does
    settings = Settings(model=spec["model"], batch_size=spec["batch_size"])
    work = Path(spec["work"])
    kinds = {"local": None, "actors_1": 1, "actors_2": 2}
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    try:
        began = time.perf_counter()
        with ray_session(LOCAL, ClusterParams(actors=2, actor_cpus=1)):
            ray_start_s = time.perf_counter() - began
            for run in range(spec["runs"]):
                for kind, actors in kinds.items():
                    if actors is None:
                        embedder = _Timed(LocalEmbedder(encoder, settings.batch_size))
                    else:
                        params = ClusterParams(actors=actors, actor_cpus=1)
                        embedder = _Timed(ClusterEmbedder(LOCAL, spec["model"], settings.batch_size, params))
                    folder = settings.model_copy(update={"index_dir": work / f"{kind}-{run}" / "index"})
                    report = build_from_documents(documents, folder, encoder, show_progress=False, embedder=embedder)
                    runs[kind].append({"build_s": report.seconds, "embed_s": embedder.seconds,
                                       "encoding_s": embedder.encoding_s, "texts": report.embedded_texts,
                                       "actors": embedder.workers, "chunks": report.chunks,
                                       "actor_peak_mb": embedder.actor_peak_mb})  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _summary(runs, len(documents), spec, ray_start_s)


def _summary(runs: dict[str, list[dict]], documents: int, spec: dict, ray_start_s: float) -> dict:
    out = {"documents": documents, "runs": spec["runs"], "batch_size": spec["batch_size"], "model": spec["model"],
           "ray_start_s": round(ray_start_s, 2)}  # fmt: skip
    for kind, each in runs.items():
        build_s = statistics.median(r["build_s"] for r in each)
        texts = each[-1]["texts"]
        out[kind] = {
            "build_s": round(build_s, 2),
            "build_s_each": [round(r["build_s"], 2) for r in each],
            "embed_s": round(statistics.median(r["embed_s"] for r in each), 2),
            "texts": texts,
            "chunks": each[-1]["chunks"],
            "texts_per_s": round(texts / build_s, 1),
            "encoding_s": round(statistics.median(r["encoding_s"] for r in each), 2),
            "encoding_texts_per_s": round(statistics.median(r["texts"] / max(r["encoding_s"], 1e-9) for r in each), 1),
            "actors_ran": max(r["actors"] for r in each),
            "actor_peak_rss_mb": round(max(r["actor_peak_mb"] for r in each)),
        }
    one, two, local = out["actors_1"], out["actors_2"], out["local"]
    out["speedup_2_vs_1"] = round(two["texts_per_s"] / one["texts_per_s"], 3)
    out["encoding_speedup_2_vs_1"] = round(two["encoding_texts_per_s"] / one["encoding_texts_per_s"], 3)
    out["cluster_2_vs_local_time"] = round(two["build_s"] / local["build_s"], 3)
    return out


def main(argv: list[str]) -> int:
    """``--child SPEC OUT``: measure (in the namespace); otherwise the cluster section alone, printed as Markdown."""
    parser = argparse.ArgumentParser(prog="python -m service.bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=4, help="PIAF articles besides corpus/ (0: all 86; default 4)")
    parser.add_argument("--runs", type=int, default=1, help="alternated rounds of the three builds (default 1)")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv[1:])
    if args.child:
        spec = json.loads(args.child[0].read_text(encoding="utf-8"))
        args.child[1].write_text(json.dumps(measure(spec)), encoding="utf-8")
        return 0
    from service.bench.report import cluster_lines

    settings = Settings()
    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    try:
        result = run_cluster(settings, ROOT.parent / "shared" / "eval", args.docs or None, args.runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(cluster_lines(result)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
