"""`qa serve --cluster`: the index's shards as Ray Serve deployments, the searcher in this process.

Each shard of the live build is a Serve application of its own (``qa-<build>-<shard>``) with
``--replicas`` replicas, each holding that shard and no encoder. This process keeps the encoder
and the vocabulary, encodes the question once, asks every shard through its deployment handle in
parallel (``ServeShards``), merges, fuses and fetches the passages: ``index.searcher.Searcher`` over
handles instead of shards in this process, each replica a ``LocalShard``. A new build is deployed beside
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
from collections.abc import Sequence
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from index.build.builder import build_settings
from index.build.cluster import LOCAL, LOOPBACK, check_reachable, one_line, ray_init_options
from index.config import SearchParams, Settings, search_defaults_for
from index.errors import ClusterError, QAError, ShardUnavailableError
from index.models.encoders import Encoder
from index.search.shard import LocalShard
from index.searcher import Searcher
from index.storage.manifest import check_compatible
from index.storage.store import read_head, read_manifest, read_shard
from service.backend import Answer, LocalBackend, answer, document
from service.state import ServiceState

log = logging.getLogger(__name__)
APP_PREFIX = "qa-"
# A shard's application: qa-<build folder>-<shard>. Only these are ever deleted: a cluster runs other apps too.
SHARD_APP = re.compile(r"qa-\d{8}T\d{6}-[0-9a-f]{8}-\d{3}")


class ShardReplica(LocalShard):
    """A Serve replica: one shard of one build, searched in the replica's process as in the searcher's."""

    def __init__(self, folder: str, number: int, params: dict) -> None:
        super().__init__(read_shard(Path(folder), number), SearchParams(**params))


class ServeShards:
    """A searcher's shards as Serve deployment handles (``index.search.shard.Shards``): the calls of one stage
    go out together and run in parallel, a failed call is retried once (another replica takes it), and no call
    outlives the timeout."""

    prefetch = True  # a second round trip to a shard costs more than the passages it sends along with its lists

    def __init__(self, handles: list, timeout: float) -> None:
        self.handles, self.timeout = handles, timeout

    def __len__(self) -> int:
        return len(self.handles)

    def call(self, calls: Sequence[tuple[int, str, tuple]]) -> list:
        """Submit every call, then wait for each, within one timeout for all."""
        deadline = time.monotonic() + self.timeout
        responses = [self._submit(number, method, args) for number, method, args in calls]
        return [
            self._wait(response, number, method, args, deadline)
            for (number, method, args), response in zip(calls, responses, strict=True)
        ]

    def _submit(self, number: int, method: str, args: tuple):
        return getattr(self.handles[number], method).remote(*args)

    def _wait(self, response, number: int, method: str, args: tuple, deadline: float):
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
                raise self._down(number, f"no answer in {self.timeout:g} s") from exc
            except Exception as exc:  # a replica that died, or was being replaced
                failure = exc
            if attempt == 1 and time.monotonic() < deadline:
                log.warning("shard %d call %s failed (%s): retrying", number, method, one_line(failure))
                response = self._submit(number, method, args)
        raise self._down(number, one_line(failure)) from failure

    @staticmethod
    def _down(number: int, reason: str) -> ShardUnavailableError:
        return ShardUnavailableError(f"shard {number} of the index is down ({reason}): retry shortly")


class ClusterState(ServiceState):
    """The service state of `qa serve --cluster`: each build's shards deployed on the Ray cluster."""

    def __init__(self, settings: Settings, address: str, replicas: int, replica_cpus: float,
                 encoder: Encoder | None = None) -> None:  # fmt: skip
        super().__init__(settings, encoder)
        self.address, self.replicas, self.replica_cpus = address, replicas, replica_cpus
        self._connected = False
        self._deploy_lock = threading.Lock()
        self._deployed: Searcher | None = None  # the searcher of the build deployed last

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

    def deploy(self, folder: Path) -> Searcher:
        """Deploy every shard of the build at ``folder``, wait until each answers, then delete older builds.

        A build made with other settings (model, chunking, question reference) is refused before anything is
        deployed, as ``ServiceState`` refuses it in one process.
        """
        manifest = read_manifest(folder)
        check_compatible(manifest.settings, build_settings(self.settings, self.encoder), folder)
        from ray import serve

        params = search_defaults_for(manifest.settings.model, self.settings.search)  # the searcher's and replicas'
        handles = []
        for number in range(manifest.shards):
            deployment = serve.deployment(ShardReplica).options(
                name=f"shard-{number:03d}", num_replicas=self.replicas, max_ongoing_requests=8,
                ray_actor_options={"num_cpus": self.replica_cpus}, health_check_period_s=2,
                health_check_timeout_s=10, graceful_shutdown_timeout_s=2,
            )  # fmt: skip
            app = f"{APP_PREFIX}{folder.name}-{number:03d}"
            handles.append(serve.run(deployment.bind(str(folder), number, params.model_dump()), name=app,
                                     route_prefix=None))  # fmt: skip
        searcher = Searcher(read_head(folder), self.encoder, params, ServeShards(handles, self.settings.shard_timeout))
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
