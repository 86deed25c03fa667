"""``execute.hop.to_thread``, the hop of a flat plan's ``def`` dependencies onto the engine's
pool: ``anyio.to_thread.run_sync``'s semantics (a worker thread, never the loop; results and
exceptions back to the awaiting task; ``anyio.from_thread`` inside; a cancelled request waits
for a call its thread started, and a call not started yet is dropped)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import anyio.from_thread
import pytest

from fastrapi_compat.execute import hop
from fastrapi_compat.plan import internals


def test_the_pool_is_used_with_this_anyio() -> None:
    assert internals.POOL_WORKERS  # else to_thread is run_in_threadpool and these test anyio's


def test_runs_on_a_worker_thread_and_returns() -> None:
    async def main() -> tuple[int, int, bool]:
        def where(x: int) -> tuple[int, int, bool]:
            try:
                asyncio.get_running_loop()
                on_loop = True
            except RuntimeError:
                on_loop = False
            return threading.get_ident(), x * 2, on_loop

        ident, doubled, on_loop = await hop.to_thread(where, 21)
        assert ident != threading.get_ident()
        return ident, doubled, on_loop

    _, doubled, on_loop = anyio.run(main)
    assert (doubled, on_loop) == (42, False)


def test_exceptions_propagate_as_anyio_hands_them() -> None:
    class Boom(Exception):
        pass

    def boom() -> None:
        raise Boom("x")

    def stop() -> None:
        raise StopIteration

    async def main() -> None:
        with pytest.raises(Boom):
            await hop.to_thread(boom)
        with pytest.raises(RuntimeError, match="coroutine raised StopIteration") as raised:
            await hop.to_thread(stop)
        assert isinstance(raised.value.__cause__, StopIteration)
        with pytest.raises(RuntimeError, match="coroutine raised StopIteration"):  # as anyio does
            await anyio.to_thread.run_sync(stop)

    anyio.run(main)


def test_anyio_from_thread_works_inside() -> None:
    async def on_loop(x: int) -> int:
        await anyio.sleep(0)
        return x + 1

    def calls_back() -> tuple[int, int]:
        anyio.from_thread.check_cancelled()
        return anyio.from_thread.run(on_loop, 1), anyio.from_thread.run_sync(lambda: 5)

    async def main() -> tuple[int, int]:
        return await hop.to_thread(calls_back)

    assert anyio.run(main) == (2, 5)


def test_a_cancel_waits_for_the_started_call() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def blocking() -> str:
        started.set()
        release.wait(10)
        finished.append("done")
        return "late"

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(hop.to_thread(blocking))
        await loop.run_in_executor(None, started.wait, 10)
        task.cancel()
        for _ in range(20):  # many loop turns: the task stays on the running call
            await asyncio.sleep(0)
        seen = [task.done(), list(finished)]
        task.cancel()  # a second cancel waits too
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return [*seen, list(finished)]

    assert asyncio.run(main()) == [False, [], ["done"]]


def test_a_cancel_just_before_the_outcome_arrives_does_not_wait_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task is cancelled, then the thread's outcome reaches the loop before the task runs
    again: the cancellation is raised, nothing is left to wait for."""
    reported = threading.Event()
    real_report = hop._Hop._report

    def report(self: Any, result: Any, exc: BaseException | None) -> None:
        real_report(self, result, exc)
        reported.set()

    monkeypatch.setattr(hop._Hop, "_report", report)
    done: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        holder: list[asyncio.Future[Any]] = []

        def cancels_its_task() -> None:
            # The loop runs, in this order: a callback holding it until the outcome is queued,
            # the cancel, the outcome; then the task (woken by the cancel).
            loop.call_soon_threadsafe(reported.wait, 10)
            loop.call_soon_threadsafe(holder[0].cancel)
            done.append("ran")

        task = asyncio.ensure_future(hop.to_thread(cancels_its_task))
        holder.append(task)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 10)
        assert task.cancelled()

    asyncio.run(main())
    assert done == ["ran"]


def test_a_cancel_before_the_thread_starts_drops_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    jobs: list[Any] = []

    class Held:
        def submit(self, job: Any) -> None:
            jobs.append(job)

    monkeypatch.setattr(hop, "pool_for", lambda loop: Held())
    called: list[str] = []

    async def main() -> None:
        task = asyncio.ensure_future(hop.to_thread(called.append, "ran"))
        await asyncio.sleep(0)
        assert len(jobs) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        thread = threading.Thread(target=jobs[0])  # the pool gets to it late
        thread.start()
        thread.join(10)

    asyncio.run(main())
    assert called == []
