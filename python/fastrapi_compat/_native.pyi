"""Type stubs for the Rust engine (``native/``), checked with ``mypy.stubtest``."""

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal, final

__all__ = [
    "MISS_METHOD_NOT_ALLOWED",
    "MISS_NOT_FOUND",
    "MISS_REDIRECT",
    "SYNTHETIC_HOST_HEADER",
    "TEST_CLIENT_HEADER",
    "ClientDisconnected",
    "Engine",
    "HTTPProtocol",
    "LayerCall",
    "MiddlewareStack",
    "Ready",
    "RouteMirror",
    "WebSocketProtocol",
    "__version__",
    "build_profile",
    "dumps_plain",
]

__version__: str
build_profile: str

class ClientDisconnected(OSError):
    """Raised by a websocket ``send`` after the client went away."""

@final
class Ready:
    """An awaitable whose value is already known."""
    def __await__(self) -> Ready: ...
    def __iter__(self) -> Ready: ...
    def __next__(self) -> None: ...
    def send(self, _value: Any) -> None: ...
    def throw(self, typ: Any, value: Any = None, _tb: Any = None) -> None: ...
    def close(self) -> None: ...

@final
class Engine:
    """A tokio runtime serving any number of listeners, each with its own handler."""
    def __new__(
        cls, event_loop: asyncio.AbstractEventLoop, *, threads: int = 1, reasons: dict[int, str] = ...
    ) -> Engine: ...
    def listen(
        self,
        handler: Any,
        host: str,
        port: int,
        *,
        root_path: str = ...,
        reuse_port: bool = ...,
        timeout_keep_alive: float = ...,
        forwarded_allow_ips: str | None = ...,
        access_log: bool = ...,
        backlog: int = ...,
        limit_concurrency: int | None = ...,
        limit_max_requests: int | None = ...,
        limit_request_headers: int | None = ...,
        ws_max_size: int = ...,
        ws_max_queue: int = ...,
        ws_ping_interval: float | None = ...,
        ws_ping_timeout: float | None = ...,
        ws_per_message_deflate: bool = ...,
        fd: int | None = ...,
        date_header: bool = ...,
        default_headers: list[tuple[bytes, bytes]] = ...,
        limit_request_body: int | None = ...,
        timeout_request_header: float | None = ...,
        tls: tuple[bytes, bytes, bytes | None, int] | None = ...,
        http2: bool = ...,
    ) -> tuple[str, int, int]: ...
    def reload_tls(self, id: int, tls: tuple[bytes, bytes, bytes | None, int]) -> None: ...
    def set_mirror(self, id: int, mirror: RouteMirror | None) -> None: ...
    def serve_metrics(self, host: str, port: int, *, worker: str | None = None) -> tuple[str, int]: ...
    def stats(self) -> dict[str, int]: ...
    def wake_fd(self) -> int: ...
    def drain(self) -> list[HTTPProtocol | WebSocketProtocol]: ...
    def flush_soon(self) -> None: ...
    def shutdown(self, timeout: float, id: int | None = None) -> asyncio.Future[None]: ...
    def close(self) -> None: ...

@final
class HTTPProtocol:
    """One HTTP request: its scope and the ASGI ``receive``/``send`` callables."""
    @property
    def handler(self) -> Any: ...
    @property
    def method(self) -> str: ...
    @property
    def query_string(self) -> bytes: ...
    @property
    def root_path(self) -> str: ...
    def header(self, name: str) -> str | None: ...
    def take_body(self) -> bytes | None: ...
    def scope(self) -> dict[str, Any]: ...
    def receive(self) -> Awaitable[dict[str, Any]]: ...
    def send(self, message: Any) -> Awaitable[None]: ...
    def take_match(self) -> tuple[int, dict[str, str]] | None: ...
    def rematch(self, mirror: RouteMirror) -> tuple[int, dict[str, str]] | None: ...
    def served_natively(self) -> None: ...
    def skip_middleware(self) -> None: ...
    def session_error(self) -> BaseException | None: ...
    def respond(self, status: int, headers: Any, body: bytes) -> None: ...
    def close_connection(self) -> None: ...
    def finish(
        self,
    ) -> Literal["complete", "disconnected", "not_started", "not_completed", "invalid_request", "too_large"]: ...

@final
class WebSocketProtocol:
    """One websocket: its scope and the ASGI ``receive``/``send`` callables."""
    @property
    def handler(self) -> Any: ...
    def scope(self) -> dict[str, Any]: ...
    def receive(self) -> Awaitable[dict[str, Any]]: ...
    def send(self, message: Any) -> Awaitable[None]: ...
    def finish(self) -> Literal["complete", "not_started"]: ...

@final
class RouteMirror:
    """The Rust route mirror: ``RouteMirror([(pattern, prefix, methods, static_path, plan)])``,
    with the app's middleware when the engine runs them; ``misses``: a request no route takes
    gets one of the ``MISS_*`` plan ids (405 of a route, redirect, 404)."""
    def __new__(
        cls,
        routes: list[tuple[str, str, list[str] | None, str | None, int | None]],
        middleware: MiddlewareStack | None = None,
        misses: bool = False,
        redirect_slashes: bool = False,
        templates: list[str] = ...,
        websockets: list[tuple[str, str]] = ...,
    ) -> RouteMirror: ...
    def __len__(self) -> int: ...
    def lookup(self, method: str, route_path: str) -> tuple[int, dict[str, str]] | None: ...

@final
class MiddlewareStack:
    """Starlette's standard middleware as the engine runs them: ``[(kind, options)]``,
    outermost first (see ``fastrapi_compat.middleware``)."""
    def __new__(cls, layers: list[tuple[str, dict[str, Any]]]) -> MiddlewareStack: ...
    def enter(self, scope: dict[str, Any]) -> LayerCall | list[dict[str, Any]] | None:
        """The request phases for an ``http`` scope (see ``fastrapi_compat.execute.rust_layers``)."""
    def __len__(self) -> int: ...

@final
class LayerCall:
    """One request inside the Rust layers: its response phases."""
    def holds(self, status_code: int, headers: Any) -> bool: ...
    def start(
        self, status_code: int, headers: Any, body: bytes, more: bool, session: Any = None
    ) -> tuple[list[tuple[bytes, bytes]], bytes]: ...
    def chunk(self, body: bytes, more: bool) -> bytes: ...

MISS_METHOD_NOT_ALLOWED: int
MISS_REDIRECT: int
MISS_NOT_FOUND: int
SYNTHETIC_HOST_HEADER: str
TEST_CLIENT_HEADER: str

def dumps_plain(obj: Any) -> bytes | None: ...
