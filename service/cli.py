"""The ``qa`` command: build, serve, ask, eval and bench."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from index.config import Settings
from index.errors import InvalidFilterError, QAError

DEFAULT_EVAL_SET = Path("eval/seed.jsonl")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qa`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        settings = _settings(args)
        return args.run(args, settings)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "corpus", None):
        overrides["corpus_dir"] = args.corpus
    if getattr(args, "index", None):
        overrides["index_dir"] = args.index
    if getattr(args, "shards", None) is not None:
        overrides["shards"] = args.shards
    try:
        return Settings(**overrides)
    except ValueError as exc:  # pydantic's ValidationError, from a bad QA_* variable
        raise QAError(f"invalid configuration: {exc}".replace("\n", " ")) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Question-answering retrieval over a corpus of articles.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build or update the index from the corpus folder")
    build.add_argument("--corpus", type=Path, help="corpus folder (default: $QA_CORPUS_DIR or corpus/)")
    build.add_argument("--index", type=Path, help="index location (default: $QA_INDEX_DIR or var/index)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.add_argument("--shards", type=int, help="split the documents into this many shards, for `qa serve "
                       "--cluster` (default: $QA_SHARDS or 1; docs/cluster-serving.md)")
    build.add_argument("--cluster", metavar="ADDRESS",
                       help="embed on a Ray cluster: its address (host:port), or `local` to start Ray on this machine "
                            "for the build (docs/cluster.md)")
    build.add_argument("--actors", type=int, help="with --cluster: encoder actors (default: $QA_CLUSTER__ACTORS or 2)")
    build.add_argument("--actor-cpus", type=float,
                       help="with --cluster: CPUs per actor (default: $QA_CLUSTER__ACTOR_CPUS or 1)")
    build.set_defaults(run=_build)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--index", type=Path, help="index location (default: $QA_INDEX_DIR or var/index)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--cluster", metavar="ADDRESS",
                       help="serve the index's shards from a Ray cluster: its address (host:port), or `local` to "
                            "start Ray on this machine (docs/cluster-serving.md)")
    serve.add_argument("--replicas", type=int, help="with --cluster: replicas of each shard (default 1)")
    serve.add_argument("--replica-cpus", type=float, default=0.5,
                       help="with --cluster: CPUs Ray reserves per shard replica (default 0.5)")
    serve.add_argument("--workers", type=int, default=int(os.environ.get("QA_WORKERS", "1")),
                       help="search processes behind one HTTP process, each with its own copy of the index "
                            "(default 1: search in the HTTP process)")
    serve.add_argument("--access-log", nargs="?", choices=("plain", "json"), const=True, default=False,
                       help="log every request: 'plain' (uvicorn's line, the default) or 'json' (one JSON object a "
                            "line on stderr, with the request id; also QA_LOG_FORMAT=json). Off by default: it "
                            "costs CPU on each request, and a proxy usually logs")
    serve.set_defaults(run=_serve)

    ask = commands.add_parser("ask", help="ask the local index a question, without a server")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    ask.add_argument("--json", action="store_true", help="print the API's JSON")
    ask.add_argument("--index", type=Path)
    ask.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", dest="filters",
                     help="only documents whose KEY is VALUE (doc_id, lang or any metadata field); repeat a key "
                          "for any of several values, other keys narrow further")  # fmt: skip
    ask.add_argument("--since", metavar="DATE", help="only documents published on or after DATE (ISO)")
    ask.add_argument("--until", metavar="DATE", help="only documents published on or before DATE (a date: all of it)")
    ask.set_defaults(run=_ask)

    ev = commands.add_parser("eval", help="score evaluation sets (SQuAD .json or .jsonl)")
    ev.add_argument("files", nargs="*", type=Path, help=f"sets to score (default: {DEFAULT_EVAL_SET})")
    ev.add_argument(
        "--questions-from",
        type=Path,
        help="SQuAD .json whose questions replace those of the same id, or a .jsonl of {id, question, lang} "
        "rewriting some of them (scored alone, with their gap to the original questions)",
    )
    ev.add_argument(
        "--distractors",
        type=Path,
        action="append",
        default=[],
        help="SQuAD file whose articles are indexed beside the corpus for .jsonl sets",
    )
    ev.add_argument("-k", type=int, default=5, help="passages per question for hit@k and passage_chars")
    ev.add_argument("--json", action="store_true", help="print one JSON object keyed by set name")
    ev.add_argument("--report", type=Path, help="write an HTML report into this folder")
    ev.add_argument("--articles", choices=("all", "even", "odd"), default="all",
                    help="score only the questions about every other article of a SQuAD set (see `qa reference`)")
    ev.add_argument("--index", type=Path)
    ev.set_defaults(run=_eval)

    ref = commands.add_parser(
        "reference", help="train the question reference for hubness from SQuAD files (see index/storage/hubness.py)"
    )
    ref.add_argument("files", nargs="+", type=Path, help="SQuAD .json (or .jsonl) files whose questions to use")
    ref.add_argument("--out", type=Path, help="where to write the .npy (default: the package's, for the model)")
    ref.add_argument("--centroids", type=int, default=512, help="clusters of questions kept (default 512)")
    ref.add_argument("--articles", choices=("all", "even", "odd"), default="all",
                     help="use only the questions about every other article, to test on the rest")
    ref.set_defaults(run=_reference)

    train = commands.add_parser(
        "train-ranker", help="train the learned ranker from SQuAD files (see index/rerank/ranker.py)"
    )
    train.add_argument("files", nargs="*", type=Path, help="SQuAD .json files: their questions over their articles")
    train.add_argument("--pair", nargs=2, type=Path, action="append", default=[], metavar=("ARTICLES", "QUESTIONS"),
                       help="a SQuAD file's articles with the same-id questions of another (e.g. xquad-es, xquad-en)")
    train.add_argument("--out", type=Path, help="where to write the .txt (default: the package's, for the model)")
    train.add_argument("--articles", choices=("all", "even", "odd"), default="all",
                       help="train only on the questions about every other article, to test on the rest")
    train.add_argument("--together", action="store_true",
                       help="index the articles of all files together (documents in several languages), not per file")
    train.add_argument("--rounds", type=int, default=None, help="boosting rounds (default: index.rerank.ranker.ROUNDS)")
    train.set_defaults(run=_train_ranker)

    bench = commands.add_parser("bench", help="measure build and query speed (writes var/bench/)")
    bench.add_argument("--quick", action="store_true", help="a short run (under 2 minutes)")
    bench.add_argument("--json", action="store_true", help="print the JSON results")
    bench.add_argument(
        "--sizes", type=_sizes, help="passage counts timed in process, comma-separated (default 10000,100000,1000000)"
    )
    bench.set_defaults(run=_bench)
    return parser


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from index.build.builder import build_index, question_reference
    from index.models.encoders import load_encoder

    params = _cluster_params(args, settings)  # checked before the model loads
    encoder = load_encoder(settings.model, settings.e5_engine)
    if params is None:
        report = build_index(settings, encoder, show_progress=not args.quiet)
    else:
        report = _cluster_build(args, settings, encoder, params)
    print(report.summary())
    if question_reference(settings, encoder) is None:
        print(f"note: no question reference for model {settings.model!r}, so no hubness correction; "
              "`qa reference` makes one (see README, Models)", file=sys.stderr)  # fmt: skip
    return 0


def _cluster_params(args: argparse.Namespace, settings: Settings):
    """The cluster settings with --actors and --actor-cpus applied; None without --cluster."""
    from index.config import ClusterParams

    flags = {"actors": args.actors, "actor_cpus": args.actor_cpus}
    chosen = {key: value for key, value in flags.items() if value is not None}
    if not args.cluster:
        if chosen:
            raise QAError("--actors and --actor-cpus need --cluster ADDRESS (or --cluster local)")
        return None
    try:
        return ClusterParams(**{**settings.cluster.model_dump(), **chosen})
    except ValueError as exc:
        raise QAError(f"invalid cluster option: {exc}".replace("\n", " ")) from exc


def _cluster_build(args: argparse.Namespace, settings: Settings, encoder, params):
    """The build with its texts embedded by Ray actors; Ray is imported only here."""
    from index.build.builder import build_index

    try:
        from index.build.cluster import ClusterEmbedder
    except ImportError as exc:
        raise QAError(f"--cluster needs Ray ({exc.name} is missing): run `make install` "
                      "or pip install 'qa-retrieval[cluster]'") from exc  # fmt: skip
    with ClusterEmbedder(args.cluster, settings.model, settings.batch_size, params) as embedder:
        return build_index(settings, encoder, show_progress=not args.quiet, embedder=embedder)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.app import create_app
    from service.state import ServiceState

    if isinstance(args.access_log, str):  # a format given on the command line wins over QA_LOG_FORMAT
        settings = settings.model_copy(update={"log_format": args.access_log})
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal, which would kill
    # the process with status 143. After its graceful shutdown that re-raise lands here instead.
    signal.signal(signal.SIGTERM, _stopped)
    options = {"host": args.host, "port": args.port, "log_level": "info", "timeout_graceful_shutdown": 10,
               "access_log": bool(args.access_log) and settings.log_format == "plain"}  # fmt: skip

    if args.cluster:
        return _serve_cluster(args, settings, options)
    if args.replicas is not None:
        raise QAError("--replicas needs --cluster ADDRESS (or --cluster local)")
    state = ServiceState(settings)
    state.load()  # refuse to start on a corrupt or foreign index; a missing one answers 503
    if args.workers <= 1:
        uvicorn.run(create_app(settings, state), **options)
        return 0
    # Several search processes behind this one (service/backend.py), each loading the
    # index itself; a rebuild in one reaches the others through the live symlink
    # (ServiceState.current). This process only checked the index, so it lets go of it.
    del state
    uvicorn.run(create_app(settings, processes=args.workers), **options)
    return 0


def _serve_cluster(args: argparse.Namespace, settings: Settings, options: dict) -> int:
    """The API in this process, the shards as Ray Serve deployments; Ray is imported only here."""
    import uvicorn

    from service.app import create_app

    if args.workers > 1:
        raise QAError("--workers does not apply with --cluster: use --replicas for more shard replicas")
    try:
        from service.cluster import ClusterBackend, ClusterState
    except ImportError as exc:
        raise QAError(f"--cluster needs Ray Serve ({exc.name} is missing): run `make install` "
                      "or pip install 'qa-retrieval[cluster]'") from exc  # fmt: skip
    replicas = args.replicas if args.replicas is not None else 1
    if not 1 <= replicas <= 64 or not 0 < args.replica_cpus <= 64:
        raise QAError("--replicas must be 1 to 64 and --replica-cpus above 0")
    state = ClusterState(settings, args.cluster, replicas, args.replica_cpus)
    try:
        state.load()  # deploys the shards; a missing index answers 503
        signal.signal(signal.SIGTERM, _stopped)  # ray.init put in its own, which exits with status 15
        uvicorn.run(create_app(settings, backend=ClusterBackend(state)), **options)
    finally:
        state.close()
    return 0


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from service.state import ServiceState

    state = ServiceState(settings)
    state.load(missing_ok=False)
    result = state.searcher.search(args.question, args.k, ask_filters(args.filters, args.since, args.until))
    if args.json:
        print(json.dumps(asdict(result), ensure_ascii=False, indent=2))
        return 0
    print(f"{len(result.passages)} passages in {result.took_ms:.1f} ms")
    for rank, passage in enumerate(result.passages, start=1):
        print(f"\n{rank}. {passage.title} [{passage.doc_id} {passage.start}:{passage.end}] score {passage.score:.3f}")
        print(textwrap.indent(textwrap.fill(passage.text, width=100), "   "))
        print(f"   best sentence: {passage.highlight.text}")
    return 0


def ask_filters(pairs: list[str], since: str | None, until: str | None) -> dict | None:
    """The ``filters`` object of ``POST /ask`` from ``--filter key=value``, ``--since`` and ``--until``."""
    filters: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidFilterError(f"--filter {pair!r} is not KEY=VALUE, e.g. --filter lang=fr")
        if key.strip() == "published":
            raise InvalidFilterError("filter dates with --since and --until, not --filter published=...")
        filters.setdefault(key.strip(), []).append(value)
    dates = {bound: value for bound, value in (("gte", since), ("lte", until)) if value}
    if dates:
        filters["published"] = dates
    return filters or None


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from service.evaluate import run_eval

    files = args.files or [DEFAULT_EVAL_SET]
    return run_eval(files, settings, args)


def _reference(args: argparse.Namespace, settings: Settings) -> int:
    from service.reference import run_reference

    return run_reference(args.files, settings, args)


def _train_ranker(args: argparse.Namespace, settings: Settings) -> int:
    from service.train_ranker import run_train_ranker

    return run_train_ranker(args, settings)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from service.bench.run import run_bench

    return run_bench(settings, quick=args.quick, as_json=args.json, sizes=args.sizes)


def _sizes(text: str) -> list[int]:
    """``--sizes 10000,100000`` as a list of positive counts."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of passage counts") from None
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("give passage counts of at least 1000, e.g. 10000,100000")
    return sizes


if __name__ == "__main__":
    raise SystemExit(main())
