"""``EngineTransport`` and ``AsyncEngineTransport``: ``httpx.ASGITransport``, served by the engine.

``httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test")`` behaves
as with ``ASGITransport``, but each request goes over loopback through the engine, which
parses it, builds the scope and carries both bodies. Kept from ``ASGITransport``: the
constructor (``raise_app_exceptions=True``, ``root_path=""``, ``client=("127.0.0.1", 123)``);
the scope's ``scheme`` and ``server`` from the URL (the port ``None`` when the URL has none),
``client``, ``root_path``, no ``state`` and no ``extensions``; no lifespan (run it yourself,
e.g. with asgi-lifespan); the app runs in the caller's own task (asyncio or trio: same loop,
same contextvars, cancellation in both directions, ``send`` never a cancellation point); the
response is returned once the app's call has ended (background tasks included), with its whole
body; an exception of the app is raised in the caller (``raise_app_exceptions=False``: an
empty 500 when no response was started, else what the app sent). Headers the HTTP layer adds
on the wire (``date``, ``transfer-encoding``, ...) are left out when the app did not send them.

``EngineTransport`` is the same for ``httpx.Client``; there the app runs on the engine's loop
thread, in a copy of the caller's contextvars. Both work in ``httpx`` and ``httpx2`` clients:
each request is answered with the response class of the package it came from.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import sys
import threading
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar

import anyio

try:
    import httpx as _httpx
except ImportError:  # pragma: no cover - only httpx2 installed
    import httpx2 as _httpx  # type: ignore[no-redef]

from fastrapi_compat._native import SYNTHETIC_HOST_HEADER, Engine
from fastrapi_compat.testing.loopback import (
    ASYNC_LIBRARY,
    OUTCOME_TIMEOUT,
    SIDE_HEADER,
    EngineSite,
    Outcome,
    check_asgi_app,
    engine_for_loop,
    engine_timeout,
    get_hub,
    stop_listener,
    timed_out,
    waiting_at,
)
from fastrapi_compat.testing.quiet import quiet

__all__ = ["AsyncEngineTransport", "EngineTransport"]

_SIDE_HEADER_BYTES = SIDE_HEADER.encode()
# What the HTTP layer writes on the wire and an in-process transport never shows: left out of
# a response when the app did not send the header itself.
_FRAMING_HEADERS = frozenset(
    {b"date", b"server", b"transfer-encoding", b"connection", b"keep-alive", b"content-length"}
)

_Wire = tuple[int, list[tuple[bytes, bytes]], bytes]
T = TypeVar("T")


def _flavour(request: Any) -> ModuleType:
    """The package (``httpx`` or ``httpx2``) a request comes from."""
    return sys.modules[type(request).__module__.partition(".")[0]]


_loopback_lock = threading.Lock()
_loopback: dict[tuple[str, bool], Any] = {}


def _loopback_transport(flavour: ModuleType, asynchronous: bool) -> Any:
    """The HTTP transport to the engine's listeners, one per package and kind. It keeps no idle
    connection, so it is shared by every loop and thread (and leaves no socket open)."""
    key = (flavour.__name__, asynchronous)
    with _loopback_lock:
        transport = _loopback.get(key)
        if transport is None:
            limits = flavour.Limits(max_connections=None, max_keepalive_connections=0)
            kind = flavour.AsyncHTTPTransport if asynchronous else flavour.HTTPTransport
            transport = _loopback[key] = kind(limits=limits)
        return transport


class _EngineTransportBase:
    """What both transports share: the listener handler, promises and the answer's rules."""

    def __init__(
        self,
        app: Any,
        raise_app_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
    ) -> None:
        check_asgi_app(app, type(self).__name__)
        self._site = EngineSite(app, None, debug_extension=False)
        self.raise_app_exceptions = raise_app_exceptions
        self.root_path = root_path
        self.client = client
        self._lock = threading.Lock()
        # One listener per event loop the app runs on (None: the hub's).
        self._listeners: dict[asyncio.AbstractEventLoop | None, tuple[Engine, asyncio.AbstractEventLoop, int, int]] = {}

    @property
    def app(self) -> Any:
        return self._site.app

    @app.setter
    def app(self, app: Any) -> None:
        check_asgi_app(app, type(self).__name__)
        self._site.app = app

    def _port(self, loop: asyncio.AbstractEventLoop | None) -> int:
        """The port of this transport's listener on the engine of ``loop`` (``None``: the hub)."""
        with self._lock:
            entry = self._listeners.get(loop)
            if entry is None:
                for closed in [key for key in self._listeners if key is not None and key.is_closed()]:
                    del self._listeners[closed]  # its engine was retired with its loop
                if loop is None:
                    hub = get_hub()
                    engine, engine_loop = hub.engine, hub.loop
                else:
                    engine, engine_loop = engine_for_loop(loop), loop
                _, port, listener_id = engine.listen(self._site, "127.0.0.1", 0)
                self._site.serve_natively(engine, listener_id)
                entry = self._listeners[loop] = (engine, engine_loop, port, listener_id)
            return entry[2]

    def _expect(self, request: Any) -> tuple[str, Outcome]:
        url = request.url
        scope = {
            "scheme": url.scheme,
            "server": (url.host, url.port),
            "client": self.client,
            "root_path": self.root_path,
        }
        return self._site.expect(scope)

    @staticmethod
    def _forward(
        flavour: ModuleType,
        request: Any,
        port: int,
        request_id: str,
        outcome: Outcome,
        pull_loop: asyncio.AbstractEventLoop | None = None,
    ) -> tuple[Any, _PullStream | None]:
        """The request to send to the listener. ASGITransport passes any header through, HTTP
        does not: a request without ``Host``, or whose body framing cannot be trusted (a
        ``Content-Length`` the stream may not match, a body without any framing), is sent with
        framing the HTTP client can keep, and the app is given the request's own headers."""
        raw = [(k, v) for k, v in request.headers.raw if k.lower() != _SIDE_HEADER_BYTES]
        names = {k.lower() for k, _ in raw}
        # Over HTTP a field value never carries leading or trailing whitespace (RFC 9110): it
        # is stripped here as any server would, since the HTTP client refuses to send it.
        headers = [(k, v.strip(b" \t")) for k, v in raw]
        stream = request.stream
        length = _known_length(flavour, stream)
        framing = {b"content-length", b"transfer-encoding"}
        reframe = False
        if b"content-length" in names:
            declared = [v for k, v in raw if k.lower() == b"content-length"]
            reframe = length is None or declared != [str(length).encode()]
        elif b"transfer-encoding" not in names:
            reframe = length != 0
        if reframe:
            headers = [(k, v) for k, v in headers if k.lower() not in framing]
            headers.append((b"transfer-encoding", b"chunked"))
        pull = None
        if pull_loop is not None and length is None:  # sent chunked: it may end early
            stream = pull = _pull_stream_class(flavour)(stream, pull_loop)
        if b"host" not in names:
            headers.insert(0, (b"host", bytes(request.url.netloc)))
            # The app will not see this Host: the engine's middleware must not decide from it.
            headers.append((SYNTHETIC_HOST_HEADER.encode(), b"1"))
        if reframe or b"host" not in names:
            outcome.headers = [(k.lower(), v) for k, v in raw]
        headers.append((_SIDE_HEADER_BYTES, request_id.encode()))
        target = flavour.URL(scheme="http", host="127.0.0.1", port=port, raw_path=request.url.raw_path)
        return flavour.Request(request.method, target, headers=headers, stream=stream), pull

    def _answer(
        self,
        flavour: ModuleType,
        request: Any,
        request_id: str,
        outcome: Outcome,
        wire: _Wire | None,
        failure: Exception | None,
    ) -> Any:
        """The response ``ASGITransport`` would give, from what the engine sent and the app did."""
        if not outcome.claimed:  # the engine answered without calling the app
            self._site.forget(request_id)
            if wire is None:
                assert failure is not None
                raise failure
            status, headers, body = wire
            return flavour.Response(status, headers=headers, stream=flavour.ByteStream(body))
        exc = outcome.exception
        if exc is not None and (self.raise_app_exceptions or not isinstance(exc, Exception)):
            raise exc
        started = outcome.started
        if started is None:
            if exc is None:
                raise AssertionError("the ASGI app returned without sending a response")
            return flavour.Response(500, headers=[], stream=flavour.ByteStream(b""))
        if exc is None and not outcome.completed:
            raise AssertionError("the ASGI app returned without completing its response")
        if wire is None:  # the engine aborted the response: the app failed while sending it
            body = b"" if request.method == "HEAD" else b"".join(outcome.body)
            headers = [(bytes(k), bytes(v)) for k, v in started.get("headers", [])]
            return flavour.Response(started["status"], headers=headers, stream=flavour.ByteStream(body))
        status, headers, body = wire
        return flavour.Response(status, headers=_as_sent(headers, started), stream=flavour.ByteStream(body))

    def _stop_listeners(self) -> None:
        with self._lock:
            listeners, self._listeners = self._listeners, {}
        for engine, loop, _, listener_id in listeners.values():
            stop_listener(engine, loop, listener_id)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_listeners()


def _known_length(flavour: ModuleType, stream: Any) -> int | None:
    """The body's length when the stream knows it before it is sent (bytes, multipart)."""
    if isinstance(stream, flavour.ByteStream):
        return len(b"".join(stream))
    get_length = getattr(stream, "get_content_length", None)
    if callable(get_length):
        length = get_length()
        return length if isinstance(length, int) else None
    return None


def _as_sent(headers: list[tuple[bytes, bytes]], started: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The wire's headers without those the HTTP layer added on its own."""
    sent = {bytes(name).lower() for name, _ in started.get("headers", [])}
    return [(k, v) for k, v in headers if k.lower() not in _FRAMING_HEADERS or k.lower() in sent]


class EngineTransport(_EngineTransportBase, _httpx.BaseTransport):
    """``ASGITransport``'s semantics for ``httpx.Client``: the app runs on the engine's loop thread."""

    def handle_request(self, request: Any) -> Any:
        flavour = _flavour(request)
        port = self._port(None)
        request_id, outcome = self._expect(request)
        forwarded, _ = self._forward(flavour, request, port, request_id, outcome)
        bound = engine_timeout()
        forwarded.extensions["timeout"] = {"connect": bound, "read": bound, "write": bound, "pool": bound}
        wire: _Wire | None = None
        failure: Exception | None = None
        try:
            with quiet():
                response = _loopback_transport(flavour, False).handle_request(forwarded)
                try:
                    body = b"".join(response.stream)
                finally:
                    response.close()
            wire = (response.status_code, list(response.headers.raw), body)
        except flavour.TimeoutException as exc:
            raise timed_out(request, waiting_at(outcome)) from exc
        except flavour.TransportError as exc:
            failure = exc
        if outcome.claimed:
            outcome.done.wait(OUTCOME_TIMEOUT)
        return self._answer(flavour, request, request_id, outcome, wire, failure)

    def close(self) -> None:
        self._stop_listeners()


class AsyncEngineTransport(_EngineTransportBase, _httpx.AsyncBaseTransport):
    """A drop-in for ``httpx.ASGITransport``. The engine parses each request and builds its
    scope, then hands it back to the caller, which runs the app in its own task as
    ``ASGITransport`` does (same loop, same contextvars, cancellation in both directions), while
    the request and the response cross the engine over loopback."""

    async def handle_async_request(self, request: Any) -> Any:
        flavour = _flavour(request)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio (anyio's other backend)
            loop = None
        if loop is None:  # (outside the except block: the app's exceptions get no __context__)
            return await self._handle_on_trio(flavour, request)
        port = self._port(loop)
        request_id, outcome = self._expect(request)
        forwarded, pull = self._forward(flavour, request, port, request_id, outcome, loop)
        handed: asyncio.Future[tuple[Any, dict[str, Any]]] = loop.create_future()

        def handoff(protocol: Any, scope: dict[str, Any]) -> bool:  # on this loop
            if handed.done():
                return False  # the caller is gone
            handed.set_result((protocol, scope))
            return True

        outcome.handoff = handoff
        exchange = loop.create_task(_exchange(flavour, forwarded))
        bound = engine_timeout()
        cancelled = False
        try:
            waiting: list[asyncio.Future[Any]] = [handed, exchange]
            await asyncio.wait(waiting, timeout=bound, return_when=asyncio.FIRST_COMPLETED)
            if not waiting[0].done() and not waiting[1].done():
                raise timed_out(request, "the request never reached the app")
            if handed.done():
                protocol, scope = handed.result()
                await _call_app(
                    outcome.app or self.app, scope, protocol.receive, protocol.send, protocol.finish, outcome, pull,
                    request,
                )  # fmt: skip
                cancelled = await _await_exchange(exchange, bound)
            if not exchange.done():
                raise timed_out(request, "the app had returned")
            wire, failure = exchange.result()
        except BaseException:
            handed.cancel()
            if pull is not None:
                pull.close()
            exchange.cancel()
            exchange.add_done_callback(_retrieve)
            raise
        answer = self._answer(flavour, request, request_id, outcome, wire, failure)
        if cancelled:  # given back: delivered at the caller's next await, as under ASGITransport
            task = asyncio.current_task()
            if task is not None:
                task.cancel()
        return answer

    async def _handle_on_trio(self, flavour: ModuleType, request: Any) -> Any:
        """The same on trio: the engine and the HTTP exchange live on the hub's asyncio loop;
        the app runs in the caller's trio task, its ``receive``/``send`` bridged to the hub."""
        hub = get_hub()
        bridge = _TrioBridge(hub.loop)
        port = self._port(None)
        request_id, outcome = self._expect(request)
        forwarded, pull = self._forward(flavour, request, port, request_id, outcome, hub.loop)
        wake = bridge.event()
        lock = threading.Lock()
        handed: list[tuple[Any, dict[str, Any]]] = []
        gone = False

        def handoff(protocol: Any, scope: dict[str, Any]) -> bool:  # on the hub's loop
            with lock:
                if gone:
                    return False
                handed.append((protocol, scope))
            bridge.notify(wake)()
            return True

        outcome.handoff = handoff
        exchange = asyncio.run_coroutine_threadsafe(_awaited(_exchange, flavour, forwarded), hub.loop)
        exchange.add_done_callback(bridge.notify(wake))
        app_ran = False
        bound = engine_timeout()
        try:
            if not await bridge.until(wake, bound):
                raise timed_out(request, "the request never reached the app")
            if handed:
                protocol, scope = handed[0]
                app_ran = True

                def finish() -> None:
                    hub.loop.call_soon_threadsafe(protocol.finish)

                body_received = False

                async def receive() -> Any:
                    nonlocal body_received
                    message = await bridge.call(protocol.receive, busy=not body_received)
                    body_received = body_received or not message.get("more_body", False)
                    return message

                async def send(message: Any) -> None:
                    await bridge.call(protocol.send, message, busy=True)

                await _call_app(outcome.app or self.app, scope, receive, send, finish, outcome, pull, request)
                with anyio.CancelScope(shield=True, deadline=anyio.current_time() + bound):
                    await bridge.wait(exchange)
            if not exchange.done():
                raise timed_out(request, "the app had returned")
            wire, failure = exchange.result()
        except BaseException:
            with lock:
                gone = True
                taken = list(handed)
            if taken and not app_ran:
                hub.loop.call_soon_threadsafe(taken[0][0].finish)
            if pull is not None:
                pull.close()
            exchange.cancel()
            raise
        return self._answer(flavour, request, request_id, outcome, wire, failure)

    async def aclose(self) -> None:
        self._stop_listeners()


async def _call_app(
    app: Any,
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    finish: Callable[[], Any],
    outcome: Outcome,
    pull: _PullStream | None,
    request: Any,
) -> None:
    """Runs the app in the caller's task: an ``Exception`` is recorded (answered or raised once
    the engine's response is in); anything else (a cancellation) propagates at once, as under
    ``ASGITransport``. There, ``send`` and the ``receive`` of the request body never suspend,
    so a pending cancellation is not delivered in them: they are shielded here (the wait for
    ``http.disconnect`` is not), and bounded (:func:`engine_timeout`)."""
    body_received = False
    bound = engine_timeout()

    async def body_receive() -> Any:
        nonlocal body_received
        if body_received:
            return await receive()
        if pull is not None:
            pull.want()
        message = None
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + bound):
            message = await receive()
        if message is None:
            raise timed_out(request, "the engine did not hand over the request body")
        body_received = message.get("type") != "http.request" or not message.get("more_body", False)
        return message

    async def shielded_send(message: Any) -> None:
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + bound) as scope:
            await send(message)
        if scope.cancelled_caught:
            raise timed_out(request, f"the engine did not take the app's {message.get('type')}")

    try:
        await app(scope, body_receive, outcome.recording(shielded_send))
    except Exception as exc:  # noqa: BLE001 - ASGITransport's rule: only Exception is answered
        outcome.exception = exc
    finally:
        if pull is not None:
            pull.close()
        finish()
        outcome.done.set()


class _PullStream:
    """A request body sent as the app asks for it, as ASGITransport reads it: one chunk of the
    caller's stream per ``receive()`` of the app; what the app never asked for is never read
    (the body is sent chunked, so it may end early). Iterated on ``loop``."""

    def __init__(self, stream: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self._wanted = 0
        self._closed = False
        self._wake: asyncio.Event | None = None

    def want(self) -> None:
        """One more chunk (from any thread)."""
        self._signal(1)

    def close(self) -> None:
        """No more chunks: the body ends here (from any thread)."""
        self._closed = True
        self._signal(0)

    def _signal(self, more: int) -> None:
        def signal() -> None:
            self._wanted += more
            if self._wake is not None:
                self._wake.set()

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            signal()
        elif not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(signal)

    async def __aiter__(self) -> Any:
        self._wake = asyncio.Event()
        chunks = self._stream.__aiter__()
        while True:
            while not self._wanted and not self._closed:
                self._wake.clear()
                await self._wake.wait()
            if self._closed:
                return
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            if chunk:
                self._wanted -= 1
                yield chunk

    async def aclose(self) -> None:
        pass


_pull_classes: dict[str, type[_PullStream]] = {}


def _pull_stream_class(flavour: ModuleType) -> type[_PullStream]:
    """:class:`_PullStream` as the package's ``AsyncByteStream`` (its transports check)."""
    cls = _pull_classes.get(flavour.__name__)
    if cls is None:
        cls = _pull_classes[flavour.__name__] = type("PullStream", (_PullStream, flavour.AsyncByteStream), {})
    return cls


async def _await_exchange(exchange: asyncio.Task[Any], bound: float) -> bool:
    """Waits (at most ``bound`` s) for the engine's answer once the app has returned. Under
    ASGITransport nothing suspends then, so a cancellation still pending (the app cancelled its
    own task, or the caller's scope, and did not await since) is not delivered there: one
    delivered here is taken, and True tells the caller to give it back afterwards."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    caught = False
    with anyio.CancelScope(shield=True):  # anyio's own scopes do not cancel in here
        while not exchange.done() and loop.time() < end:
            try:
                await asyncio.wait([exchange], timeout=end - loop.time())
            except asyncio.CancelledError:  # a native task.cancel(): given back by the caller
                caught = True
                task = asyncio.current_task()
                uncancel = getattr(task, "uncancel", None)  # Python >= 3.11 counts them
                if uncancel is not None:
                    uncancel()
    return caught


class _TrioBridge:
    """Awaits, from a trio task, work done on the hub's asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        import trio

        self._trio = trio
        self._loop = loop
        self._token = trio.lowlevel.current_trio_token()

    def event(self) -> Any:
        return self._trio.Event()

    def notify(self, event: Any) -> Callable[..., None]:
        """A callback, callable from any thread, that sets ``event`` in the trio run."""

        def callback(*_: Any) -> None:
            with contextlib.suppress(self._trio.RunFinishedError):
                self._token.run_sync_soon(event.set)

        return callback

    async def until(self, event: Any, bound: float) -> bool:
        """Waits for ``event`` without looking idle: trio cannot see work done on another
        thread, and ``wait_all_tasks_blocked()`` must not return while the engine has the
        request (under ASGITransport the app would be running). False after ``bound`` s."""
        deadline = self._trio.current_time() + bound
        while not event.is_set():
            if self._trio.current_time() > deadline:
                return False
            await self._trio.sleep(0)
        return True

    async def wait(self, future: concurrent.futures.Future[T], busy: bool = False) -> T:
        if not future.done():
            event = self.event()
            future.add_done_callback(self.notify(event))
            try:
                await (self.until(event, math.inf) if busy else event.wait())
            except BaseException:
                future.cancel()
                raise
        return future.result()

    async def call(self, function: Callable[..., Awaitable[T]], *args: Any, busy: bool = False) -> T:
        """``await function(*args)``, called and awaited on the hub's loop (``busy``: for
        the short calls, without looking idle meanwhile, as :meth:`until`)."""
        future = asyncio.run_coroutine_threadsafe(_awaited(function, *args), self._loop)
        return await self.wait(future, busy)


async def _awaited(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    # Started from the trio thread, this task copied its context: anyio and httpcore must see
    # asyncio here, not the caller's trio.
    if ASYNC_LIBRARY is not None:
        ASYNC_LIBRARY.set(None)
    return await function(*args)


async def _exchange(flavour: ModuleType, forwarded: Any) -> tuple[_Wire | None, Exception | None]:
    """Sends the request to the engine and reads the whole response (or the transport error);
    in a task of its own, whose context :func:`quiet` marks."""
    try:
        with quiet():
            response = await _loopback_transport(flavour, True).handle_async_request(forwarded)
            try:
                body = b"".join([chunk async for chunk in response.stream])
            finally:
                await response.aclose()
    except flavour.TransportError as exc:
        return None, exc
    return (response.status_code, list(response.headers.raw), body), None


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: nothing is logged when the task is collected
