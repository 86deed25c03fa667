"""One hop of synchronous work from a request's task to a worker thread and back:
``anyio.to_thread.run_sync``'s semantics (what Starlette's ``run_in_threadpool`` calls) on the
engine's own pool (:mod:`fastrapi_compat.serve.pool`), for the ``def`` dependencies of a flat
plan run on the loop.

anyio's hop takes the thread limiter, opens a shielded cancel scope, finds or starts a worker
thread, queues the call, and reports back with ``call_soon_threadsafe``; per request that is
most of what an ``async def`` endpoint with ``def`` dependencies costs. Here the call is queued
on the pool (its threads are anyio worker threads of the loop: ``anyio.from_thread`` works in
them; the pool honours anyio's thread limit) and the thread resolves a future on the loop.

Cancellation is anyio's for a call it does not abandon: a call the thread had not started
yet is dropped (the worker skips a cancelled call), and once started the await does not end
before the call does; the cancellation is then raised. Under another event loop than asyncio
(or an anyio release whose worker threads the pool cannot copy), :func:`to_thread` is
``run_in_threadpool``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from fastrapi_compat.plan import internals
from fastrapi_compat.serve.pool import pool_for

T = TypeVar("T")


class _Hop:
    """One call on the pool: ``token`` is taken by whichever comes first, the thread starting
    the call or the loop giving it up (``list.pop`` is atomic); ``future`` gets the outcome."""

    __slots__ = ("args", "func", "future", "loop", "reported", "token", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.loop = loop
        self.func: Callable[..., Any] | None = func
        self.args: tuple[Any, ...] | None = args
        self.future: asyncio.Future[Any] = loop.create_future()
        self.token = [True]
        self.waiter: asyncio.Future[None] | None = None  # set when the loop waits after a cancel
        self.reported = False  # the thread's outcome reached the loop

    def run(self) -> None:
        """On a pool thread."""
        func, args = self.func, self.args
        self.func = self.args = None
        try:
            self.token.pop()
        except IndexError:  # given up before it started
            return
        assert func is not None and args is not None
        try:
            result = func(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            self._report(None, thread_error(exc))
            return
        self._report(result, None)

    def _report(self, result: Any, exc: BaseException | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self._done, result, exc)
        except RuntimeError:  # the loop closed meanwhile: nobody waits
            if not self.loop.is_closed():
                raise

    def _done(self, result: Any, exc: BaseException | None) -> None:
        """On the loop."""
        self.reported = True
        future = self.future
        if not future.done():
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def thread_error(exc: BaseException) -> BaseException:
    """What the awaiting task gets for ``exc``, raised on a worker thread: anyio turns a
    ``StopIteration`` (which a future cannot hold) into a ``RuntimeError``."""
    if isinstance(exc, StopIteration):
        error = RuntimeError("coroutine raised StopIteration")
        error.__cause__ = exc
        return error
    return exc


async def to_thread(func: Callable[..., T], *args: Any) -> T:
    """``await run_in_threadpool(func, *args)`` (``func`` is called as it is, in the pool
    thread's own context: callers copy the request's context as they need)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another event loop (trio)
        return await run_in_threadpool(func, *args)
    if not internals.POOL_WORKERS:
        return await run_in_threadpool(func, *args)
    hop = _Hop(loop, func, args)
    pool_for(loop).submit(hop.run)
    try:
        return await hop.future  # type: ignore[no-any-return]
    except asyncio.CancelledError:
        try:
            hop.token.pop()
        except IndexError:  # the thread runs it: wait for its end, as anyio does
            await _finished(hop)
        raise


async def _finished(hop: _Hop) -> None:
    """Waits until the thread has reported ``hop`` (further cancellations wait too, and are
    raised with the first one by the caller)."""
    if hop.reported:
        return
    hop.waiter = hop.loop.create_future()
    while not hop.waiter.done():
        try:
            await asyncio.shield(hop.waiter)
        except asyncio.CancelledError:
            continue
