"""The thread pool that serves native requests whose plan is synchronous throughout.

FastAPI runs a ``def`` endpoint and each ``def`` dependency in anyio's thread pool, one hop from
the event loop and back per function. When a route's flat plan has no ``async`` function and no
body (``FlatPlan.offload``), the engine runs the whole request on one thread of this pool
instead (parameters, dependencies, endpoint, serialization) and hands the response to its
connection from there: the loop only routes the request. Each thread is an anyio worker thread
of the loop, so ``anyio.from_thread`` works in it. There is one pool per event loop, shared by
its listeners. The ``def`` dependencies of plans run on the loop hop to it too
(:mod:`fastrapi_compat.execute.hop`, ``Dispatcher.solve_lead``).

**How many threads run.** anyio gives every call a thread of its own, up to its limit (40
unless the app changed it before serving). Under load on a GIL-bound interpreter that means
dozens of awake threads taking the GIL from each other, a context switch per request (measured:
``/sync`` at half the speed of ``/plain``). This pool keeps one FIFO queue and wakes threads
only when they are needed: a request is taken at once by a running thread, or wakes one when
none runs; while requests wait, the loop checks every :data:`STALL_SECONDS` whether the pool
made progress (finished a request), and when it did not (its threads are blocked: ``sleep``,
I/O, a lock) it wakes as many more threads as requests wait, up to the same limit. Blocking
endpoints therefore still run side by side up to the limit, like anyio's (a request can wait up
to about one stall period for its thread when every running one is blocked), and CPU-bound ones
run back to back on one thread. Threads end after :data:`IDLE_SECONDS` without work, as anyio's.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from fastrapi_compat.plan import internals

_logger = logging.getLogger("fastrapi_compat.threads")

Job = Callable[..., None]

IDLE_SECONDS = 10.0
"""How long a thread waits for a job before it ends."""

STALL_SECONDS = 0.005
"""How long queued jobs may see no job finish before more threads are woken: the GIL's switch
interval, so that threads merely waiting for the GIL are not taken for blocked ones."""

# What :meth:`SyncPool._next` did.
_END, _RAN, _WOKEN = 0, 1, 2

_pools: weakref.WeakKeyDictionary[Any, SyncPool] = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()
_last: tuple[weakref.ref[Any], SyncPool] | None = None  # the pool last asked for, by its loop


def pool_for(loop: Any) -> SyncPool:
    """The pool of ``loop`` (made at the first call, sized on anyio's default limit: call it on
    the loop thread, after the app's startup)."""
    last = _last
    if last is not None and last[0]() is loop:  # the common case: one loop asks again
        return last[1]
    return _lookup(loop)


def _lookup(loop: Any) -> SyncPool:
    global _last
    with _pools_lock:
        pool = _pools.get(loop)
        if pool is None:
            pool = _pools[loop] = SyncPool(loop, default_size())
        _last = (weakref.ref(loop), pool)
        return pool


def default_size() -> int:
    """anyio's default thread limit for the running loop (call on the loop thread)."""
    try:
        import anyio.to_thread

        return max(1, int(anyio.to_thread.current_default_thread_limiter().total_tokens))
    except Exception:  # noqa: BLE001 - no running anyio backend: anyio's own default
        return 40


class SyncPool:
    """Threads for synchronous native requests. ``submit`` is called on the loop thread."""

    def __init__(self, loop: Any, size: int, *, stall: float = STALL_SECONDS, idle: float = IDLE_SECONDS) -> None:
        self._loop = weakref.ref(loop)  # the pool must not keep a closed loop alive
        self._size = size
        self._stall = stall
        self._idle = idle
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[Job, tuple[Any, ...]]] = collections.deque()
        self._parked: list[queue.SimpleQueue[bool]] = []  # each parked thread's wake-up line
        self._threads = 0
        self._awake = 0  # threads running a job or about to look at the queue
        self._finished = 0  # jobs done, the progress the stall check watches
        self._seen = 0  # ``_finished`` at the last stall check
        self._timer: Any = None
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def threads(self) -> int:
        """Threads alive (running, parked, or starting)."""
        return self._threads

    def submit(self, job: Job, *args: Any) -> None:
        """Queues ``job(*args)`` (the arguments rather than a closure: no function and cells
        made per request)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._queue.append((job, args))
            if self._awake == 0:
                self._wake_one()
            elif self._timer is None:
                self._seen = self._finished
                self._arm()

    def _arm(self) -> None:
        """Schedules the stall check (on the loop thread, under the lock)."""
        loop = self._loop()
        self._timer = None if loop is None else loop.call_later(self._stall, self._check)

    def _check(self) -> None:
        """On the loop, every stall period while jobs wait: no progress means the awake
        threads are blocked, so each waiting job gets a thread (up to the limit)."""
        with self._lock:
            if not self._queue or self._closed:
                self._timer = None
                return
            if self._finished == self._seen:
                self._wake(len(self._queue))
            self._seen = self._finished
            self._arm()

    def _wake_one(self) -> None:
        """:meth:`_wake` for one thread, none awake (under the lock): the common case."""
        if self._parked:
            self._parked.pop().put(True)
            self._awake += 1
        else:
            self._wake(1)

    def _wake(self, count: int) -> None:
        """Wakes (or starts) up to ``count`` threads (under the lock)."""
        count = min(count, self._size - self._awake)
        while count > 0 and self._parked:
            self._parked.pop().put(True)
            self._awake += 1
            count -= 1
        while count > 0 and self._threads < self._size:
            self._threads += 1
            self._awake += 1
            count -= 1
            threading.Thread(target=self._work, name=f"fastrapi-compat worker {self._threads}", daemon=True).start()

    def _work(self) -> None:
        wakeups: queue.SimpleQueue[bool] = queue.SimpleQueue()
        loop = self._loop()
        if loop is None:
            with self._lock:
                self._threads -= 1
                self._awake -= 1
            return
        with internals.claim_anyio_worker(loop):
            del loop
            state = _WOKEN
            while state != _END:
                state = self._next(wakeups, state == _RAN)
        with self._lock:
            self._threads -= 1

    def _next(self, wakeups: queue.SimpleQueue[bool], done: bool) -> int:
        """Runs the next job (:data:`_RAN`), or parks until woken (:data:`_WOKEN`);
        :data:`_END` when the thread should end. ``done``: the thread ran a job since it last
        looked (counted here, in the same locked step that takes the next one)."""
        with self._lock:
            if done:
                self._finished += 1
            jobs = self._queue
            queued = jobs.popleft() if jobs else None
            if queued is None:
                self._awake -= 1
                if self._closed:
                    return _END
                self._parked.append(wakeups)
        if queued is not None:
            job, args = queued
            queued = None
            try:
                job(*args)
            except BaseException:
                _logger.exception("uncaught error in a pool job")
            del job, args  # dropped before waiting: a finished request keeps nothing alive
            return _RAN
        try:
            return _WOKEN if wakeups.get(timeout=self._idle) else _END
        except queue.Empty:
            with self._lock:
                if wakeups in self._parked:  # still parked: end (else a wake-up is on its way)
                    self._parked.remove(wakeups)
                    return _END
            return _WOKEN if wakeups.get() else _END

    def close(self) -> None:
        """Ends the parked threads now and the busy ones once the queue is empty (they are
        daemon threads: none is waited for, since a job may be waiting on the loop)."""
        with self._lock:
            self._closed = True
            parked, self._parked = self._parked, []
        for wakeups in parked:
            wakeups.put(False)
