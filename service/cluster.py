"""`qa serve --cluster`: the index's shards as Ray Serve deployments, the searcher in this process.

Each shard of the live build is a Serve application of its own (``qa-<build>-<shard>``) with
``--replicas`` replicas, each holding that shard and no encoder. This process keeps the encoder
and the vocabulary, encodes the question once, asks every shard through its deployment handle in
parallel, merges, fuses and fetches the passages (index.searcher). A new build is deployed beside
the old one and swapped in whole once every shard of it answers; then the old one is deleted, so
every answer comes from one build. Serve's HTTP proxy is off: the API is this process's FastAPI.

Only ``qa serve --cluster`` imports this module: the single-machine path never imports Ray.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool

from index.build.builder import build_settings
from index.build.cluster import LOCAL, LOOPBACK, check_reachable, one_line, ray_init_options
from index.config import SearchParams, Settings
from index.errors import ClusterError, QAError, ShardUnavailableError
from index.models.encoders import Encoder
from index.search.filters import AllowedRows, Filters
from index.search.fusion import Ranked
from index.search.hits import ShardLists
from index.search.query import Passage, Query
from index.search.shard import LocalShard
from index.searcher import Searcher, prefetched_passages
from index.storage.manifest import check_compatible
from index.storage.store import read_head, read_manifest, read_shard
from index.text.corpus import Document
from service.backend import Answer, LocalBackend, answer, document
from service.state import ServiceState

log = logging.getLogger(__name__)
APP_PREFIX = "qa-"
# A shard's application: qa-<build folder>-<shard>. Only these are ever deleted: a cluster runs other apps too.
SHARD_APP = re.compile(r"qa-\d{8}T\d{6}-[0-9a-f]{8}-\d{3}")


class ShardReplica:
    """A Serve replica: one shard of one build, searched in the replica's process."""

    def __init__(self, folder: str, number: int, params: dict) -> None:
        self.shard = LocalShard(read_shard(Path(folder), number), SearchParams(**params), strict_fields=False)

    def fields(self) -> set[str]:
        return self.shard.fields()

    def chunk_rows(self) -> np.ndarray:
        return self.shard.chunk_rows()

    def document(self, doc_id: str) -> Document:
        return self.shard.document(doc_id)

    def retrieve(self, query: Query) -> ShardLists:
        return self.shard.retrieve(query)

    def passages(self, rows: list[int], query: Query, scores: list[float]) -> list[Passage]:
        return self.shard.passages(rows, query, scores)


class RemoteShard:
    """A shard behind a Serve deployment handle: a failed call is retried once (another replica takes it),
    and no call outlives the timeout."""

    def __init__(self, handle, number: int, timeout: float) -> None:
        self.handle, self.number, self.timeout = handle, number, timeout

    def submit(self, method: str, *args):
        return getattr(self.handle, method).remote(*args)

    def wait(self, response, method: str, args: tuple, deadline: float):
        """The result of a submitted call; on a failed replica, the call once more; ShardUnavailableError
        when the shard does not answer by ``deadline``."""
        import ray.exceptions

        for attempt in (1, 2):
            try:
                return response.result(timeout_s=max(0.01, deadline - time.monotonic()))
            except QAError:
                raise
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, QAError):
                    raise exc.cause from None
                failure = exc
            except (TimeoutError, ray.exceptions.GetTimeoutError) as exc:
                response.cancel()  # still queued for a replica: no one waits for it any more
                raise self._down(f"no answer in {self.timeout:g} s") from exc
            except Exception as exc:  # a replica that died, or was being replaced
                failure = exc
            if attempt == 1 and time.monotonic() < deadline:
                log.warning("shard %d call %s failed (%s): retrying", self.number, method, one_line(failure))
                response = self.submit(method, *args)
        raise self._down(one_line(failure)) from failure

    def call(self, method: str, *args):
        return self.wait(self.submit(method, *args), method, args, time.monotonic() + self.timeout)

    def _down(self, reason: str) -> ShardUnavailableError:
        return ShardUnavailableError(f"shard {self.number} of the index is down ({reason}): retry shortly")

    def fields(self) -> set[str]:
        return self.call("fields")

    def chunk_rows(self) -> np.ndarray:
        return self.call("chunk_rows")

    def document(self, doc_id: str) -> Document:
        return self.call("document", doc_id)

    def allowed(self, parsed: Filters) -> AllowedRows:
        raise NotImplementedError("a remote shard resolves filters itself")

    def final_lists(self, query: Query) -> list[Ranked]:
        raise NotImplementedError("a cluster searcher always merges")

    def retrieve(self, query: Query) -> ShardLists:
        return self.call("retrieve", query)

    def passages(self, rows: list[int], query: Query, scores: list[float]) -> list[Passage]:
        return self.call("passages", rows, query, scores)


class ClusterSearcher(Searcher):
    """A searcher whose shards are Serve deployments, asked in parallel."""

    shards: list[RemoteShard]

    @property
    def sharded(self) -> bool:
        return True  # one shard or several, its lists come back raw and are merged here

    def shard_lists(self, query: Query) -> list[ShardLists]:
        remote = replace(query, prefetched={})
        parts = _gather([(shard, "retrieve", (remote,)) for shard in self.shards], self.shards[0].timeout)
        return self.prefetched(parts, query)

    def passages(self, ranked: list[tuple[int, float]], query: Query) -> list[Passage]:
        owners = self.owners([row for row, _ in ranked]) if len(self.shards) > 1 else np.zeros(len(ranked), int)
        out = prefetched_passages(ranked, query)
        calls, places = [], []
        remote = replace(query, prefetched={})
        for number, shard in enumerate(self.shards):
            mine = [at for at in range(len(ranked)) if owners[at] == number and at not in out]
            if mine:
                rows, scores = [ranked[at][0] for at in mine], [ranked[at][1] for at in mine]
                calls.append((shard, "passages", (rows, remote, scores)))
                places.append(mine)
        for mine, found in zip(places, _gather(calls, self.shards[0].timeout), strict=True):
            out.update(zip(mine, found, strict=True))
        return [out[at] for at in range(len(ranked))]


def _gather(calls: list[tuple[RemoteShard, str, tuple]], timeout: float) -> list:
    """Submit every call, then wait for each: the shards work in parallel, within one timeout for all."""
    deadline = time.monotonic() + timeout
    responses = [shard.submit(method, *args) for shard, method, args in calls]
    return [
        shard.wait(response, method, args, deadline)
        for (shard, method, args), response in zip(calls, responses, strict=True)
    ]


class ClusterState(ServiceState):
    """The service state of `qa serve --cluster`: each build's shards deployed on the Ray cluster."""

    def __init__(self, settings: Settings, address: str, replicas: int, replica_cpus: float,
                 encoder: Encoder | None = None) -> None:  # fmt: skip
        super().__init__(settings, encoder)
        self.address, self.replicas, self.replica_cpus = address, replicas, replica_cpus
        self._connected = False
        self._deploy_lock = threading.Lock()
        self._deployed: ClusterSearcher | None = None  # the searcher of the build deployed last

    def connect(self) -> None:
        """Join the Ray cluster (``local``: start one on 127.0.0.1) and start Serve without its HTTP proxy."""
        if self._connected:
            return
        import ray
        from ray import serve
        from ray.serve.config import ProxyLocation

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        for name in ("ray", "ray.serve"):
            logging.getLogger(name).setLevel(logging.WARNING)
        if self.address != LOCAL:  # LOCAL: a new instance, as for builds, even when one runs here already
            check_reachable(self.address)
        options = {**ray_init_options(self.address, self.settings.cluster), "namespace": "qa"}
        try:
            ray.init(**options)
            serve.start(proxy_location=ProxyLocation.Disabled, http_options={"host": LOOPBACK})
        except Exception as exc:
            raise ClusterError(f"cannot start serving on the Ray cluster at {self.address}: {one_line(exc)}") from exc
        self._connected = True

    def _load_searcher(self, folder: Path) -> Searcher:
        self.connect()
        with self._deploy_lock:
            if self._latest() == folder.name:
                return self._deployed  # a rebuild and the reload that noticed its new build ask for the same one
            try:
                searcher = self.deploy(folder)
            except QAError:
                raise
            except Exception as exc:  # Ray's many failure types, as one line
                raise ClusterError(f"cannot deploy the build {folder.name} on the cluster: {one_line(exc)}") from exc
            self._deployed = searcher
        # Requests that took the old searcher just before the swap may still call its shards: its
        # applications go once no such call can be running (each ends within the shard timeout).
        threading.Timer(2 * self.settings.shard_timeout + 1, self._delete_old_apps).start()
        return searcher

    def _latest(self) -> str:
        """The build folder name of the applications deployed last ("" before any)."""
        return self._deployed.folder.name if self._deployed is not None and self._deployed.folder else ""

    def deploy(self, folder: Path) -> ClusterSearcher:
        """Deploy every shard of the build at ``folder``, wait until each answers, then delete older builds.

        A build made with other settings (model, chunking, question reference) is refused before anything is
        deployed, as ``ServiceState`` refuses it in one process.
        """
        manifest = read_manifest(folder)
        check_compatible(manifest.settings, build_settings(self.settings, self.encoder), folder)
        from ray import serve

        params = self.settings.search.model_dump()
        shards = []
        for number in range(manifest.shards):
            deployment = serve.deployment(ShardReplica).options(
                name=f"shard-{number:03d}", num_replicas=self.replicas, max_ongoing_requests=8,
                ray_actor_options={"num_cpus": self.replica_cpus}, health_check_period_s=2,
                health_check_timeout_s=10, graceful_shutdown_timeout_s=2,
            )  # fmt: skip
            app = f"{APP_PREFIX}{folder.name}-{number:03d}"
            handle = serve.run(deployment.bind(str(folder), number, params), name=app, route_prefix=None)
            shards.append(RemoteShard(handle, number, self.settings.shard_timeout))
        head = read_head(folder)
        searcher = ClusterSearcher(head, self.encoder, self.settings.search, shards)  # type: ignore[arg-type]
        searcher.fields()  # every shard answers before the build goes live
        searcher.search("warm-up question", 1)
        return searcher

    def _delete_old_apps(self) -> None:
        """Delete the applications of every build but the latest deployed."""
        from ray import serve

        with self._deploy_lock:
            if not self._connected:
                return
            for name in serve.status().applications:
                if SHARD_APP.fullmatch(name) and not name.startswith(f"{APP_PREFIX}{self._latest()}-"):
                    serve.delete(name, _blocking=False)

    def close(self) -> None:
        """Delete this server's applications (Serve with them) and leave the cluster."""
        if self._connected:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
            self._connected = False


class ClusterBackend(LocalBackend):
    """``LocalBackend`` with searches on worker threads: a deployment handle's result blocks, which the
    event loop must not."""

    state: ClusterState

    async def stop(self) -> None:
        await run_in_threadpool(self.state.close)

    async def ask(self, question: str, k: int, filters: dict | None = None) -> Answer:
        return await run_in_threadpool(answer, self.state, question, k, filters)

    async def document(self, doc_id: str) -> dict:
        return await run_in_threadpool(document, self.state, doc_id)


def serve_installed() -> bool:
    """Whether Ray Serve can be imported here (the ``cluster`` extra)."""
    try:
        import ray.serve  # noqa: F401
    except ImportError:
        return False
    return True


class Echo:
    """A Serve deployment that returns what it gets: the bare handle round trip under every shard call."""

    def echo(self, value):
        return value


def handle_round_trips(payload, count: int, warmup: int = 20) -> list[float]:
    """Milliseconds of ``count`` calls with ``payload`` to an echo deployment on the connected cluster, after
    ``warmup`` calls (``qa bench``: the floor under the fan-out to shards)."""
    from ray import serve

    handle = serve.run(serve.deployment(Echo).options(name="echo").bind(), name="bench-echo", route_prefix=None)
    for _ in range(warmup):
        handle.echo.remote(payload).result()
    trips = []
    for _ in range(count):
        began = time.perf_counter()
        handle.echo.remote(payload).result()
        trips.append((time.perf_counter() - began) * 1000)
    return trips
