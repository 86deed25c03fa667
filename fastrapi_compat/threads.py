"""The thread pool that serves native requests whose plan is synchronous throughout.

FastAPI runs a ``def`` endpoint and each ``def`` dependency in anyio's thread pool, one hop from
the event loop and back per function. When a route's flat plan has no ``async`` function and no
body (``FlatPlan.offload``), the engine runs the whole request on one thread of this pool
instead (parameters, dependencies, endpoint, serialization) and hands the response to its
connection from there: the loop only routes the request. Concurrency is anyio's: one thread per
running request, at most anyio's default limit (40 unless the app changed it before serving),
threads made when needed and ended after 10 idle seconds (as anyio ends its own); requests
beyond the limit wait their turn in order. Each thread is an anyio worker thread of the loop, so
``anyio.from_thread`` works in it. There is one pool per event loop, shared by its listeners.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from fastrapi_compat import internals

_logger = logging.getLogger("fastrapi_compat.threads")

Job = Callable[[], None]

IDLE_SECONDS = 10.0
"""How long a thread waits for a job before it ends."""

_pools: weakref.WeakKeyDictionary[Any, SyncPool] = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def pool_for(loop: Any) -> SyncPool:
    """The pool of ``loop`` (made at the first call, sized on anyio's default limit: call it on
    the loop thread, after the app's startup)."""
    with _pools_lock:
        pool = _pools.get(loop)
        if pool is None:
            pool = _pools[loop] = SyncPool(loop, default_size())
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

    def __init__(self, loop: Any, size: int) -> None:
        self._loop = weakref.ref(loop)  # the pool must not keep a closed loop alive
        self._size = size
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Job | None]] = []  # each idle thread's own queue
        self._backlog: collections.deque[Job] = collections.deque()  # waiting for a thread
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            if self._idle:
                inbox = self._idle.pop()
            elif len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, args=(job,), name=f"fastrapi-compat worker {len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
                return
            else:
                self._backlog.append(job)
                return
        inbox.put(job)

    def _work(self, job: Job | None) -> None:
        inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        loop = self._loop()
        if loop is None:
            return
        with internals.claim_anyio_worker(loop):
            del loop
            while job is not None:
                try:
                    job()
                except BaseException:
                    _logger.exception("uncaught error in a pool job")
                job = None  # dropped before waiting: a finished request keeps nothing alive
                with self._lock:
                    if self._backlog:
                        job = self._backlog.popleft()
                        continue
                    if self._closed:
                        break
                    self._idle.append(inbox)
                try:
                    job = inbox.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    with self._lock:
                        if inbox in self._idle:  # still idle: end (else a job is on its way)
                            self._idle.remove(inbox)
                            break
                    job = inbox.get()
        with self._lock:
            self._threads.remove(threading.current_thread())

    def close(self) -> None:
        """Ends the idle threads now and the busy ones after their job (they are daemon
        threads: none is waited for, since a job may be waiting on the loop)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)
