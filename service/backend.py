"""Where a request's work runs: in the server process, or in a pool of search processes.

``LocalBackend`` searches in the process that serves HTTP (``qa serve``, one
process). ``PoolBackend`` keeps one HTTP process and N search processes
(``qa serve --workers N``): every request goes to whichever search process is
free. Uvicorn's own workers were tried first, but a keep-alive connection stays
with the worker that accepted it, and `qa bench` saw 8 clients split unevenly
between two of them (5/3 in a quick run), one queueing while the other idled.

Both answer with what the routes return (JSON-ready dicts, and for /ask the
body already serialised), computed by the same functions below from a
``ServiceState``; core errors keep their type across the process boundary, so
the app maps them to the same status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import NamedTuple

from starlette.concurrency import run_in_threadpool

from index.config import Settings
from index.errors import IndexMissingError, InvalidQueryError, QAError, SearchUnavailableError
from index.models.encoders import one_blas_thread
from index.searcher import Searcher, SearchResult, StageTimes
from service.batching import AskBatcher
from service.state import ServiceState

log = logging.getLogger(__name__)


def build_name(searcher: Searcher) -> str:
    folder = searcher.folder
    return folder.name if folder is not None else ""


def live_searcher(state: ServiceState) -> Searcher:
    """The searcher of the index loaded now; IndexMissingError (503) when there is none."""
    searcher = state.current()
    if searcher is None:
        raise IndexMissingError(
            f"no index is loaded from {state.settings.index_dir}: build one with `qa build` "
            "or POST /index/rebuild, then retry"
        )
    return searcher


class Answer(NamedTuple):
    """One /ask answer as the HTTP process receives it, from this process or a search process."""

    body: bytes  # the AskResponse JSON
    build: str  # the build folder that answered
    stages: StageTimes  # for the metrics, which the HTTP process alone records (service/metrics.py)


def answer(state: ServiceState, question: str, k: int, filters: dict | None = None) -> Answer:
    """The /ask response body as JSON (``AskResponse``), the build that answered, and its stage times.

    Serialised here, in the process that searched, so that the HTTP process in
    front of a pool only relays bytes.
    """
    searcher = live_searcher(state)
    return _answer(searcher.search(question, k, filters), searcher)


def answer_many(state: ServiceState, asks: list[tuple]) -> list[Answer | QAError]:
    """``answer`` for each (question, k[, filters]), encoding the questions together; a failed one is its error."""
    searcher = live_searcher(state)
    try:
        results = searcher.search_batch(asks)
    except InvalidQueryError:  # one bad question (or filter) must not fail the others
        return [_answer_or_error(state, *ask) for ask in asks]
    return [_answer(result, searcher) for result in results]


def _answer_or_error(state: ServiceState, question: str, k: int, filters: dict | None = None) -> Answer | QAError:
    try:
        return answer(state, question, k, filters)
    except QAError as exc:
        return exc


def _answer(result: SearchResult, searcher: Searcher) -> Answer:
    passages = [asdict(passage) for passage in result.passages]
    payload = {"question": result.question, "passages": passages, "took_ms": round(result.took_ms, 2)}
    return Answer(json.dumps(payload, ensure_ascii=False).encode(), build_name(searcher), result.stages)


def document(state: ServiceState, doc_id: str) -> dict:
    doc = live_searcher(state).document(doc_id)
    return {"doc_id": doc.doc_id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}


def health(state: ServiceState) -> dict:
    searcher = state.current()
    if searcher is None:
        return {"status": "no index", "documents": 0, "chunks": 0, "model": state.settings.model}
    return {
        "status": "ok",
        "documents": searcher.manifest.counts.get("documents", 0),
        "chunks": searcher.manifest.counts.get("chunks", 0),
        "model": searcher.model,
        "index_built_at": searcher.manifest.created_at,
        "build": build_name(searcher),
    }


def rebuild(state: ServiceState) -> dict:
    report = state.rebuild()
    return {
        "documents": report.documents,
        "chunks": report.chunks,
        "reused_documents": report.reused_documents,
        "embedded_texts": report.embedded_texts,
        "seconds": round(report.seconds, 3),
        "skipped": report.warnings,
    }


class LocalBackend:
    """Everything in the server process."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def start(self) -> None:
        if self.state.searcher is None:
            await run_in_threadpool(self.state.load)

    async def stop(self) -> None:
        pass

    async def ask(self, question: str, k: int, filters: dict | None = None) -> Answer:
        # On the event loop, not in a thread: a search is ~10 ms of CPU that holds the GIL
        # for much of it, so a thread hop per request adds contention and no parallelism.
        return answer(self.state, question, k, filters)

    async def document(self, doc_id: str) -> dict:
        return document(self.state, doc_id)

    async def health(self) -> dict:
        return health(self.state)

    async def rebuild(self) -> dict:
        return await run_in_threadpool(rebuild, self.state)

    def processes_alive(self) -> int:
        return 1  # this process searches

    restarts = 0


RESTART_INTERVAL = 5.0  # seconds between two replacements of a broken pool


class PoolBackend:
    """One HTTP process in front of ``processes`` search processes, each with the index loaded."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.processes = processes
        self._settings = settings
        self._executor = self._new_pool()
        self._restarting: asyncio.Future | None = None
        self._replaced_at = -RESTART_INTERVAL
        self._pids: dict[ProcessPoolExecutor, set[int]] = {}  # the search processes of each pool
        self.restarts = 0  # search processes started to replace a pool that lost one
        self._batcher = AskBatcher(partial(self._run, _in_worker, answer_many), processes, settings.ask_batch)

    async def start(self) -> None:
        """Start every search process and wait until each has loaded the index (or found none)."""
        executor, pids = self._executor, set()
        while len(pids) < self.processes:
            batch = [self._run(_ready) for _ in range(self.processes)]
            pids.update(await asyncio.gather(*batch))
        self._pids[executor] = pids

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    async def ask(self, question: str, k: int, filters: dict | None = None) -> Answer:
        return await self._batcher.ask(question, k, filters)

    async def document(self, doc_id: str) -> dict:
        return await self._run(_in_worker, document, doc_id)

    async def health(self) -> dict:
        return await self._run(_in_worker, health)

    async def rebuild(self) -> dict:
        return await self._run(_in_worker, rebuild)

    def processes_alive(self) -> int:
        """Search processes of the current pool that are running (not exited, not a zombie)."""
        return sum(process_running(pid) for pid in self._pids.get(self._executor, ()))

    async def _run(self, function, *args):
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
        except BrokenProcessPool as exc:
            self._replace(executor)
            raise SearchUnavailableError(
                "a search process stopped (killed, out of memory, or the index failed to load: see the server "
                "log); new ones are starting: retry in a few seconds"
            ) from exc

    async def _restart(self) -> None:
        """Have every new search process load the index now, not on its first request."""
        try:
            await self.start()
        except QAError as exc:
            log.error("new search processes failed: %s", exc)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),  # the server has threads: never fork it
            initializer=_start_worker,
            initargs=(self._settings,),
        )

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Swap a pool that lost a process for a new one (once, however many requests saw it break).

        Not more often than every ``RESTART_INTERVAL`` seconds: a pool whose new processes
        fail at once (an index that no longer loads, say) is retried on a later request,
        not in a loop.
        """
        now = time.monotonic()
        if self._executor is broken and now - self._replaced_at >= RESTART_INTERVAL:
            self._replaced_at = now
            log.error("a search process died: starting %d new search processes", self.processes)
            broken.shutdown(wait=False, cancel_futures=True)
            for pid in self._pids.pop(broken, ()):  # the survivors ignore SIGTERM, which the pool sends them
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._executor = self._new_pool()
            self.restarts += self.processes
            self._restarting = asyncio.ensure_future(self._restart())


def process_running(pid: int) -> bool:
    """Whether ``pid`` is alive and not a zombie."""
    # Read, not waited on: reaping the pool's children is the pool's business.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: fall back to a signal-0 probe, which counts zombies as running
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


_worker_state: ServiceState | None = None  # the search process's own state


def _start_worker(settings: Settings) -> None:
    global _worker_state
    # The HTTP process handles SIGINT/SIGTERM and shuts the pool down after draining
    # requests; a search process that died on the same signal would fail them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Ignoring SIGTERM means a search process outlives an HTTP process that was killed outright
    # (SIGKILL, out of memory), holding its copy of the index: it exits once it is orphaned.
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    _worker_state = ServiceState(settings)
    # One BLAS/OpenMP thread per search process, set once the encoder is loaded so that its own libraries
    # are held too: E5's OpenMP threads spin while they wait, and two processes of two threads on two cores
    # served 12 requests/s instead of hundreds (docs/performance.md).
    _ = _worker_state.encoder  # loaded first, so that the limit reaches the model's libraries
    one_blas_thread()
    _worker_state.load()


def _exit_when_orphaned(parent: int, every_s: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(0)


def _ready() -> int:
    return os.getpid()


def _in_worker(function, *args):
    return function(_worker_state, *args)
