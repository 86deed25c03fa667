"""The engine side of the in-process clients (``TestClient``, ``EngineTransport``).

A client sends each request over loopback to a listener of its own on an engine. Beside the
request travels one header, ``x-fastrapi-testclient: <id>``, naming an :class:`Outcome` the
client registered first: what the app must see that plain HTTP cannot carry (the client's
``client`` address, the URL's scheme and server, ``root_path``), and where the listener's
handler (:class:`EngineSite`) reports what the app did (its exception, the response it
started, whether it completed). The header is removed before the app sees the scope.

Engines: synchronous clients share one process-wide *hub* (an event-loop thread and an
engine), whose handler runs the app in a task of its own. An async client on asyncio gets an
engine on its own running loop, and the handler hands the request back to the caller
(``Outcome.handoff``), which runs the app in its own task as ``httpx.ASGITransport`` does
(objects bound to that loop, created by fixtures or by a lifespan the test ran, keep working;
cancellation crosses both ways). A trio caller uses the hub with the same handoff, its app's
``receive``/``send`` bridged to the hub's loop.

Each listener mirrors its app's native routes (:meth:`EngineSite.serve_natively`): a request
the mirror sends to a native route runs the route's plan instead of the app (with the same
promises applied and outcomes recorded), unless the client promised another path or root
path than the one the mirror matched. Requests served by the ASGI tier are counted by reason
(:func:`fallback_reasons`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import itertools
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from fastrapi_compat._native import (
    SYNTHETIC_HOST_HEADER,
    TEST_CLIENT_HEADER,
    Engine,
    HTTPProtocol,
    WebSocketProtocol,
)
from fastrapi_compat.execute.match import Matched
from fastrapi_compat.execute.under import fit
from fastrapi_compat.plan.live import NativeApp
from fastrapi_compat.serve.dispatch import STATUS_PHRASES, Dispatcher, Watch, drain
from fastrapi_compat.serve.server import new_event_loop

__all__ = [
    "ASYNC_LIBRARY",
    "OUTCOME_TIMEOUT",
    "EngineTimeout",
    "engine_timeout",
    "set_engine_timeout",
    "timed_out",
    "waiting_at",
    "SIDE_HEADER",
    "EngineSite",
    "Hub",
    "Outcome",
    "check_asgi_app",
    "engine_for_loop",
    "engine_stats",
    "fallback_reasons",
    "get_hub",
    "stop_listener",
]


def _async_library_var() -> contextvars.ContextVar[str | None] | None:
    """sniffio's record of the async library running the caller (anyio asks it)."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover
        return None
    return sniffio.current_async_library_cvar


_async_library = ASYNC_LIBRARY = _async_library_var()

T = TypeVar("T")
SIDE_HEADER = TEST_CLIENT_HEADER  # "x-fastrapi-testclient"
_SIDE_HEADER_BYTES = SIDE_HEADER.encode()
_SYNTHETIC_HOST_BYTES = SYNTHETIC_HOST_HEADER.encode()
OUTCOME_TIMEOUT = 30.0
"""Seconds a client waits for the app's call to end after its response arrived."""
TIMEOUT_ENV = "FASTRAPI_TEST_TIMEOUT"
DEFAULT_ENGINE_TIMEOUT = 60.0


class EngineTimeout(RuntimeError):
    """A test client waited for the engine longer than the bound (:func:`engine_timeout`)."""


def _parse_timeout(value: str, source: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{source}={value!r}: expected a number of seconds > 0")
    return seconds


_engine_timeout: float | None = None


def engine_timeout() -> float:
    """Seconds a test client waits on the engine: for the request to reach the app, for a body
    chunk or a send the engine carries, for the answer once the app has returned, and (sync
    clients, whose app runs on the engine's loop) between two bytes of the answer. Set by
    ``pytest --fastrapi-timeout`` or ``$FASTRAPI_TEST_TIMEOUT`` (default 60)."""
    if _engine_timeout is not None:
        return _engine_timeout
    value = os.environ.get(TIMEOUT_ENV)
    return DEFAULT_ENGINE_TIMEOUT if value is None else _parse_timeout(value, "$" + TIMEOUT_ENV)


def set_engine_timeout(seconds: float | str | None) -> None:
    """Sets the bound (None: back to ``$FASTRAPI_TEST_TIMEOUT`` or the default)."""
    global _engine_timeout
    _engine_timeout = None if seconds is None else _parse_timeout(str(seconds), "--fastrapi-timeout")


def timed_out(request: Any, where: str) -> EngineTimeout:
    """The error for ``request`` (an httpx request) when the engine did not answer in time."""
    return EngineTimeout(
        f"{request.method} {request.url}: no answer from the fastrapi-compat engine within "
        f"{engine_timeout():g} s ({where}); set the bound with pytest --fastrapi-timeout SECONDS "
        f"or ${TIMEOUT_ENV}"
    )


_logger = logging.getLogger("fastrapi_compat.testclient")
_STAT_KEYS = ("http", "websocket", "native")


def check_asgi_app(app: Any, owner: str) -> None:
    """One clear line for an object that cannot be an ASGI app, before any request is sent."""
    if not callable(app):
        raise TypeError(
            f"{owner}: expected an ASGI application (a callable taking scope, receive, send), "
            f"got {type(app).__module__}.{type(app).__qualname__}"
        )


class Hub:
    """One event-loop thread and one engine serving every synchronous client of the process."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self.engine = Engine(self.loop, reasons=STATUS_PHRASES)
        self.loop.add_reader(self.engine.wake_fd(), drain, self.engine, self.loop)
        self._thread = threading.Thread(target=self.loop.run_forever, name="fastrapi-testclient", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def listen(self, handler: Any) -> tuple[int, int]:
        _, port, listener_id = self.engine.listen(handler, "127.0.0.1", 0)
        return port, listener_id

    def unlisten(self, listener_id: int) -> None:
        """Stops a listener without waiting (safe from any thread, the loop's own included)."""
        stop_listener(self.engine, self.loop, listener_id)


def stop_listener(engine: Engine, loop: asyncio.AbstractEventLoop, listener_id: int) -> None:
    """Stops one listener of ``engine`` (whose loop is ``loop``) from any thread, without waiting."""

    def stop() -> None:
        asyncio.ensure_future(engine.shutdown(0.0, listener_id))

    if not loop.is_closed():
        try:
            loop.call_soon_threadsafe(stop)
        except RuntimeError:  # closed meanwhile: its engine is retired with it
            pass


_hub_lock = threading.Lock()
_hub: Hub | None = None


def get_hub() -> Hub:
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = Hub()
            _register_at_exit()
        return _hub


# Engines on the callers' own asyncio loops (async clients). An engine holds its loop, so an
# entry is retired (its runtime dropped, its counters kept) once that loop is closed.
_loop_lock = threading.Lock()
_loop_engines: dict[asyncio.AbstractEventLoop, Engine] = {}
_retired: Counter[str] = Counter()


def engine_for_loop(loop: asyncio.AbstractEventLoop) -> Engine:
    """The engine whose requests run on ``loop`` (created on first use)."""
    hub = _hub
    if hub is not None and loop is hub.loop:
        return hub.engine
    with _loop_lock:
        _retire_closed_loops()
        engine = _loop_engines.get(loop)
        if engine is None:
            engine = Engine(loop, reasons=STATUS_PHRASES)
            loop.add_reader(engine.wake_fd(), drain, engine, loop)
            _loop_engines[loop] = engine
        _register_at_exit()
        return engine


def _retire_closed_loops() -> None:
    for loop in [loop for loop in _loop_engines if loop.is_closed()]:
        _retire(_loop_engines.pop(loop))


def _retire(engine: Engine) -> None:
    _retired.update(engine.stats())
    engine.close()


def _retire_all() -> None:
    with _loop_lock:
        for loop in list(_loop_engines):
            engine = _loop_engines.pop(loop)
            if not loop.is_closed() and not loop.is_running():
                loop.remove_reader(engine.wake_fd())
            _retire(engine)


def engine_stats() -> dict[str, int]:
    """Requests the test engines served in this process: ``{"http", "websocket", "native"}``."""
    total: Counter[str] = Counter({key: 0 for key in _STAT_KEYS})
    total.update(_retired)
    with _loop_lock:
        for engine in _loop_engines.values():
            total.update(engine.stats())
    if _hub is not None:
        total.update(_hub.engine.stats())
    return dict(total)


_reasons: Counter[str] = Counter()
_reasons_lock = threading.Lock()


#: Why a request went to the ASGI tier when the listener mirrors no route at all.
TIER_OFF = "FASTRAPI_TIER=asgi: the native tier is off"
#: Why a native route under the app's own middleware was not run natively, when nothing else says.
NOT_REACHED = "native route, but the app's middleware answered (or changed the request) before it reached the route"


def _record_fallback(native: NativeApp | None, scope: dict[str, Any]) -> None:
    if native is None:
        reason = TIER_OFF
    else:
        reason = native.fallback_reason(scope["method"], scope["path"][len(scope.get("root_path", "")) :] or "/")
    _record_reason(reason)


def _record_reason(reason: str) -> None:
    with _reasons_lock:
        _reasons[reason] += 1


_under: Counter[str] = Counter()


def _record_under(native: NativeApp, matched: Matched) -> None:
    """Once the call is over: counted under its middleware when the route's plan ran, else as a
    fallback with the reason."""
    if not matched.served:
        _record_reason(matched.declined or NOT_REACHED)
        return
    what = native.compiled.under_summary or "under the app's stack: FastAPI's native telemetry is active"
    with _reasons_lock:
        _under[what] += 1


def native_under() -> Counter[str]:
    """Requests the test engines sent to a native route under the app's own middleware stack,
    by what the routes ran under."""
    with _reasons_lock:
        return Counter(_under)


def fallback_reasons() -> Counter[str]:
    """Why requests the test engines served (HTTP, not websockets) were not answered by the
    native tier, by count."""
    with _reasons_lock:
        return Counter(_reasons)


_at_exit_lock = threading.Lock()
_at_exit_registered = False


def _register_at_exit() -> None:
    global _at_exit_registered
    with _at_exit_lock:
        if not _at_exit_registered:
            _at_exit_registered = True
            atexit.register(_at_exit)


def _at_exit() -> None:
    _retire_all()
    _write_stats()
    _close_hub()


def _close_hub() -> None:
    """Stops the hub's loop thread and its engine before the interpreter finalizes, so that no
    daemon thread is left with engine code on its stack when Python tears threads down."""
    hub = _hub
    if hub is None or hub.loop.is_closed():
        return
    try:
        hub.loop.call_soon_threadsafe(hub.loop.stop)
    except RuntimeError:
        return
    hub._thread.join(timeout=5)
    if not hub._thread.is_alive():
        hub.engine.close()


def _write_stats() -> None:
    """Leaves the engines' counters, fallback reasons and what native routes ran under where
    the parity harnesses collect them (``FASTRAPI_STATS_DIR``)."""
    folder = os.environ.get("FASTRAPI_STATS_DIR")
    if folder:
        path = os.path.join(folder, f"{os.getpid()}.json")
        with open(path, "w", encoding="utf-8") as out:
            json.dump({**engine_stats(), "reasons": dict(fallback_reasons()), "under": dict(native_under())}, out)


class Outcome:
    """One request or websocket as the client promised it and as the app handled it.

    ``scope`` holds the keys the app must see instead of the engine's (``scheme``, ``server``,
    ``client``, ``root_path``); ``host`` a Host header to put first (websockets only: the
    handshake library writes its own). ``handoff``, when set, is called on the engine's loop
    with the request's protocol and scope instead of running the app, so that the caller runs
    the app in its own task (it returns False when the caller is gone). The rest is written on
    the loop thread and read by the client after ``done``.
    """

    def __init__(self, scope: dict[str, Any], host: bytes | None = None) -> None:
        self.scope = scope
        self.host = host
        self.done = threading.Event()
        self.context = contextvars.copy_context()  # the caller's: the app runs in a copy of it
        if _async_library is not None and self.context.get(_async_library) is not None:
            self.context.run(_async_library.set, None)  # a trio caller's app still runs on asyncio
        self.headers: list[tuple[bytes, bytes]] | None = None  # replaces the scope's, when set
        self.handoff: Callable[[HTTPProtocol, dict[str, Any]], bool] | None = None
        self.app: Any = None  # what the caller runs instead of its app (a native route), when set
        self.claimed = False  # set before the app runs, so before any response exists
        self.exception: BaseException | None = None
        self.started: dict[str, Any] | None = None
        self.body: list[bytes] = []
        self.completed = False
        self.debug: dict[str, Any] | None = None
        self.accept: dict[str, Any] | None = None
        self.close_before_accept: dict[str, Any] | None = None

    def responding(self, respond: Any) -> Any:
        """``respond`` (a whole response in one call), recording it."""

        def recording_respond(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            self.started = {"type": "http.response.start", "status": status, "headers": headers}
            self.body.append(bytes(body))
            self.completed = True
            respond(status, headers, body)

        return recording_respond

    def recording(self, send: Any) -> Any:
        """``send``, recording the response the app sends."""

        async def recording_send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.debug":
                self.debug = message["info"]
                return
            if kind == "http.response.start":
                self.started = message
            elif kind == "http.response.body":
                self.body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    self.completed = True
            await send(message)

        return recording_send


def waiting_at(outcome: Outcome) -> str:
    """Where the request was when the engine fell silent."""
    if not outcome.claimed:
        return "the request never reached the app"
    if not outcome.done.is_set():
        return "the app was still running: if it takes this long, raise the bound"
    return "the app had returned"


def _pop_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """Removes the first header called ``name`` from a scope's list; its value, or None."""
    for index, (key, value) in enumerate(headers):
        if key == name:
            del headers[index]
            return value
    return None


class EngineSite(Dispatcher):
    """The handler of one client's listener: restores the client's promises and records outcomes.

    ``state``: the lifespan state copied into each scope (``None``: no ``state`` key, as
    ``httpx.ASGITransport``). ``debug_extension``: offer Starlette's ``http.response.debug``
    extension (``TestClient`` does; ``ASGITransport`` sends no ``extensions`` at all).
    """

    def __init__(self, app: Any, state: dict[str, Any] | None, *, debug_extension: bool) -> None:
        super().__init__(app, {} if state is None else state, _logger)
        self.keep_state = state is not None
        self.debug_extension = debug_extension
        self._ids = itertools.count(1)
        self._outcomes: dict[str, Outcome] = {}
        self._lock = threading.Lock()

    def serve_natively(self, engine: Engine, listener_id: int) -> None:
        """Mirrors the app's native routes on ``engine``'s listener (unless ``FASTRAPI_TIER=asgi``)."""
        if os.environ.get("FASTRAPI_TIER", "auto") == "asgi":
            return
        if self.native is None:
            self.native = NativeApp(self.app, fit)
        self.native.attach(functools.partial(engine.set_mirror, listener_id))

    def expect(self, scope: dict[str, Any], host: bytes | None = None) -> tuple[str, Outcome]:
        """Registers the next request: returns the side header's value and its outcome."""
        request_id = str(next(self._ids))
        outcome = Outcome(scope, host)
        with self._lock:
            self._outcomes[request_id] = outcome
        return request_id, outcome

    def forget(self, request_id: str) -> None:
        """Drops an outcome the engine never claimed (the request did not reach the app)."""
        with self._lock:
            self._outcomes.pop(request_id, None)

    def _claim(self, scope: dict[str, Any]) -> Outcome | None:
        """Applies the promises named by the side header, and removes the header."""
        headers = scope["headers"]
        value = _pop_header(headers, _SIDE_HEADER_BYTES)
        if value is None:
            return None
        _pop_header(headers, _SYNTHETIC_HOST_BYTES)
        with self._lock:
            outcome = self._outcomes.pop(value.decode("latin-1"), None)
        if outcome is None:
            return None
        scope.update(outcome.scope)
        if outcome.headers is not None:
            scope["headers"] = list(outcome.headers)
        if outcome.host is not None:
            scope["headers"] = [(n, v) for n, v in headers if n != b"host"]
            scope["headers"].insert(0, (b"host", outcome.host))
        outcome.claimed = True
        return outcome

    def watch(self, protocol: HTTPProtocol | WebSocketProtocol) -> ClientWatch:
        """The dispatcher's hook: the scope made at once with the client's promises applied
        (``state`` and ``extensions`` as the client's kind has them), and the outcome the
        client waits for, when the request carries the side header."""
        scope = protocol.scope()
        if self.keep_state:
            scope["state"] = self.state.copy()
        else:
            scope.pop("state", None)
        outcome = self._claim(scope)
        if type(protocol) is HTTPProtocol:
            if self.debug_extension:
                scope["extensions"] = {"http.response.debug": {}} if outcome is not None else {}
            else:
                scope.pop("extensions", None)
        return ClientWatch(scope, outcome)


class ClientWatch(Watch):
    """One request of a client's listener, as the dispatcher sees it (see :class:`Watch`)."""

    __slots__ = ("accepted", "context", "handoff", "native", "outcome", "reports", "scope")

    def __init__(self, scope: dict[str, Any], outcome: Outcome | None) -> None:
        self.scope = scope
        self.outcome = outcome
        self.reports = outcome is not None
        # Like Starlette's client (anyio portals copy the caller's context) and ASGITransport
        # (the app runs in the caller's task), the app sees the caller's contextvars.
        self.context = None if outcome is None else outcome.context
        self.handoff = outcome is not None and outcome.handoff is not None
        # The mirror matched the path the engine parsed; the app must see the one promised.
        self.native = outcome is None or ("path" not in outcome.scope and not outcome.scope.get("root_path"))
        self.accepted = False

    def hand_off(self, protocol: HTTPProtocol, native: Any) -> bool:
        outcome = self.outcome
        assert outcome is not None and outcome.handoff is not None
        outcome.app = native
        return outcome.handoff(protocol, self.scope)

    def recording(self, send: Any) -> Any:
        return send if self.outcome is None else self.outcome.recording(send)

    def responding(self, respond: Any) -> Any:
        return respond if self.outcome is None else self.outcome.responding(respond)

    def websocket_send(self, send: Any) -> Any:
        outcome = self.outcome
        if outcome is None:
            return send

        async def recording_send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "websocket.accept":
                self.accepted = True
                outcome.accept = message
            elif kind == "websocket.close" and not self.accepted:
                outcome.close_before_accept = message
            await send(message)

        return recording_send

    def ended(self, exc: BaseException | None) -> None:
        outcome = self.outcome
        if outcome is not None:
            if exc is not None:
                outcome.exception = exc
            outcome.done.set()

    def fell_back(self, native: NativeApp | None) -> None:
        _record_fallback(native, self.scope)

    def under(self, native: NativeApp, matched: Matched) -> None:
        matched.on_finish = functools.partial(_record_under, native)
