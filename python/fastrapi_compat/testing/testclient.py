"""``TestClient``: a drop-in for Starlette's (and FastAPI's) that drives the real engine.

Every request goes over loopback through the Rust engine, which parses it, builds the scope and
streams both bodies exactly as it does in production. What Starlette's client promises on top of
plain HTTP is kept: the app sees ``client=("testclient", 50000)``, the URL's scheme and server,
the client's ``root_path`` and lifespan ``state``; a server-side exception is re-raised in the
test (``raise_server_exceptions``); ``with TestClient(app)`` runs lifespan; ``websocket_connect``
opens a real websocket. Those promises travel beside the request (one header the engine-side
handler removes before the app sees the scope), never by calling the app in process.

All clients of a process share one engine and one event-loop thread (the *hub*); each client
gets its own listener on a free port (see :mod:`fastrapi_compat.testing.loopback`). The httpx
transports :class:`EngineTransport` and :class:`AsyncEngineTransport`, drop-ins for
``httpx.ASGITransport``, are exported here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

import anyio
import starlette.testclient as _starlette_testclient
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.stapled import StapledObjectStream
from starlette.websockets import WebSocketDisconnect

from fastrapi_compat._native import ClientDisconnected
from fastrapi_compat.testing.loopback import (
    OUTCOME_TIMEOUT,
    SIDE_HEADER,
    EngineSite,
    Outcome,
    check_asgi_app,
    engine_stats,
    engine_timeout,
    fallback_reasons,
    get_hub,
    native_under,
    timed_out,
    waiting_at,
)
from fastrapi_compat.testing.quiet import WEBSOCKETS_LOGGER, quiet
from fastrapi_compat.testing.transports import AsyncEngineTransport, EngineTransport

httpx = _starlette_testclient.httpx  # type: ignore[attr-defined]  # the flavour Starlette's TestClient is built on (httpx2 or httpx)
WebSocketDenialResponse = _starlette_testclient.WebSocketDenialResponse
_STARLETTE_TAKES_CLIENT = "client" in inspect.signature(_starlette_testclient.TestClient.__init__).parameters

if TYPE_CHECKING:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import ClientConnection


def _websockets() -> Any:
    """The ``websockets`` package, which only websocket tests need (imported when one runs)."""
    try:
        import websockets.exceptions
        import websockets.sync.client
    except ImportError as exc:
        raise ImportError(
            "websocket_connect through the engine needs the websockets package: pip install websockets"
        ) from exc
    return websockets


__all__ = [
    "AsyncEngineTransport",
    "EngineTransport",
    "TestClient",
    "WebSocketDenialResponse",
    "WebSocketTestSession",
    "engine_stats",
    "fallback_reasons",
    "native_under",
]

_SIDE_HEADER_BYTES = SIDE_HEADER.encode()
_OUTCOME_TIMEOUT = OUTCOME_TIMEOUT


def _default_port(scheme: str) -> int:
    return {"http": 80, "ws": 80, "https": 443, "wss": 443}[scheme]


class _EngineResponseStream(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
    def __init__(self, response: Any, on_close: Any, outcome: Outcome, request: Any) -> None:
        self._response = response
        self._on_close = on_close
        self._outcome = outcome
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._response.stream)
        while True:
            try:
                with quiet():  # around each read only: the caller's code between chunks is its own
                    chunk = next(chunks)
            except StopIteration:
                return
            except httpx.TimeoutException as exc:
                raise timed_out(self._request, waiting_at(self._outcome)) from exc
            except httpx.TransportError:
                # The engine aborted the body because the app failed mid-response (as uvicorn
                # does); Starlette's client ends the body there and reports the app's error.
                if self._outcome.started is None or not self._outcome.done.wait(_OUTCOME_TIMEOUT):
                    raise
                return
            yield chunk

    def close(self) -> None:
        try:
            with quiet():
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
        url = request.url
        request_id, outcome = site.expect(self._client._promises(url))
        # Over HTTP a field value never carries leading or trailing whitespace (RFC 9110): it
        # is stripped here as any server would, since the HTTP client refuses to send it.
        headers = [(k, v.strip(b" \t")) for k, v in request.headers.raw if k.lower() != _SIDE_HEADER_BYTES]
        headers.append((_SIDE_HEADER_BYTES, request_id.encode()))
        target = httpx.URL(scheme="http", host="127.0.0.1", port=port, raw_path=url.raw_path)
        forwarded = httpx.Request(request.method, target, headers=headers, stream=request.stream)
        bound = engine_timeout()  # on the engine's silence (the app runs on the engine's loop)
        forwarded.extensions["timeout"] = {"connect": bound, "read": bound, "write": bound, "pool": bound}
        raise_exceptions = self._client._raise_server_exceptions
        try:
            with quiet():
                response = self._http.handle_request(forwarded)
        except httpx.TimeoutException as exc:
            raise timed_out(request, waiting_at(outcome)) from exc
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
            stream=_EngineResponseStream(response, on_close, outcome, request),
            request=request,
        )
        if outcome.debug is not None:
            result.extensions["http.response.debug"] = outcome.debug
            if "template" in outcome.debug:
                setattr(result, "template", outcome.debug["template"])  # noqa: B010 - Starlette's extra attribute
            if "context" in outcome.debug:
                setattr(result, "context", outcome.debug["context"])  # noqa: B010
        return result

    @staticmethod
    def _wait(outcome: Outcome, response: Any) -> bool:
        """True when the app ended without starting a response (the engine answered for it)."""
        if response.status_code != 500:
            return False
        return outcome.claimed and outcome.done.wait(_OUTCOME_TIMEOUT) and outcome.started is None

    def close(self) -> None:
        with quiet():
            self._http.close()


def _sent_after_close(exc: BaseException) -> bool:
    """Whether the app failed only because it sent after this client had closed: over a socket
    that send fails (the engine's ``ClientDisconnected``, an ``OSError``, which Starlette's
    ``WebSocket`` turns into ``WebSocketDisconnect(1006)``), as under uvicorn; Starlette's
    in-memory ``TestClient`` takes the message and the test sees no error, so neither does
    this one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientDisconnected):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class WebSocketTestSession:
    """Starlette's ``WebSocketTestSession`` API over a real websocket to the engine."""

    def __init__(
        self, client: TestClient, url: Any, headers: list[tuple[bytes, bytes]], subprotocols: Sequence[str] | None
    ) -> None:
        self._client = client
        self._url = url
        self._headers = headers
        self._subprotocols = list(subprotocols) if subprotocols is not None else None
        self._connection: ClientConnection | None = None
        self._outcome: Outcome | None = None
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None

    def __enter__(self) -> WebSocketTestSession:
        site, port = self._client._site()
        url = self._url
        request_id, outcome = site.expect(self._client._promises(url), host=bytes(url.netloc))
        self._outcome = outcome
        skip = {
            b"host",
            b"connection",
            b"upgrade",
            b"sec-websocket-key",
            b"sec-websocket-version",
            b"sec-websocket-protocol",
            b"sec-websocket-extensions",
            _SIDE_HEADER_BYTES,
        }
        extra = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._headers if k.lower() not in skip]
        extra.append((SIDE_HEADER, request_id))
        target = f"ws://127.0.0.1:{port}{url.raw_path.decode('ascii')}"
        self._stack = contextlib.ExitStack()
        websockets = _websockets()
        try:
            self._connection = self._stack.enter_context(
                websockets.sync.client.connect(
                    target,
                    additional_headers=extra,
                    subprotocols=self._subprotocols,
                    compression=None,
                    open_timeout=_OUTCOME_TIMEOUT,
                    max_size=None,
                    user_agent_header=None,
                    logger=WEBSOCKETS_LOGGER,
                )
            )
        except websockets.exceptions.InvalidStatus as exc:
            self._rejected(outcome, exc)
            raise AssertionError("unreachable") from None  # pragma: no cover
        self.accepted_subprotocol = self._connection.subprotocol
        accept = outcome.accept or {}
        self.extra_headers = accept.get("headers")
        return self

    def _rejected(self, outcome: Outcome, exc: InvalidStatus) -> None:
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

    def __exit__(self, *args: object) -> None:
        self.close(1000)
        outcome = self._outcome
        if outcome is not None and outcome.done.wait(_OUTCOME_TIMEOUT) and outcome.exception is not None:
            if args[0] is None and not _sent_after_close(outcome.exception):
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
        except _websockets().exceptions.ConnectionClosed as closed:
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
        check_asgi_app(app, "TestClient")
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
            # Starlette < 0.44 has no `client` argument; the engine-side handler sets it anyway.
            **({"client": client} if _STARLETTE_TAKES_CLIENT else {}),
        )
        self._raise_server_exceptions = raise_server_exceptions
        self._root_path = root_path
        self._client_address = client
        self._site_lock = threading.Lock()
        self._site_state: tuple[EngineSite, int, int] | None = None
        self._transport = _EngineTransport(self)
        self._mounts = {}

    def _site(self) -> tuple[EngineSite, int]:
        with self._site_lock:
            if self._site_state is None:
                site = EngineSite(self.app, self.app_state, debug_extension=True)
                port, listener_id = get_hub().listen(site)
                site.serve_natively(get_hub().engine, listener_id)
                self._site_state = (site, port, listener_id)
            return self._site_state[0], self._site_state[1]

    def _promises(self, url: Any) -> dict[str, Any]:
        """What the app sees as Starlette's client shows it, for a request to ``url``."""
        scheme = url.scheme
        port = url.port if url.port is not None else _default_port(scheme)
        return {
            "scheme": scheme,
            "server": [url.raw_host.decode("ascii"), port],
            "client": self._client_address,
            "root_path": self._root_path,
        }

    def _close_site(self) -> None:
        with self._site_lock:
            state, self._site_state = self._site_state, None
        if state is not None:
            get_hub().unlisten(state[2])

    def websocket_connect(self, url: str, subprotocols: Sequence[str] | None = None, **kwargs: Any) -> Any:
        url = urljoin("ws://testserver", url)
        request = self.build_request(
            "GET", url, headers=kwargs.get("headers"), params=kwargs.get("params"), cookies=kwargs.get("cookies")
        )
        return WebSocketTestSession(self, request.url, list(request.headers.raw), subprotocols)

    def __enter__(self) -> TestClient:
        hub = get_hub()
        hub.run(self._lifespan_start())
        return self

    def __exit__(self, *args: object) -> None:
        hub = get_hub()
        try:
            hub.run(self._lifespan_stop())
        finally:
            self._close_site()
            self._transport.close()

    # Lifespan runs on the engine's loop, so what it creates (clients, pools) is usable by the
    # requests. Same protocol and errors as Starlette's client, awaiting the task instead of
    # blocking on it.
    async def _lifespan_start(self) -> None:
        # (Not the subscripted form: anyio 3, which Starlette allows, has no generic alias.)
        send: tuple[MemoryObjectSendStream[Any], MemoryObjectReceiveStream[Any]] = anyio.create_memory_object_stream(
            math.inf
        )
        receive: tuple[MemoryObjectSendStream[Any], MemoryObjectReceiveStream[Any]] = anyio.create_memory_object_stream(
            math.inf
        )
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
