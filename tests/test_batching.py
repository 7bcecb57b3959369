"""The /ask batcher of the search-process pool, driven by a recording dispatch."""

from __future__ import annotations

import asyncio

import pytest

from index.errors import InvalidQueryError
from service.batching import AskBatcher


class Recorder:
    """A dispatch that records each batch and answers when released."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.release = asyncio.Event()

    async def __call__(self, asks: list[tuple[str, int]]) -> list:
        self.batches.append(asks)
        await self.release.wait()
        return [InvalidQueryError(f"bad {q}") if q.startswith("bad") else (q.encode(), "b1") for q, _ in asks]


def test_a_free_slot_takes_one_question_and_the_waiting_ones_go_together():
    async def scenario():
        dispatch = Recorder()
        batcher = AskBatcher(dispatch, slots=1, max_batch=3)
        first = asyncio.ensure_future(batcher.ask("q0", 5))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(batcher.ask(f"q{i}", i)) for i in range(1, 5)]
        await asyncio.sleep(0)
        assert dispatch.batches == [[("q0", 5)]]  # sent at once, alone; the others wait for the slot
        dispatch.release.set()
        answers = await asyncio.gather(first, *waiting)
        assert answers == [(f"q{i}".encode(), "b1") for i in range(5)]
        assert dispatch.batches == [[("q0", 5)], [("q1", 1), ("q2", 2), ("q3", 3)], [("q4", 4)]]

    asyncio.run(scenario())


def test_one_question_error_does_not_fail_its_batch_and_a_dispatch_failure_fails_all():
    async def scenario():
        dispatch = Recorder()
        dispatch.release.set()
        batcher = AskBatcher(dispatch, slots=1)
        results = await asyncio.gather(batcher.ask("bad one", 1), batcher.ask("good", 1), return_exceptions=True)
        assert isinstance(results[0], InvalidQueryError) and results[1] == (b"good", "b1")

        async def broken(asks):
            raise RuntimeError("search process died")

        batcher = AskBatcher(broken, slots=2)
        results = await asyncio.gather(*(batcher.ask(f"q{i}", 1) for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        [again] = await asyncio.wait_for(asyncio.gather(batcher.ask("again", 1), return_exceptions=True), 5)
        assert isinstance(again, RuntimeError)  # dispatched, so the failed batches gave their slots back

    asyncio.run(scenario())


def test_a_question_whose_client_left_is_not_searched():
    async def scenario():
        dispatch = Recorder()
        batcher = AskBatcher(dispatch, slots=1)
        first = asyncio.ensure_future(batcher.ask("q0", 1))
        await asyncio.sleep(0)
        gone = asyncio.ensure_future(batcher.ask("gone", 1))
        kept = asyncio.ensure_future(batcher.ask("kept", 1))
        await asyncio.sleep(0)
        gone.cancel()
        dispatch.release.set()
        assert await first == (b"q0", "b1") and await kept == (b"kept", "b1")
        assert dispatch.batches == [[("q0", 1)], [("kept", 1)]]

    asyncio.run(scenario())


def test_batcher_needs_a_slot():
    with pytest.raises(ValueError):
        AskBatcher(Recorder(), slots=0)
