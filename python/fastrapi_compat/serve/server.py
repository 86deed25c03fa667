"""Starting and stopping the engine: the event loop, lifespan, signals, background threads.

``run()`` serves until SIGINT/SIGTERM; ``ServerThread`` serves from a background thread (tests).
The asyncio loop (uvloop when installed) runs the app; the engine's tokio threads do the I/O
and hand requests to the loop in batches through a file descriptor the loop watches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import logging
import os
import random
import re
import signal
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from fastrapi_compat._native import Engine
from fastrapi_compat.errors import StartupError
from fastrapi_compat.execute.under import fit
from fastrapi_compat.plan.live import NativeApp
from fastrapi_compat.serve import tls, workers
from fastrapi_compat.serve.dispatch import STATUS_PHRASES, Dispatcher, drain
from fastrapi_compat.serve.environment import UnixSocket, inherited_socket, load_env_file, socket_name
from fastrapi_compat.serve.environment import new_event_loop as _new_loop
from fastrapi_compat.serve.lifespan import Lifespan
from fastrapi_compat.serve.logs import LOGGING_CONFIG, SERVER_LOGGER, configure_logging, style

logger = logging.getLogger(SERVER_LOGGER)

#: uvicorn's ``--http`` values the engine serves (with hyper; see the README): ``h11`` and
#: ``httptools`` HTTP/1.1 only, ``auto`` and ``h2`` HTTP/2 too.
HTTP_IMPLEMENTATIONS = ("auto", "h11", "httptools", "h2")


def _batch_this_thread() -> Callable[[], None] | None:
    """Puts the calling thread (the loop thread) in Linux's ``SCHED_BATCH``: woken by the I/O
    thread's hand-off, it no longer preempts that thread on a shared core, which goes on
    reading and answering until it waits, so each wake-up takes a larger batch (``/plain`` on
    one pinned core: more requests/s and a lower p99, see the guide's benchmarks page). Allowed
    without privilege, the same CPU share as ``SCHED_OTHER``; threads and processes the loop
    thread starts while it serves (the engine's and anyio's worker threads among them) inherit
    it. Returns what sets the previous policy back, or None when the platform has no
    ``SCHED_BATCH`` or the thread runs under another policy than the default (a real-time or
    idle one someone chose is left alone)."""
    if not hasattr(os, "SCHED_BATCH"):
        return None
    try:
        previous = os.sched_getscheduler(0)
        if previous != os.SCHED_OTHER:
            return None
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:
        return None

    def restore() -> None:
        try:
            os.sched_setscheduler(0, previous, os.sched_param(0))
        except OSError:
            pass

    return restore


@dataclasses.dataclass(frozen=True)
class Config:
    """How to serve an app. Names follow uvicorn's options."""

    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = ""
    lifespan: str = "auto"
    log_level: str | None = None
    threads: int = 1
    """tokio worker threads doing the network I/O."""
    graceful_timeout: float = 30.0
    """Seconds in-flight requests and background tasks get to finish on shutdown (uvicorn's
    ``--timeout-graceful-shutdown``); then they are cancelled."""
    timeout_keep_alive: float = 5.0
    """Seconds a connection may wait for its next request (and its head take to arrive)."""
    backlog: int = 2048
    """Connections the kernel queues before they are accepted."""
    limit_concurrency: int | None = None
    """Open connections or requests in flight beyond which requests get 503 (uvicorn's rule)."""
    limit_max_requests: int | None = None
    """Requests after which the server stops gracefully (a worker is then replaced)."""
    limit_max_requests_jitter: int = 0
    """A random 0..N added to ``limit_max_requests``, so that workers do not stop together."""
    limit_request_headers: int | None = None
    """Largest request head accepted, in bytes, at least 8192 (more: 431); ``None``: ~400 KB."""
    access_log: bool = True
    """uvicorn's access log, on the ``uvicorn.access`` logger (when it logs at INFO)."""
    proxy_headers: bool = True
    """Believe ``X-Forwarded-Proto``/``X-Forwarded-For`` from ``forwarded_allow_ips``."""
    forwarded_allow_ips: str | list[str] | None = None
    """Addresses, networks or ``*`` (comma-separated); default ``$FORWARDED_ALLOW_IPS`` or
    ``127.0.0.1``, as uvicorn's."""

    def trusted_proxies(self) -> str | None:
        """The ``forwarded_allow_ips`` the engine is given (``None``: no proxy headers)."""
        if not self.proxy_headers:
            return None
        allowed = self.forwarded_allow_ips
        if allowed is None:
            allowed = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
        return allowed if isinstance(allowed, str) else ",".join(allowed)

    server_header: bool = True
    """Send uvicorn's ``server: uvicorn`` on every response (unless a ``headers`` entry names
    ``server``)."""
    date_header: bool = True
    """Send a ``date`` header on every response."""
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()
    """``(name, value)`` pairs added to every response (uvicorn's ``--header``)."""
    uds: str | None = None
    """Serve on a unix domain socket at this path instead of ``host:port``."""
    fd: int | None = None
    """Serve on this inherited listening socket (TCP or unix) instead of ``host:port``."""
    loop: str = "auto"
    """The event loop (uvicorn's ``--loop``): ``auto``, ``asyncio``, ``uvloop``, ``zuvloop``,
    ``none`` or a ``module:factory``; used by :func:`run` (a running loop is what it is)."""
    http: str = "auto"
    """uvicorn's ``--http``: ``h11`` and ``httptools`` serve HTTP/1.1 (hyper's parser); ``auto``
    and ``h2`` serve HTTP/2 as well (ALPN over TLS, prior knowledge in cleartext)."""
    ssl_keyfile: str | None = None
    """The private key (PEM) of the certificate; ``None``: in ``ssl_certfile``."""
    ssl_certfile: str | None = None
    """The certificate chain (PEM): serve TLS (rustls)."""
    ssl_keyfile_password: str | None = None
    """The password of an encrypted key (decrypted with the ``cryptography`` package)."""
    ssl_version: int = tls.DEFAULT_VERSION
    """Only ``ssl.PROTOCOL_TLS_SERVER``/``PROTOCOL_TLS``: rustls negotiates TLS 1.2 or 1.3."""
    ssl_cert_reqs: int = 0
    """Client certificates: 0 not asked, 1 optional, 2 required (checked against ``ssl_ca_certs``)."""
    ssl_ca_certs: str | None = None
    """CA certificates (PEM) client certificates must chain to."""
    ssl_ciphers: str | None = None
    """Only uvicorn's default (``None``, or older uvicorns' ``"TLSv1"``): rustls offers its own
    safe cipher suites."""

    def tls_args(self) -> tls.TlsArgs | None:
        """The engine's ``tls`` argument, read from the files now (``None``: cleartext)."""
        if self.ssl_certfile is None:
            return None
        return tls.load(
            self.ssl_certfile, self.ssl_keyfile, self.ssl_keyfile_password, self.ssl_ca_certs, self.ssl_cert_reqs
        )

    h11_max_incomplete_event_size: int | None = None
    """uvicorn's h11 buffer limit, taken as the head limit when ``limit_request_headers`` is
    not given (at least 8192, hyper's smallest buffer)."""
    limit_request_body: int | None = None
    """Largest request body accepted, in bytes: a larger ``Content-Length`` gets 413 before
    the app runs; a streamed body is cut (413) when it grows past it."""
    timeout_request_header: float | None = None
    """Seconds a request head may take from its first byte (slower: 408, then closed);
    ``None``: the keep-alive timeout bounds it from the end of the previous response."""
    sched_batch: bool = True
    """On Linux, the loop thread serves in ``SCHED_BATCH`` (see :func:`_batch_this_thread`)."""

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """uvicorn's encoded default headers: ``server: uvicorn`` first unless turned off or
        given, then ``headers`` (names lower-cased, latin-1)."""
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers]
        if self.server_header and b"server" not in dict(encoded):
            encoded.insert(0, (b"server", b"uvicorn"))
        return encoded

    def head_limit(self) -> int | None:
        """The request head limit the engine is given."""
        if self.limit_request_headers is not None:
            return self.limit_request_headers
        if self.h11_max_incomplete_event_size is not None:
            return max(8192, self.h11_max_incomplete_event_size)
        return None

    tier: str = "auto"
    """``auto``: routes the compiler understands are served natively, the rest by the ASGI
    tier; ``asgi``: every request goes through the app's full ASGI stack."""
    reuse_port: bool = False
    """Bind with ``SO_REUSEPORT`` (the workers of ``run --workers N`` share one port)."""
    ws_max_size: int = 16 * 1024 * 1024
    """Largest websocket message accepted, in bytes (larger: closed 1009)."""
    ws_max_queue: int = 32
    """Websocket messages read and not yet received by the app; reading stops beyond."""
    ws_ping_interval: float | None = 20.0
    """Seconds between the server's keepalive pings (``None`` or 0: none)."""
    ws_ping_timeout: float | None = 20.0
    """Seconds the peer has to answer a ping before the websocket is closed 1011."""
    ws_per_message_deflate: bool = True
    """Negotiate permessage-deflate (RFC 7692) with clients that offer it, as uvicorn does."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on ``http://metrics_host:metrics_port/metrics`` (0: a free
    port, logged); ``None``: no metrics."""
    metrics_host: str = "127.0.0.1"
    metrics_worker: str | None = None
    """The ``worker`` label of every sample (a worker's index under ``run --workers N``)."""

    def __post_init__(self) -> None:
        for name in ("backlog", "limit_concurrency", "limit_max_requests", "limit_max_requests_jitter"):
            value = getattr(self, name)
            optional = name in ("limit_concurrency", "limit_max_requests")
            if value is None and optional:
                continue
            minimum = 0 if name == "limit_max_requests_jitter" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise StartupError(f"{name} must be an integer >= {minimum}, got {value!r}")
        heads = self.limit_request_headers
        if heads is not None and (isinstance(heads, bool) or not isinstance(heads, int) or heads < 8192):
            raise StartupError(f"limit_request_headers must be an integer >= 8192 (bytes), got {heads!r}")
        for name in ("graceful_timeout", "timeout_keep_alive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise StartupError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.timeout_keep_alive == 0:
            raise StartupError("timeout_keep_alive must be more than 0 seconds")
        for name in ("ws_max_size", "ws_max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StartupError(f"{name} must be a positive integer, got {value!r}")
        for name in ("ws_ping_interval", "ws_ping_timeout"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value >= 0
                or value == float("inf")
            ):
                raise StartupError(f"{name} must be a number of seconds >= 0 or None, got {value!r}")
        self._check_added()

    def _check_added(self) -> None:
        """The options beyond the first ones: sockets, headers, body and head limits."""
        if self.uds is not None and self.fd is not None:
            raise StartupError("give uds or fd, not both")
        if self.fd is not None and (isinstance(self.fd, bool) or not isinstance(self.fd, int) or self.fd < 0):
            raise StartupError(f"fd must be a file descriptor number, got {self.fd!r}")
        if self.http not in HTTP_IMPLEMENTATIONS:
            raise StartupError(
                f"http={self.http!r} is not supported: the engine serves HTTP/1.1 (h11, httptools) or "
                "HTTP/1.1 and HTTP/2 (auto, h2) with hyper"
            )
        tls.check(
            self.ssl_certfile,
            self.ssl_keyfile,
            self.ssl_cert_reqs,
            self.ssl_version,
            self.ssl_ciphers,
            self.ssl_ca_certs,
        )
        for name, value in self.headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise StartupError(f"headers must be (name, value) strings, got {(name, value)!r}")
            if not name or not _TOKEN.fullmatch(name):
                raise StartupError(f"invalid header name {name!r}")
            if any(ord(c) > 255 or c in "\r\n\0" for c in value):
                raise StartupError(f"invalid value for header {name!r}: {value!r}")
        for name in ("limit_request_body", "h11_max_incomplete_event_size"):
            value = getattr(self, name)
            minimum = 0 if name == "limit_request_body" else 1
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
                raise StartupError(f"{name} must be an integer >= {minimum} (bytes), got {value!r}")
        timeout = self.timeout_request_header
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf")
        ):
            raise StartupError(f"timeout_request_header must be a number of seconds > 0, got {timeout!r}")
        port = self.metrics_port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise StartupError(f"metrics_port must be a port number (0-65535), got {port!r}")
        if not isinstance(self.ws_per_message_deflate, bool):
            raise StartupError(f"ws_per_message_deflate must be True or False, got {self.ws_per_message_deflate!r}")


TIERS = ("auto", "asgi")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def new_event_loop(loop: str = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when installed (as uvicorn picks it), else asyncio's; or the
    one ``loop`` names (uvicorn's ``--loop``)."""
    return _new_loop(loop)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Server:
    """Serves one ASGI app with the engine, on the running event loop."""

    def __init__(self, app: Any, config: Config | None = None) -> None:
        if not callable(app):
            raise StartupError(f"the app must be an ASGI callable, got {type(app).__name__}")
        self.app = app
        self.config = config or Config()
        self.bound: tuple[str, int] | None = None
        #: Where the metrics endpoint listens, once serving (with ``metrics_port``).
        self.metrics_bound: tuple[str, int] | None = None
        self._stop: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Engine | None = None
        self._listener_id: int | None = None

    def reload_tls(self) -> None:
        """SIGHUP: reads the certificate, key and CA files again; TLS handshakes from now on use
        them, connections already open keep theirs. A failure is logged; the old ones stay."""
        engine, listener_id = self._engine, self._listener_id
        if engine is None or listener_id is None or self.config.ssl_certfile is None:
            return
        try:
            args = self.config.tls_args()
            assert args is not None
            engine.reload_tls(listener_id, args)
        except (StartupError, ValueError) as exc:
            logger.error("Could not reload the TLS certificate (still serving the previous one): %s", exc)
            return
        logger.info("Reloaded the TLS certificate from %s", self.config.ssl_certfile)

    def stats(self) -> dict[str, int]:
        """Requests served so far: ``{"http", "websocket", "native"}``."""
        engine = self._engine
        return engine.stats() if engine is not None else {"http": 0, "websocket": 0, "native": 0}

    async def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Starts, serves until :meth:`request_shutdown`, then shuts down gracefully."""
        config = self.config
        if config.tier not in TIERS:
            raise StartupError(f"invalid tier {config.tier!r}: expected 'auto' or 'asgi'")
        loop = asyncio.get_running_loop()
        self._loop = loop
        logger.info(
            "Started server process [%d]",
            os.getpid(),
            extra={"color_message": "Started server process [" + style("%d", fg="cyan") + "]"},
        )
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        lifespan = Lifespan(self.app, config.lifespan, logger)
        await lifespan.startup()
        engine = Engine(loop, threads=config.threads, reasons=STATUS_PHRASES)
        self._engine = engine
        wake_fd = engine.wake_fd()
        loop.add_reader(wake_fd, drain, engine, loop)
        restore_policy: Callable[[], None] | None = None
        unix: UnixSocket | None = None
        try:
            self._serve_metrics(engine)
            dispatcher = Dispatcher(self.app, lifespan.state, logger)
            dispatcher.on_max_requests = self._max_requests_reached
            fd: int | None = None
            where = ""
            if config.uds is not None:
                unix = UnixSocket(config.uds, config.backlog)
                fd, where = os.dup(unix.fileno()), f"unix socket {config.uds}"
            elif config.fd is not None:
                inherited = inherited_socket(config.fd)
                where = f"socket {socket_name(inherited)}"
                fd = inherited.detach()
            tls_args = config.tls_args()
            try:
                host, port, listener_id = engine.listen(
                    dispatcher,
                    config.host,
                    config.port,
                    fd=fd,
                    date_header=config.date_header,
                    default_headers=config.default_headers(),
                    limit_request_body=config.limit_request_body,
                    timeout_request_header=config.timeout_request_header,
                    root_path=config.root_path,
                    reuse_port=config.reuse_port,
                    timeout_keep_alive=config.timeout_keep_alive,
                    forwarded_allow_ips=config.trusted_proxies(),
                    backlog=config.backlog,
                    limit_concurrency=config.limit_concurrency,
                    limit_max_requests=self._max_requests(),
                    limit_request_headers=config.head_limit(),
                    access_log=config.access_log and logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO),
                    ws_max_size=config.ws_max_size,
                    ws_max_queue=config.ws_max_queue,
                    ws_ping_interval=config.ws_ping_interval,
                    ws_ping_timeout=config.ws_ping_timeout,
                    ws_per_message_deflate=config.ws_per_message_deflate,
                    tls=tls_args,
                    http2=config.http in ("auto", "h2"),
                )
            except ValueError as exc:  # the TLS files do not make a configuration
                raise StartupError(f"cannot serve TLS with {config.ssl_certfile}: {exc}") from None
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                if fd is not None:
                    raise StartupError(f"cannot serve on {where or f'--fd {config.fd}'}: {reason}") from None
                raise StartupError(f"cannot bind to {config.host}:{config.port}: {reason}") from None
            if config.tier == "auto":
                # Compiled after the lifespan started: apps add routes there too.
                dispatcher.native = NativeApp(self.app, fit)
                dispatcher.native.attach(functools.partial(engine.set_mirror, listener_id))
            # Everything built so far (the app, its models, the plans) lives as long as the
            # server: collect startup garbage, then move the rest out of the collector's
            # generations, so that full collections under load only walk what requests make
            # (they paused the loop for tens of milliseconds otherwise).
            gc.collect()
            gc.freeze()
            restore_policy = _batch_this_thread() if config.sched_batch else None
            self.bound = (host, port)
            self._listener_id = listener_id
            scheme = "https" if tls_args is not None else "http"
            self._log_serving(where or f"{scheme}://{_url_host(host)}:{port}")
            if on_ready is not None:
                on_ready()
            await self._stop.wait()
            logger.info("Shutting down")
            await self._drain(engine, dispatcher)
        finally:
            if restore_policy is not None:
                restore_policy()
            loop.remove_reader(wake_fd)
            engine.close()
            if unix is not None:
                unix.close()
            if not self._force.is_set():  # a forced exit skips it, as uvicorn's does
                await lifespan.shutdown()
            logger.info(
                "Finished server process [%d]",
                os.getpid(),
                extra={"color_message": "Finished server process [" + style("%d", fg="cyan") + "]"},
            )

    def _serve_metrics(self, engine: Engine) -> None:
        """Starts the metrics endpoint (before the listener, whose requests it then counts)."""
        config = self.config
        if config.metrics_port is None:
            return
        try:
            host, port = engine.serve_metrics(config.metrics_host, config.metrics_port, worker=config.metrics_worker)
        except OSError as exc:
            reason = re.sub(r"\s*\(os error \d+\)$", "", exc.strerror or str(exc)).lower()
            raise StartupError(
                f"cannot bind the metrics endpoint to {config.metrics_host}:{config.metrics_port}: {reason}"
            ) from None
        self.metrics_bound = (host, port)
        logger.info("Metrics on http://%s:%d/metrics", _url_host(host), port)

    def _log_serving(self, where: str) -> None:
        if self.config.reuse_port:  # a worker of ``run --workers N``
            logger.info("worker %d serving %s", os.getpid(), where)
            return
        logger.info(
            "fastrapi-compat running on %s (Press CTRL+C to quit)",
            where,
            extra={"color_message": "fastrapi-compat running on " + style("%s", bold=True) + " (Press CTRL+C to quit)"},
        )

    async def _drain(self, engine: Engine, dispatcher: Dispatcher) -> None:
        """Stops accepting, closes idle connections, lets requests in flight and background
        tasks finish within the graceful timeout, then cancels what is left. A second SIGINT
        (``request_shutdown(force=True)``) stops waiting at once."""
        assert self._force is not None
        loop = asyncio.get_running_loop()
        timeout = self.config.graceful_timeout
        deadline = loop.time() + timeout
        forced: asyncio.Future[Any] = asyncio.ensure_future(self._force.wait())
        try:
            connections: asyncio.Future[Any] = asyncio.ensure_future(engine.shutdown(timeout))
            workers.notify_stopped_accepting()  # a worker: the supervisor may go on (workers.py)
            await asyncio.wait({connections, forced}, return_when=asyncio.FIRST_COMPLETED)
            if dispatcher.running() and not forced.done():
                logger.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
            while dispatcher.running() and not forced.done() and (left := deadline - loop.time()) > 0:
                waiting: set[asyncio.Future[Any]] = {*dispatcher.tasks, forced}
                await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            forced.cancel()
        tasks = [task for task in dispatcher.tasks if not task.done()]
        if tasks:
            logger.error("Cancel %s running task(s), timeout graceful shutdown exceeded", len(tasks))
            for task in tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
            await asyncio.wait(tasks, timeout=1.0)

    def _max_requests(self) -> int | None:
        limit = self.config.limit_max_requests
        if limit is None:
            return None
        return limit + random.randint(0, self.config.limit_max_requests_jitter)

    def _max_requests_reached(self) -> None:
        """``limit_max_requests`` served: a worker of ``run --workers N`` serves on until the
        supervisor stops it, once its replacement is ready; a lone server stops now."""
        if not workers.ask_to_retire():
            self.request_shutdown()

    def request_shutdown(self, force: bool = False) -> None:
        """Asks :meth:`serve` to stop (``force``: without waiting for what is in flight, nor the
        lifespan shutdown); safe to call from any thread or a signal handler."""
        loop, stop, forced = self._loop, self._stop, self._force
        if loop is None or stop is None or forced is None or loop.is_closed():
            return

        def stop_now() -> None:
            stop.set()
            if force:
                forced.set()

        try:
            in_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            stop_now()
        else:
            loop.call_soon_threadsafe(stop_now)

    def on_signal(self, sig: int) -> None:
        """SIGINT or SIGTERM: a graceful stop; SIGINT again while stopping: stop at once."""
        stopping = self._stop is not None and self._stop.is_set()
        self.request_shutdown(force=stopping and sig == signal.SIGINT)


def run(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    uds: str | None = None,
    fd: int | None = None,
    loop: str = "auto",
    http: str = "auto",
    env_file: str | os.PathLike[str] | None = None,
    log_config: dict[str, Any] | str | os.PathLike[str] | None = LOGGING_CONFIG,
    log_level: str | int | None = None,
    use_colors: bool | None = None,
    access_log: bool = True,
    root_path: str = "",
    lifespan: str = "auto",
    threads: int = 1,
    graceful_timeout: float = 30.0,
    timeout_graceful_shutdown: float | None = None,
    timeout_keep_alive: float = 5.0,
    timeout_request_header: float | None = None,
    backlog: int = 2048,
    limit_concurrency: int | None = None,
    limit_max_requests: int | None = None,
    limit_max_requests_jitter: int = 0,
    limit_request_headers: int | None = None,
    limit_request_body: int | None = None,
    h11_max_incomplete_event_size: int | None = None,
    proxy_headers: bool = True,
    forwarded_allow_ips: str | list[str] | None = None,
    server_header: bool = True,
    date_header: bool = True,
    headers: list[tuple[str, str]] | None = None,
    tier: str = "auto",
    ws_max_size: int = 16 * 1024 * 1024,
    ws_max_queue: int = 32,
    ws_ping_interval: float | None = 20.0,
    ws_ping_timeout: float | None = 20.0,
    ws_per_message_deflate: bool = True,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile_password: str | None = None,
    ssl_version: int = tls.DEFAULT_VERSION,
    ssl_cert_reqs: int = 0,
    ssl_ca_certs: str | None = None,
    ssl_ciphers: str | None = None,
    sched_batch: bool = True,
) -> None:
    """Serves ``app`` until SIGINT or SIGTERM. Raises :class:`StartupError` if it cannot start.
    Options are uvicorn's ``run()``'s, with its names and defaults (``graceful_timeout`` is
    uvicorn's ``timeout_graceful_shutdown``, which is taken too); beyond uvicorn: ``tier``, ``threads``,
    ``limit_request_headers``, ``limit_request_body``, ``timeout_request_header``,
    ``metrics_port``/``metrics_host`` (a Prometheus endpoint) and ``sched_batch``. Logging
    is configured first, as uvicorn's ``Config`` does (``log_config=None``: left as it is), then
    ``env_file`` is loaded."""
    configure_logging(log_level, access_log=access_log, use_colors=use_colors, log_config=log_config)
    if env_file is not None:
        load_env_file(env_file)
    config = Config(
        host=host,
        port=port,
        uds=uds,
        fd=fd,
        loop=loop,
        http=http,
        root_path=root_path,
        lifespan=lifespan,
        log_level=None if log_level is None else str(log_level),
        threads=threads,
        graceful_timeout=graceful_timeout if timeout_graceful_shutdown is None else timeout_graceful_shutdown,
        timeout_keep_alive=timeout_keep_alive,
        timeout_request_header=timeout_request_header,
        backlog=backlog,
        limit_concurrency=limit_concurrency,
        limit_max_requests=limit_max_requests,
        limit_max_requests_jitter=limit_max_requests_jitter,
        limit_request_headers=limit_request_headers,
        limit_request_body=limit_request_body,
        h11_max_incomplete_event_size=h11_max_incomplete_event_size,
        access_log=access_log,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=server_header,
        date_header=date_header,
        headers=tuple(headers or ()),
        tier=tier,
        ws_max_size=ws_max_size,
        ws_max_queue=ws_max_queue,
        ws_ping_interval=ws_ping_interval,
        ws_ping_timeout=ws_ping_timeout,
        ws_per_message_deflate=ws_per_message_deflate,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        ssl_keyfile=None if ssl_keyfile is None else os.fspath(ssl_keyfile),
        ssl_certfile=None if ssl_certfile is None else os.fspath(ssl_certfile),
        ssl_keyfile_password=ssl_keyfile_password,
        ssl_version=ssl_version,
        ssl_cert_reqs=ssl_cert_reqs,
        ssl_ca_certs=ssl_ca_certs,
        ssl_ciphers=ssl_ciphers,
        sched_batch=sched_batch,
    )
    serve_forever(app, config)


def serve_forever(app: Any, config: Config) -> None:
    """Serves ``app`` with ``config`` on a new loop (``config.loop``) until SIGINT or SIGTERM;
    logging is the caller's. A worker of ``run --workers N`` serves on the socket its
    supervisor made (``--fd``) and tells it when it is ready (``workers.py``)."""
    is_worker = workers.READY_FD_ENV in os.environ
    if is_worker:
        workers.die_with_parent()
        worker = os.environ.get(workers.WORKER_INDEX_ENV)
        config = dataclasses.replace(config, reuse_port=True, metrics_worker=worker)
    server = Server(app, config)
    loop = new_event_loop(config.loop)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, server.on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread: the caller stops the server
        if config.ssl_certfile is not None:
            try:
                loop.add_signal_handler(signal.SIGHUP, server.reload_tls)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        loop.run_until_complete(server.serve(on_ready=workers.notify_ready))
    finally:
        loop.close()


class ServerThread:
    """Serves ``app`` from a background thread on a free port: ``with ServerThread(app) as s: s.url``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.server = Server(app, Config(host=host, port=port, **options))
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self.server.bound is not None, "server not started"
        return self.server.bound[0]

    @property
    def port(self) -> int:
        assert self.server.bound is not None, "server not started"
        return self.server.bound[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.server.config.ssl_certfile is not None else "http"
        return f"{scheme}://{_url_host(self.host)}:{self.port}"

    def stats(self) -> dict[str, int]:
        """The engine's request counters (see :meth:`Server.stats`)."""
        return self.server.stats()

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._main, name="fastrapi-loop", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise StartupError(f"server did not start within {timeout} s")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.server.serve(on_ready=self._ready.set))
        except BaseException as exc:  # reported to the thread that called start()
            self._error = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()

    def stop(self, timeout: float = 30.0) -> None:
        self.server.request_shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
