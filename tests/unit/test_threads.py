"""The pool for synchronous native plans (``fastrapi_compat.serve.pool``): CPU-bound jobs run back
to back on one thread, blocked ones get threads of their own up to the limit, threads are anyio
worker threads of the loop, and idle ones end."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio.from_thread
import pytest

from fastrapi_compat.serve.pool import SyncPool, default_size, pool_for


def run_jobs(
    jobs: list[Callable[[], Any]], pool_args: dict[str, Any], timeout: float = 20.0
) -> tuple[list[Any], SyncPool]:
    """Submits ``jobs`` from a running loop at once; returns their results in order."""

    async def main() -> tuple[list[Any], SyncPool]:
        loop = asyncio.get_running_loop()
        pool = SyncPool(loop, **pool_args)
        futures = [loop.create_future() for _ in jobs]

        def wrap(job: Callable[[], Any], future: asyncio.Future[Any]) -> Callable[[], None]:
            def run() -> None:
                try:
                    result: Any = job()
                except BaseException as exc:  # noqa: BLE001 - handed to the test
                    loop.call_soon_threadsafe(future.set_exception, exc)
                else:
                    loop.call_soon_threadsafe(future.set_result, result)

            return run

        for job, future in zip(jobs, futures):
            pool.submit(wrap(job, future))
        results = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        pool.close()
        return results, pool

    return asyncio.run(main())


def test_cpu_bound_jobs_share_one_thread() -> None:
    """While jobs finish, nothing wakes a second thread: the queue runs in order on one."""
    order: list[int] = []

    def job(index: int) -> Callable[[], str]:
        def run() -> str:
            order.append(index)
            return threading.current_thread().name

        return run

    names, _ = run_jobs([job(i) for i in range(300)], {"size": 40, "stall": 30.0})
    assert len(set(names)) == 1
    assert order == list(range(300))


def test_blocked_jobs_get_threads_up_to_the_limit() -> None:
    """Jobs that block (no progress for a stall period) get a thread each, as anyio gives them,
    and never more than ``size`` at once."""
    lock = threading.Lock()
    gauge = {"now": 0, "max": 0}

    def job() -> int:
        with lock:
            gauge["now"] += 1
            gauge["max"] = max(gauge["max"], gauge["now"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # wait until every allowed job runs at once
            with lock:
                if gauge["max"] >= 6:
                    break
            time.sleep(0.002)
        time.sleep(0.05)
        with lock:
            gauge["now"] -= 1
        return 1

    results, _ = run_jobs([job] * 10, {"size": 6, "stall": 0.005})
    assert results == [1] * 10
    assert gauge["max"] == 6


def test_a_blocked_job_does_not_hold_up_the_next() -> None:
    """A job waiting on a later one: a second thread is woken, so both finish."""
    second_ran = threading.Event()

    def first() -> bool:
        return second_ran.wait(10)

    def second() -> bool:
        second_ran.set()
        return True

    results, _ = run_jobs([first, second], {"size": 40, "stall": 0.005})
    assert results == [True, True]


def test_pool_threads_are_anyio_worker_threads() -> None:
    async def on_loop(value: int) -> tuple[int, bool]:
        await asyncio.sleep(0)
        return value, asyncio.get_running_loop().is_running()

    def job() -> Any:
        anyio.from_thread.check_cancelled()
        return anyio.from_thread.run(on_loop, 5), anyio.from_thread.run_sync(lambda: "sync")

    results, _ = run_jobs([job], {"size": 4})
    assert results == [((5, True), "sync")]


def test_idle_threads_end() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        pool = SyncPool(loop, 4, idle=0.05)
        done = asyncio.Event()
        pool.submit(lambda: loop.call_soon_threadsafe(done.set))
        await done.wait()
        assert pool.threads == 1
        deadline = time.monotonic() + 5
        while pool.threads and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return pool.threads

    assert asyncio.run(main()) == 0


def test_a_failing_job_keeps_its_thread(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("job failed")

    async def main() -> str:
        loop = asyncio.get_running_loop()
        pool = SyncPool(loop, 1)
        names: list[str] = []
        done = asyncio.Event()
        pool.submit(boom)
        pool.submit(lambda: (names.append(threading.current_thread().name), loop.call_soon_threadsafe(done.set)))
        await asyncio.wait_for(done.wait(), 10)
        pool.close()
        return names[0]

    assert asyncio.run(main()).startswith("fastrapi-compat worker")
    assert "uncaught error in a pool job" in caplog.text


def test_closed_pool_refuses_jobs() -> None:
    async def main() -> None:
        pool = SyncPool(asyncio.get_running_loop(), 2)
        pool.close()
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit(lambda: None)

    asyncio.run(main())


def test_size_follows_anyio_limit() -> None:
    """The pool of a loop takes anyio's default limit as the app left it at startup."""

    async def main() -> tuple[int, int]:
        import anyio.to_thread

        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = 7
        return default_size(), pool_for(asyncio.get_running_loop()).size

    assert asyncio.run(main()) == (7, 7)
