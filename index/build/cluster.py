"""Embedding a build's texts on a Ray cluster: Ray Data ``map_batches`` over encoder actors.

Only ``qa build --cluster`` (and the bench's cluster part) import this module, so
Ray stays out of the single-machine path. Each actor loads the model once and
encodes on one BLAS thread: with one actor per core, threads do not fight over
cores, and throughput grows with the actors. Rows carry their index through the
dataset, since Ray Data hands blocks back in whatever order they finish.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import resource
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

import numpy as np

from index.config import ClusterParams
from index.errors import ClusterError
from index.models.encoders import Progress, load_encoder, one_blas_thread

LOCAL = "local"  # `--cluster local`: a Ray instance on this machine, on 127.0.0.1, for one build
LOOPBACK = "127.0.0.1"


class EncoderActor:
    """Ray Data callable class: the model, loaded once per actor; each call encodes one batch."""

    def __init__(self, model: str) -> None:
        self.encoder = load_encoder(model)
        one_blas_thread()
        self.actor_id = _actor_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = batch["text"].tolist()
        began = time.time()
        vectors = self.encoder.encode_passages(texts, batch_size=max(1, len(texts)))
        # Which actor, when (this node's clock) and its peak memory: the summary counts actors, the bench
        # times the encoding and reports the memory an actor needs.
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        stamps = {"actor": self.actor_id, "began": began, "ended": time.time(), "peak_mb": peak_mb}
        return {"row": batch["row"], "vector": vectors, **{k: np.full(len(texts), v) for k, v in stamps.items()}}


def _actor_id() -> str:
    import ray

    return ray.get_runtime_context().get_actor_id() or str(os.getpid())


class ClusterEmbedder:
    """Embeds on the Ray cluster at ``address`` (``local``: start one here); use as a context manager."""

    def __init__(
        self,
        address: str,
        model: str,
        batch_size: int,
        params: ClusterParams,
        actor_class: type = EncoderActor,
    ) -> None:
        self.address, self.model, self.batch_size, self.params = address, model, batch_size, params
        self.actor_class = actor_class  # tests swap in a subclass that crashes once
        self.workers = 0  # distinct actors that returned vectors in the last embed call
        self.encoding_s = 0.0  # in the last embed call, from the first batch's start to the last one's end
        self.actor_peak_mb = 0.0  # in the last embed call, the largest peak RSS of an actor
        self.embedded = 0  # texts embedded over this embedder's life
        self._connected = False

    def __enter__(self) -> ClusterEmbedder:
        # Connecting waits for the first texts (an unchanged corpus needs no cluster); an unreachable
        # address is worth knowing before the corpus is read.
        if self.address != LOCAL:
            check_reachable(self.address)
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect (and stop the Ray instance ``local`` started)."""
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def embed(self, texts: Sequence[str], dim: int, progress: Progress | None = None) -> np.ndarray:
        out = np.empty((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        self._connect()
        done = np.zeros(len(texts), dtype=bool)
        actors: set[str] = set()
        first, last, peak = np.inf, -np.inf, 0.0
        try:
            for batch in self._dataset(texts).iter_batches(batch_size=None, batch_format="numpy"):
                rows = batch["row"]
                out[rows], done[rows] = batch["vector"], True
                actors.update(batch["actor"].tolist())
                first, last = min(first, batch["began"].min()), max(last, batch["ended"].max())
                peak = max(peak, float(batch["peak_mb"].max()))
                if progress:
                    progress(len(rows))
        except Exception as exc:  # Ray raises many types: a dead actor, a lost node, a failed task
            raise ClusterError(f"the cluster build failed, the live index is unchanged: {one_line(exc)}") from exc
        if not done.all():
            raise ClusterError(f"the cluster returned {int(done.sum())} of {len(texts)} vectors; build again")
        self.workers, self.embedded, self.encoding_s = len(actors), self.embedded + len(texts), float(last - first)
        self.actor_peak_mb = peak
        return out

    def _dataset(self, texts: Sequence[str]):
        """The texts in blocks of ``block_texts`` rows, mapped by a pool of encoder actors."""
        import pyarrow as pa
        import ray.data

        # Start every actor before the first block goes out: the blocks then spread evenly, and a
        # cluster short of resources is an error instead of a build that waits for ever.
        ray.data.DataContext.get_current().wait_for_min_actors_s = self.params.start_timeout_s

        # Blocks are what actors take: enough of them that every actor gets work on a small build too.
        step = min(self.params.block_texts, max(self.batch_size, -(-len(texts) // (4 * self.params.actors))))
        blocks = [
            pa.table({"row": np.arange(at, min(at + step, len(texts))), "text": list(texts[at : at + step])})
            for at in range(0, len(texts), step)
        ]
        memory = self.params.actor_memory_mb
        # Two blocks in flight per actor: one encoding, one waiting, so no actor hoards the queue.
        pool = ray.data.ActorPoolStrategy(size=self.params.actors, max_tasks_in_flight_per_actor=2)
        with warnings.catch_warnings():  # restarts and retries have no named parameter in Ray 2.60
            warnings.simplefilter("ignore", DeprecationWarning)
            return ray.data.from_arrow(blocks).map_batches(
                self.actor_class,
                fn_constructor_kwargs={"model": self.model},
                batch_size=self.batch_size,
                batch_format="numpy",
                compute=pool,
                num_cpus=self.params.actor_cpus,
                memory=memory * 2**20 if memory else None,
                max_restarts=self.params.max_restarts,
                max_task_retries=self.params.max_restarts,
            )

    def _connect(self) -> None:
        import ray

        _quiet_ray()
        if self._connected or ray.is_initialized():  # a caller that connected itself keeps its connection
            return
        try:
            ray.init(**ray_init_options(self.address, self.params))
        except Exception as exc:
            where = "start Ray on this machine" if self.address == LOCAL else f"reach the Ray cluster at {self.address}"
            raise ClusterError(f"cannot {where}: {one_line(exc)}") from exc
        self._connected = True


_DRIVER_OPTIONS = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}


def ray_init_options(address: str, params: ClusterParams) -> dict:
    """``ray.init`` options: a new Ray instance here for ``LOCAL``, else a driver of the cluster at ``address``."""
    if address == LOCAL:
        return local_ray_options(params)
    options = {**_DRIVER_OPTIONS, "address": address}
    if _is_loopback(address):
        options["_node_ip_address"] = LOOPBACK  # Ray would otherwise pick the machine's own address
    return options


@contextmanager
def ray_session(address: str, params: ClusterParams) -> Iterator[None]:
    """This process as a Ray driver for the block (``LOCAL``: a Ray instance of its own), disconnected after it.

    An embedder entered inside keeps to this connection (``qa bench`` times builds without Ray's start).
    """
    import ray

    ray.init(**ray_init_options(address, params))
    try:
        yield
    finally:
        ray.shutdown()


def local_ray_options(params: ClusterParams) -> dict:
    """``ray.init`` options for a Ray instance on this machine only: on 127.0.0.1, every core, a small object store."""
    cpus = max(os.cpu_count() or 1, math.ceil(params.actors * params.actor_cpus))
    # address "local": a new instance even when RAY_ADDRESS names a running one.
    return {**_DRIVER_OPTIONS, "address": "local", "_node_ip_address": LOOPBACK, "num_cpus": cpus,
            "object_store_memory": params.local_object_store_mb * 2**20}  # fmt: skip


def _quiet_ray() -> None:
    """One progress bar (the build's), no usage reports, and no log lines: failures come back as exceptions."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ core, here and in the processes it starts
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on an address nothing listens at: Ray itself would retry the connection for minutes."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # `auto` and the like: Ray resolves them itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({reason}): is `ray start --head` running "
                           "there, and is the address its GCS host:port?") from exc  # fmt: skip


def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def one_line(exc: BaseException) -> str:
    """The exception's type and first meaningful line: Ray's messages run to whole tracebacks."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"[:400]
