"""``TestClient``: a drop-in for Starlette's (and FastAPI's) that drives the real engine.

Every request goes over loopback through the Rust engine, which parses it, builds the scope and
streams both bodies exactly as it does in production. What Starlette's client promises on top of
plain HTTP is kept: the app sees ``client=("testclient", 50000)``, the URL's scheme and server,
the client's ``root_path`` and lifespan ``state``; a server-side exception is re-raised in the
test (``raise_server_exceptions``); ``with TestClient(app)`` runs lifespan; ``websocket_connect``
opens a real websocket. Those promises travel beside the request (one header the engine-side
handler removes before the app sees the scope), never by calling the app in process.

All clients of a process share one engine and one event-loop thread (the *hub*); each client
gets its own listener on a free port.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import itertools
import json
import logging
import math
import os
import threading
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Literal, TypeVar
from urllib.parse import urljoin

import anyio
import starlette.testclient as _starlette_testclient
from anyio.streams.stapled import StapledObjectStream
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fastrapi_compat._native import Engine, HTTPProtocol, WebSocketProtocol
from fastrapi_compat.asgi_bridge import STATUS_PHRASES, Dispatcher, drain
from fastrapi_compat.server import new_event_loop

httpx = _starlette_testclient.httpx  # the flavour Starlette's TestClient is built on (httpx2 or httpx)
WebSocketDenialResponse = _starlette_testclient.WebSocketDenialResponse

__all__ = ["TestClient", "WebSocketDenialResponse", "WebSocketTestSession"]

T = TypeVar("T")
TEST_HEADER = "x-fastrapi-testclient"
_TEST_HEADER_BYTES = TEST_HEADER.encode()
_logger = logging.getLogger("fastrapi_compat.testclient")
_OUTCOME_TIMEOUT = 30.0


class _Hub:
    """One event-loop thread and one engine serving every TestClient of the process."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self.engine = Engine(self.loop, reasons=STATUS_PHRASES)
        self.loop.add_reader(self.engine.wake_fd(), drain, self.engine)
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

        def stop() -> None:
            asyncio.ensure_future(self.engine.shutdown(0.0, listener_id))

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(stop)


_hub_lock = threading.Lock()
_hub: _Hub | None = None


def _get_hub() -> _Hub:
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = _Hub()
            if os.environ.get("FASTRAPI_STATS_DIR"):
                atexit.register(_write_stats, _hub)
        return _hub


def _write_stats(hub: _Hub) -> None:
    """Leaves the engine's counters where the parity harness collects them."""
    folder = os.environ.get("FASTRAPI_STATS_DIR")
    if folder:
        path = os.path.join(folder, f"{os.getpid()}.json")
        with open(path, "w", encoding="utf-8") as out:
            json.dump(hub.engine.stats(), out)


class _Outcome:
    """What happened server-side for one request or websocket, reported to the test thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.exception: BaseException | None = None
        self.started: dict[str, Any] | None = None
        self.body: list[bytes] = []
        self.context = contextvars.copy_context()
        self.claimed = False  # set before the app runs, so before any response exists
        self.debug: dict[str, Any] | None = None
        self.accept: dict[str, Any] | None = None
        self.close_before_accept: dict[str, Any] | None = None


class _TestSite(Dispatcher):
    """The handler of one TestClient's listener: restores the TestClient's scope promises."""

    def __init__(self, app: Any, state: dict[str, Any], root_path: str, client: tuple[str, int]) -> None:
        super().__init__(app, state, _logger)
        self.root_path = root_path
        self.client = client
        self._ids = itertools.count(1)
        self._outcomes: dict[str, _Outcome] = {}
        self._lock = threading.Lock()

    def expect(self) -> tuple[str, _Outcome]:
        request_id = str(next(self._ids))
        outcome = _Outcome()
        with self._lock:
            self._outcomes[request_id] = outcome
        return request_id, outcome

    def _claim(self, scope: dict[str, Any]) -> _Outcome | None:
        """Applies the TestClient's promises carried by the test header, and removes it."""
        headers = scope["headers"]
        for index, (name, value) in enumerate(headers):
            if name == _TEST_HEADER_BYTES:
                del headers[index]
                break
        else:
            return None
        request_id, scheme, host, port, host_header = value.decode("latin-1").split("|", 4)
        scope["scheme"] = scheme
        scope["server"] = [host, int(port)]
        scope["client"] = self.client
        scope["root_path"] = self.root_path
        if host_header:
            scope["headers"] = [(n, v) for n, v in headers if n != b"host"]
            scope["headers"].insert(0, (b"host", host_header.encode("latin-1")))
        with self._lock:
            outcome = self._outcomes.pop(request_id, None)
        if outcome is not None:
            outcome.claimed = True
        return outcome

    def spawn(self, protocol: HTTPProtocol | WebSocketProtocol) -> None:
        # Like Starlette's client (anyio portals copy the caller's context), the app runs in
        # a copy of the test thread's contextvars.
        scope = protocol.scope()
        scope["state"] = self.state.copy()
        outcome = self._claim(scope)
        loop = asyncio.get_running_loop()
        if type(protocol) is HTTPProtocol:
            coro = self.run_test_http(protocol, scope, outcome)
        else:
            coro = self.run_test_websocket(protocol, scope, outcome)  # type: ignore[arg-type]
        context = outcome.context if outcome is not None else contextvars.copy_context()
        task = context.run(loop.create_task, coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run_test_http(self, protocol: HTTPProtocol, scope: dict[str, Any], outcome: _Outcome | None) -> None:
        if outcome is None:
            scope["extensions"] = {}
            await self._call_http(protocol, scope, protocol.send, None)
            return
        scope["extensions"] = {"http.response.debug": {}}
        engine_send = protocol.send

        async def send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.debug":
                outcome.debug = message["info"]
                return
            if kind == "http.response.start":
                outcome.started = message
            elif kind == "http.response.body":
                outcome.body.append(bytes(message.get("body", b"")))
            await engine_send(message)

        await self._call_http(protocol, scope, send, outcome)

    async def _call_http(self, protocol: HTTPProtocol, scope: dict[str, Any], send: Any, outcome: _Outcome | None) -> None:
        try:
            await self.app(scope, protocol.receive, send)
        except BaseException as exc:
            protocol.finish()
            if outcome is not None:
                outcome.exception = exc
            else:
                self.logger.error("Exception in ASGI application\n", exc_info=exc)
        else:
            protocol.finish()
        finally:
            if outcome is not None:
                outcome.done.set()

    async def run_test_websocket(self, protocol: WebSocketProtocol, scope: dict[str, Any], outcome: _Outcome | None) -> None:
        engine_send = protocol.send
        accepted = False

        async def send(message: dict[str, Any]) -> None:
            nonlocal accepted
            if outcome is not None:
                kind = message["type"]
                if kind == "websocket.accept":
                    accepted = True
                    outcome.accept = message
                elif kind == "websocket.close" and not accepted:
                    outcome.close_before_accept = message
            await engine_send(message)

        try:
            await self.app(scope, protocol.receive, send)
        except OSError as exc:  # the client went away
            if outcome is not None and not isinstance(exc, _native_disconnect()):
                outcome.exception = exc
        except BaseException as exc:
            if outcome is not None:
                outcome.exception = exc
            else:
                self.logger.error("Exception in ASGI application\n", exc_info=exc)
        finally:
            protocol.finish()
            if outcome is not None:
                outcome.done.set()


def _native_disconnect() -> type[BaseException]:
    from fastrapi_compat._native import ClientDisconnected

    return ClientDisconnected


def _default_port(scheme: str) -> int:
    return {"http": 80, "ws": 80, "https": 443, "wss": 443}[scheme]


class _EngineResponseStream(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
    def __init__(self, response: Any, on_close: Any, outcome: _Outcome) -> None:
        self._response = response
        self._on_close = on_close
        self._outcome = outcome

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._response.stream
        except httpx.TransportError:
            # The engine aborted the body because the app failed mid-response (as uvicorn
            # does); Starlette's client ends the body there and reports the app's error.
            if self._outcome.started is None or not self._outcome.done.wait(_OUTCOME_TIMEOUT):
                raise

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._on_close()


class _EngineTransport(httpx.BaseTransport):  # type: ignore[misc,name-defined]
    """Sends each request of a TestClient to its listener on the shared engine."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        # No idle keep-alive connections: a client dropped without close() must leave no open socket
        # behind (tests run with ResourceWarning as an error).
        self._http = httpx.HTTPTransport(limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))

    def handle_request(self, request: Any) -> Any:
        site, port = self._client._site()
        request_id, outcome = site.expect()
        url = request.url
        scheme = url.scheme
        host = url.raw_host.decode("ascii")
        server_port = url.port if url.port is not None else _default_port(scheme)
        # Over HTTP a field value never carries leading or trailing whitespace (RFC 9110): it
        # is stripped here as any server would, since the HTTP client refuses to send it.
        headers = [(k, v.strip(b" \t")) for k, v in request.headers.raw if k.lower() != _TEST_HEADER_BYTES]
        headers.append((_TEST_HEADER_BYTES, f"{request_id}|{scheme}|{host}|{server_port}|".encode()))
        target = httpx.URL(scheme="http", host="127.0.0.1", port=port, raw_path=url.raw_path)
        forwarded = httpx.Request(request.method, target, headers=headers, stream=request.stream)
        raise_exceptions = self._client._raise_server_exceptions
        try:
            response = self._http.handle_request(forwarded)
        except httpx.TransportError:
            # The engine aborted the response (the app failed after starting it), as uvicorn
            # does. Starlette's client answers with what the app had sent: do the same.
            if not outcome.claimed or not outcome.done.wait(_OUTCOME_TIMEOUT) or outcome.started is None:
                raise
            if raise_exceptions and outcome.exception is not None:
                raise outcome.exception from None
            start = outcome.started
            return httpx.Response(
                start["status"],
                headers=[(k, v) for k, v in start.get("headers", [])],
                content=b"" if request.method == "HEAD" else b"".join(outcome.body),
                request=request,
            )

        if outcome.started is None and self._wait(outcome, response):
            # The app never started a response: Starlette's client raises or answers an empty 500.
            response.close()
            if raise_exceptions:
                if outcome.exception is not None:
                    raise outcome.exception
                raise AssertionError("TestClient did not receive any response.")
            return httpx.Response(500, headers=[], stream=httpx.ByteStream(b""), request=request)

        def on_close() -> None:
            # A response the app never saw (the engine rejected the request) has no outcome.
            if not outcome.claimed or not outcome.done.wait(_OUTCOME_TIMEOUT):
                return
            if raise_exceptions and outcome.exception is not None:
                raise outcome.exception

        result = httpx.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=_EngineResponseStream(response, on_close, outcome),
            request=request,
        )
        if outcome.debug is not None:
            result.extensions["http.response.debug"] = outcome.debug
            if "template" in outcome.debug:
                result.template = outcome.debug["template"]
            if "context" in outcome.debug:
                result.context = outcome.debug["context"]
        return result

    @staticmethod
    def _wait(outcome: _Outcome, response: Any) -> bool:
        """True when the app ended without starting a response (the engine answered for it)."""
        if response.status_code != 500:
            return False
        return outcome.claimed and outcome.done.wait(_OUTCOME_TIMEOUT) and outcome.started is None

    def close(self) -> None:
        self._http.close()


class WebSocketTestSession:
    """Starlette's ``WebSocketTestSession`` API over a real websocket to the engine."""

    def __init__(self, client: TestClient, url: Any, headers: list[tuple[bytes, bytes]], subprotocols: Sequence[str] | None) -> None:
        self._client = client
        self._url = url
        self._headers = headers
        self._subprotocols = list(subprotocols) if subprotocols is not None else None
        self._connection: ClientConnection | None = None
        self._outcome: _Outcome | None = None
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None

    def __enter__(self) -> WebSocketTestSession:
        site, port = self._client._site()
        request_id, outcome = site.expect()
        self._outcome = outcome
        url = self._url
        scheme = url.scheme
        host = url.raw_host.decode("ascii")
        server_port = url.port if url.port is not None else _default_port(scheme)
        skip = {b"host", b"connection", b"upgrade", b"sec-websocket-key", b"sec-websocket-version",
                b"sec-websocket-protocol", b"sec-websocket-extensions", _TEST_HEADER_BYTES}
        extra = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._headers if k.lower() not in skip]
        host_header = url.netloc.decode("ascii")
        extra.append((TEST_HEADER, f"{request_id}|{scheme}|{host}|{server_port}|{host_header}"))
        target = f"ws://127.0.0.1:{port}{url.raw_path.decode('ascii')}"
        self._stack = contextlib.ExitStack()
        try:
            self._connection = self._stack.enter_context(connect(
                target,
                additional_headers=extra,
                subprotocols=self._subprotocols,  # type: ignore[arg-type]
                compression=None,
                open_timeout=_OUTCOME_TIMEOUT,
                max_size=None,
                user_agent_header=None,
            ))
        except InvalidStatus as exc:
            self._rejected(outcome, exc)
            raise AssertionError("unreachable")  # pragma: no cover
        self.accepted_subprotocol = self._connection.subprotocol
        accept = outcome.accept or {}
        self.extra_headers = accept.get("headers")
        return self

    def _rejected(self, outcome: _Outcome, exc: InvalidStatus) -> None:
        outcome.done.wait(_OUTCOME_TIMEOUT)
        if outcome.exception is not None:
            raise outcome.exception
        if outcome.close_before_accept is not None:
            message = outcome.close_before_accept
            raise WebSocketDisconnect(code=message.get("code", 1000), reason=message.get("reason", "")) from None
        response = exc.response
        raise WebSocketDenialResponse(
            status_code=response.status_code,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.raw_items()],
            content=bytes(response.body or b""),
        ) from None

    def __exit__(self, *args: Any) -> None:
        self.close(1000)
        outcome = self._outcome
        if outcome is not None and outcome.done.wait(_OUTCOME_TIMEOUT) and outcome.exception is not None:
            if args[0] is None:
                raise outcome.exception

    def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.receive":
            if message.get("bytes") is not None:
                self._conn.send(message["bytes"])
            else:
                self._conn.send(message.get("text", ""))
        elif kind == "websocket.disconnect":
            self.close(message.get("code", 1000), message.get("reason"))

    def send_text(self, data: str) -> None:
        self._conn.send(data)

    def send_bytes(self, data: bytes) -> None:
        self._conn.send(data)

    def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            self._conn.send(text)
        else:
            self._conn.send(text.encode("utf-8"))

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                if code == 1006:  # abnormal closure: no close frame, the connection just drops
                    self._connection.close_socket()
                else:
                    self._connection.close(code, reason or "")
            with contextlib.suppress(Exception):
                self._stack.close()

    def receive(self) -> dict[str, Any]:
        try:
            data = self._conn.recv()
        except ConnectionClosed as closed:
            frame = closed.rcvd
            if frame is None:
                outcome = self._outcome
                if outcome is not None and outcome.done.wait(_OUTCOME_TIMEOUT) and outcome.exception is not None:
                    raise outcome.exception from None
                return {"type": "websocket.close", "code": 1006, "reason": ""}
            return {"type": "websocket.close", "code": frame.code, "reason": frame.reason}
        if isinstance(data, bytes):
            return {"type": "websocket.send", "bytes": data}
        return {"type": "websocket.send", "text": data}

    def _raise_on_close(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(code=message.get("code", 1000), reason=message.get("reason", ""))

    def receive_text(self) -> str:
        message = self.receive()
        self._raise_on_close(message)
        return message["text"]  # type: ignore[no-any-return]

    def receive_bytes(self) -> bytes:
        message = self.receive()
        self._raise_on_close(message)
        return message["bytes"]  # type: ignore[no-any-return]

    def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        message = self.receive()
        self._raise_on_close(message)
        text = message["text"] if mode == "text" else message["bytes"].decode("utf-8")
        return json.loads(text)

    @property
    def _conn(self) -> ClientConnection:
        assert self._connection is not None, "use the session as a context manager"
        return self._connection


class TestClient(_starlette_testclient.TestClient):
    """Starlette's ``TestClient``, with every request served by the engine over loopback."""

    __test__ = False

    def __init__(
        self,
        app: Any,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
        cookies: Any = None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        super().__init__(
            app,
            base_url=base_url,
            raise_server_exceptions=raise_server_exceptions,
            root_path=root_path,
            backend=backend,
            backend_options=backend_options,
            cookies=cookies,
            headers=headers,
            follow_redirects=follow_redirects,
            client=client,
        )
        self._raise_server_exceptions = raise_server_exceptions
        self._root_path = root_path
        self._client_address = client
        self._site_lock = threading.Lock()
        self._site_state: tuple[_TestSite, int, int] | None = None
        self._transport = _EngineTransport(self)
        self._mounts = {}

    def _site(self) -> tuple[_TestSite, int]:
        with self._site_lock:
            if self._site_state is None:
                site = _TestSite(self.app, self.app_state, self._root_path, self._client_address)
                port, listener_id = _get_hub().listen(site)
                self._site_state = (site, port, listener_id)
            return self._site_state[0], self._site_state[1]

    def _close_site(self) -> None:
        with self._site_lock:
            state, self._site_state = self._site_state, None
        if state is not None:
            _get_hub().unlisten(state[2])

    def websocket_connect(self, url: str, subprotocols: Sequence[str] | None = None, **kwargs: Any) -> Any:
        url = urljoin("ws://testserver", url)
        request = self.build_request("GET", url, headers=kwargs.get("headers"), params=kwargs.get("params"), cookies=kwargs.get("cookies"))
        return WebSocketTestSession(self, request.url, list(request.headers.raw), subprotocols)

    def __enter__(self) -> TestClient:
        hub = _get_hub()
        hub.run(self._lifespan_start())
        return self

    def __exit__(self, *args: Any) -> None:
        hub = _get_hub()
        try:
            hub.run(self._lifespan_stop())
        finally:
            self._close_site()
            self._transport.close()

    # Lifespan runs on the engine's loop, so what it creates (clients, pools) is usable by the
    # requests. Same protocol and errors as Starlette's client, awaiting the task instead of
    # blocking on it.
    async def _lifespan_start(self) -> None:
        send = anyio.create_memory_object_stream[Any](math.inf)
        receive = anyio.create_memory_object_stream[Any](math.inf)
        self.stream_send = StapledObjectStream(*send)
        self.stream_receive = StapledObjectStream(*receive)
        self._lifespan_task = asyncio.ensure_future(self.lifespan())
        try:
            await self.stream_receive.send({"type": "lifespan.startup"})
            message = await self._lifespan_receive()
            assert message["type"] in ("lifespan.startup.complete", "lifespan.startup.failed")
            if message["type"] == "lifespan.startup.failed":
                await self._lifespan_receive()
        except BaseException:
            await self._close_lifespan_streams()
            raise

    async def _lifespan_stop(self) -> None:
        try:
            await self.stream_receive.send({"type": "lifespan.shutdown"})
            message = await self._lifespan_receive()
            assert message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed")
            if message["type"] == "lifespan.shutdown.failed":
                await self._lifespan_receive()
            # Let the lifespan call end (it sends a last None) before its streams close.
            await asyncio.wait([self._lifespan_task], timeout=_OUTCOME_TIMEOUT)
            if self._lifespan_task.done() and not self._lifespan_task.cancelled():
                self._lifespan_task.exception()  # retrieved: nothing is logged at GC
        finally:
            await self._close_lifespan_streams()

    async def _lifespan_receive(self) -> Any:
        message = await self.stream_send.receive()
        if message is None:
            await self._lifespan_task  # raises what the app raised
        return message

    async def _close_lifespan_streams(self) -> None:
        for stream in (self.stream_send, self.stream_receive):
            await stream.aclose()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._close_site()
