"""The flags of ``fastrapi-compat run``: uvicorn 0.55's names, meanings and defaults, the ones
beyond uvicorn, and a one-line ``Error: --X is not supported by fastrapi-compat: why`` for each
uvicorn flag the engine does not implement (instead of argparse's "unrecognized arguments").

:func:`add_run_arguments` declares them, :func:`config_from` turns parsed flags into the
server's :class:`~fastrapi_compat.serve.server.Config`, :func:`worker_argv` passes them on to
the workers of ``--workers N``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Any

from fastrapi_compat.serve import tls
from fastrapi_compat.serve.environment import LOOPS
from fastrapi_compat.serve.server import Config

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LIFESPAN_MODES = ("auto", "on", "off")

_LATER = "not supported yet"
#: uvicorn flags that always give the one-line error, and why.
NOT_SUPPORTED: dict[str, str] = {
    "--timeout-worker-healthcheck": "the supervisor does not ping its workers; it replaces a worker that exits "
    "(see --workers in the README)",
    "--reset-contextvars": f"{_LATER}: each request runs in a copy of the loop's context (uvicorn's default)",
}
_FLAGS_WITHOUT_VALUE = {"--reset-contextvars"}
#: How a worker of ``run --workers N`` gets ``--ssl-keyfile-password`` (not on its command line,
#: where ``ps`` would show it); the worker removes it from its environment.
PASSWORD_ENV = "FASTRAPI_SSL_KEYFILE_PASSWORD"

#: uvicorn flags whose value decides: the values accepted, and why the others are not.
ACCEPTED_VALUES: dict[str, tuple[tuple[str, ...], str]] = {
    "--http": (
        ("auto", "h11", "httptools", "h2"),
        "the engine serves HTTP itself (hyper, in Rust): h11 and httptools mean HTTP/1.1 only, auto "
        "and h2 HTTP/1.1 and HTTP/2 (zttp is uvicorn's own parser)",
    ),
    "--ws": (
        ("auto",),
        "websockets are served by the engine itself (tungstenite, in Rust); --ws auto is accepted",
    ),
    "--interface": (
        ("auto", "asgi3"),
        "the engine serves ASGI 3 apps; wrap a WSGI app in a2wsgi's WSGIMiddleware, an ASGI 2 app in "
        "asgiref's guarantee_single_callable",
    ),
}


class UsageError(Exception):
    """A command line the parser rejects; ``str()`` is the one line to print."""


def not_supported(flag: str, value: str | None, why: str) -> UsageError:
    shown = flag if value is None else f"{flag} {value}"
    return UsageError(f"{shown} is not supported by fastrapi-compat: {why}.")


class _NotSupported(argparse.Action):
    """Any use of the flag is the one-line error."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        flag = option_string or self.dest
        raise not_supported(flag, None, NOT_SUPPORTED[flag])


class _AcceptedValues(argparse.Action):
    """The flag takes the values in :data:`ACCEPTED_VALUES`; another is the one-line error."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        flag = option_string or self.dest
        accepted, why = ACCEPTED_VALUES[flag]
        if str(values).lower() not in accepted:
            raise not_supported(flag, str(values), why)
        setattr(namespace, self.dest, str(values).lower())


class _Version(argparse.Action):
    """uvicorn's ``--version`` on the command itself: print the version and exit."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        print(version_text())
        raise SystemExit(0)


def version_text() -> str:
    from fastapi import __version__ as fastapi_version

    from fastrapi_compat import __version__

    return (
        f"fastrapi-compat {__version__} (fastapi {fastapi_version}, "
        f"{platform.python_implementation()} {platform.python_version()} on {platform.system()})"
    )


def _number(text: str, kind: type[int] | type[float], minimum: float, strict: bool = False) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value != value or value == float("inf") or value < minimum or (strict and value == minimum):
        bound = f"more than {minimum:g}" if strict else f"{minimum:g} or more"
        raise argparse.ArgumentTypeError(f"invalid number {text}: must be {bound}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: must be 0..65535")
    return value


def positive_int(text: str) -> int:
    return int(_number(text, int, 1))


def non_negative_int(text: str) -> int:
    return int(_number(text, int, 0))


def positive_float(text: str) -> float:
    return float(_number(text, float, 0, strict=True))


def non_negative_float(text: str) -> float:
    return float(_number(text, float, 0))


def head_limit(text: str) -> int:
    value = positive_int(text)
    if value < 8192:
        raise argparse.ArgumentTypeError(f"invalid size {text}: must be at least 8192 bytes")
    return value


def existing_file(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"Path {text!r} does not exist.")
    return text


def header(text: str) -> tuple[str, str]:
    """uvicorn's ``--header Name:Value`` (the value kept as given, leading space included)."""
    name, sep, value = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"Expected 'Name:Value' format, got {text!r}.")
    return name, value


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """Declares every flag of ``run`` on ``run``."""
    run.add_argument("app", metavar="MODULE:APP", help="import target, e.g. main:app")
    run.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    run.add_argument("--port", type=port, default=8000, help="bind port (default: %(default)s)")
    run.add_argument("--uds", metavar="PATH", default=None, help="serve on a unix domain socket at PATH")
    run.add_argument(
        "--fd", type=non_negative_int, default=None, metavar="N", help="serve on the inherited listening socket N"
    )
    run.add_argument(
        "--loop",
        default="auto",
        metavar="|".join(LOOPS[:-1]),
        help="event loop: uvloop when installed, asyncio's, or a module:factory (default: %(default)s)",
    )
    run.add_argument(
        "--http",
        action=_AcceptedValues,
        default="auto",
        metavar="auto|h11|httptools|h2",
        help="auto, h2: HTTP/1.1 and HTTP/2 (ALPN over TLS, prior knowledge in cleartext); h11, "
        "httptools: HTTP/1.1 only (default: %(default)s)",
    )
    run.add_argument(
        "--http2",
        action="store_true",
        help="uvicorn's switch for HTTP/2: the engine serves it with --http auto or h2 (the default)",
    )
    run.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=None,
        help="log level (default: info, or what --log-config sets)",
    )
    run.add_argument(
        "--log-config", type=existing_file, default=None, metavar="PATH", help="logging config: .json, .yaml or .ini"
    )
    run.add_argument(
        "--use-colors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="colour the log level names (default: when stdout is a terminal)",
    )
    run.add_argument(
        "--env-file", type=existing_file, default=None, metavar="PATH", help="load environment variables (dotenv)"
    )
    run.add_argument("--root-path", default="", help="ASGI root_path, for apps served under a path prefix by a proxy")
    run.add_argument(
        "--lifespan", choices=LIFESPAN_MODES, default="auto", help="lifespan events (default: %(default)s)"
    )
    run.add_argument(
        "--tier",
        choices=("auto", "asgi"),
        default=os.environ.get("FASTRAPI_TIER", "auto"),
        help="auto: native routes natively, the rest through ASGI; asgi: everything through the "
        "app's ASGI stack (default: %(default)s, or $FASTRAPI_TIER)",
    )
    run.add_argument(
        "--sched-batch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on Linux, the event loop's thread (and the threads it starts) in SCHED_BATCH, so that "
        "waking it does not preempt the engine's I/O thread (default: on)",
    )
    run.add_argument(
        "--app-dir", default=".", help="directory put first on sys.path to import the app (default: current directory)"
    )
    run.add_argument(
        "--factory", action="store_true", help="treat MODULE:APP as a function with no arguments that returns the app"
    )
    _add_limits(run)
    _add_headers(run)
    _add_websockets(run)
    _add_tls(run)
    run.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="worker processes sharing the port (default: $WEB_CONCURRENCY or 1)",
    )
    _add_reload(run)
    run.add_argument("--version", action=_Version, nargs=0, default=False, help="print the version and exit")
    for flag in NOT_SUPPORTED:
        nargs = 0 if flag in _FLAGS_WITHOUT_VALUE else "?"
        run.add_argument(flag, action=_NotSupported, nargs=nargs, help=argparse.SUPPRESS)
    for flag, default in (("--ws", "auto"), ("--interface", "auto")):
        run.add_argument(flag, action=_AcceptedValues, default=default, help=argparse.SUPPRESS)


def _add_reload(run: argparse.ArgumentParser) -> None:
    """uvicorn's ``--reload`` flags (``serve/reload.py``)."""
    run.add_argument("--reload", action="store_true", help="restart the server when a watched file changes")
    for flag, what in (
        ("--reload-dir", "a directory to watch (repeatable; default: the current directory)"),
        ("--reload-include", "a glob of files to watch (repeatable; default: *.py)"),
        ("--reload-exclude", "a glob or directory not to watch (repeatable; default: .*, .py[cod], .sw.*, ~*)"),
    ):
        run.add_argument(
            flag, action="append", default=[], metavar="PATH" if flag == "--reload-dir" else "GLOB", help=what
        )
    run.add_argument(
        "--reload-delay",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="seconds between checks for changes (default: %(default)s)",
    )


def _add_limits(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--backlog",
        type=positive_int,
        default=2048,
        metavar="N",
        help="connections the kernel queues before they are accepted (default: %(default)s)",
    )
    run.add_argument(
        "--limit-concurrency",
        type=positive_int,
        default=None,
        metavar="N",
        help="answer 503 once N connections are open or N requests in flight (default: none)",
    )
    run.add_argument(
        "--limit-max-requests",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop gracefully after N requests; with --workers the worker is replaced (default: none)",
    )
    run.add_argument(
        "--limit-max-requests-jitter",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="add a random 0..N to --limit-max-requests, so workers do not stop together (default: 0)",
    )
    run.add_argument(
        "--limit-request-headers",
        type=head_limit,
        default=None,
        metavar="BYTES",
        help="answer 431 to a request head larger than this, at least 8192 (default: about 400 KB; "
        "uvicorn has no limit)",
    )
    run.add_argument(
        "--h11-max-incomplete-event-size",
        type=positive_int,
        default=None,
        metavar="BYTES",
        help="uvicorn's h11 buffer limit: taken as --limit-request-headers (at least 8192)",
    )
    run.add_argument(
        "--limit-request-body",
        type=non_negative_int,
        default=None,
        metavar="BYTES",
        help="answer 413 to a request body larger than this, read lazily (default: none; uvicorn has none)",
    )
    run.add_argument(
        "--metrics-port",
        type=port,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics, 0 for a free port "
        "(with --workers N, worker i on PORT+i; default: none; uvicorn has none)",
    )
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address of the metrics endpoint (default: %(default)s)",
    )
    run.add_argument(
        "--timeout-keep-alive",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="close a connection that sends no new request within this (default: %(default)s)",
    )
    run.add_argument(
        "--timeout-request-header",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="answer 408 and close when a request head takes longer than this from its first byte "
        "(default: none, the keep-alive timeout bounds it; uvicorn has none)",
    )
    run.add_argument(
        "--timeout-graceful-shutdown",
        type=non_negative_float,
        default=30.0,
        metavar="SECONDS",
        help="on shutdown, how long requests in flight and background tasks get before they are "
        "cancelled (default: %(default)s)",
    )


def _add_headers(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="uvicorn's access log on stdout, one line per request (logger uvicorn.access; default: on)",
    )
    run.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take the scheme and client from X-Forwarded-Proto/-For sent by --forwarded-allow-ips (default: on)",
    )
    run.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="LIST",
        help="comma-separated addresses, networks or '*' whose proxy headers are trusted "
        "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1,::1)",
    )
    run.add_argument(
        "--server-header",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send uvicorn's 'server: uvicorn' (default: on)",
    )
    run.add_argument(
        "--date-header", action=argparse.BooleanOptionalAction, default=True, help="send 'date' (default: on)"
    )
    run.add_argument(
        "--header",
        dest="headers",
        type=header,
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a header added to every response; repeatable",
    )


def _add_websockets(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--ws-max-size",
        type=positive_int,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="largest websocket message accepted; larger ones are closed 1009 (default: %(default)s)",
    )
    run.add_argument(
        "--ws-max-queue",
        type=positive_int,
        default=32,
        metavar="N",
        help="websocket messages read ahead of the app; reading stops beyond (default: %(default)s)",
    )
    run.add_argument(
        "--ws-ping-interval",
        type=non_negative_float,
        default=20.0,
        metavar="SECONDS",
        help="keepalive ping interval, 0 for none (default: %(default)s)",
    )
    run.add_argument(
        "--ws-ping-timeout",
        type=non_negative_float,
        default=20.0,
        metavar="SECONDS",
        help="close 1011 when a ping is not answered within this, 0 for never (default: %(default)s)",
    )
    run.add_argument(
        "--ws-per-message-deflate",
        type=boolean,
        default=True,
        metavar="BOOLEAN",
        help="offer permessage-deflate compression to websocket clients (default: true)",
    )


def _add_tls(run: argparse.ArgumentParser) -> None:
    run.add_argument("--ssl-keyfile", default=None, metavar="PATH", help="TLS private key (PEM)")
    run.add_argument("--ssl-certfile", default=None, metavar="PATH", help="TLS certificate chain (PEM): serve https")
    run.add_argument("--ssl-keyfile-password", default=None, metavar="TEXT", help="password of an encrypted key")
    run.add_argument(
        "--ssl-version",
        type=int,
        default=tls.DEFAULT_VERSION,
        metavar="N",
        help="only 17 (ssl.PROTOCOL_TLS_SERVER, the default) or 2: rustls negotiates TLS 1.2 or 1.3",
    )
    run.add_argument(
        "--ssl-cert-reqs",
        type=int,
        default=0,
        metavar="N",
        help="client certificates: 0 not asked (default), 1 optional, 2 required",
    )
    run.add_argument(
        "--ssl-ca-certs", default=None, metavar="PATH", help="CA certificates (PEM) client certificates must chain to"
    )
    run.add_argument(
        "--ssl-ciphers",
        default=None,
        metavar="TEXT",
        help="only uvicorn's default (none given, or TLSv1): rustls offers its own safe cipher suites",
    )


#: The words click takes for a boolean option's value (uvicorn's --ws-per-message-deflate).
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise argparse.ArgumentTypeError(f"{text!r} is not a valid boolean (true or false)")


def config_from(args: argparse.Namespace) -> Config:
    """The server's config for parsed ``run`` flags (raises ``StartupError`` when invalid)."""
    if args.h11_max_incomplete_event_size is not None and args.limit_request_headers is not None:
        raise UsageError("--h11-max-incomplete-event-size and --limit-request-headers set the same limit: give one.")
    if args.uds is not None and args.fd is not None:
        raise UsageError("--uds and --fd both say where to listen: give one.")
    if args.http2 and args.http not in ("auto", "h2"):
        raise UsageError(f"--http2 asks for HTTP/2, which --http {args.http} does not serve: give --http auto or h2.")
    password = args.ssl_keyfile_password
    if password is None:
        password = os.environ.pop(PASSWORD_ENV, None)
    return Config(
        host=args.host,
        port=args.port,
        uds=args.uds,
        fd=args.fd,
        loop=args.loop,
        http=args.http,
        root_path=args.root_path,
        lifespan=args.lifespan,
        log_level=args.log_level,
        tier=args.tier,
        graceful_timeout=args.timeout_graceful_shutdown,
        timeout_keep_alive=args.timeout_keep_alive,
        timeout_request_header=args.timeout_request_header,
        backlog=args.backlog,
        limit_concurrency=args.limit_concurrency,
        limit_max_requests=args.limit_max_requests,
        limit_max_requests_jitter=args.limit_max_requests_jitter,
        limit_request_headers=args.limit_request_headers,
        limit_request_body=args.limit_request_body,
        h11_max_incomplete_event_size=args.h11_max_incomplete_event_size,
        access_log=args.access_log,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        server_header=args.server_header,
        date_header=args.date_header,
        headers=tuple(args.headers),
        ws_max_size=args.ws_max_size,
        ws_max_queue=args.ws_max_queue,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        ws_per_message_deflate=args.ws_per_message_deflate,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile_password=password,
        ssl_version=args.ssl_version,
        ssl_cert_reqs=args.ssl_cert_reqs,
        ssl_ca_certs=args.ssl_ca_certs,
        ssl_ciphers=args.ssl_ciphers,
        sched_batch=args.sched_batch,
    )


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The command line of one worker of ``run --workers N``; the supervisor adds ``--fd`` (the
    listening socket it made) and each worker's ``--metrics-port``. The environment file is not
    passed: the supervisor loaded it, and the workers inherit its environment."""

    def optional(flag: str, value: Any) -> list[str]:
        return [] if value is None else [flag, str(value)]

    def switch(flag: str, value: bool | None) -> list[str]:
        return [] if value is None else [f"--{flag}" if value else f"--no-{flag}"]

    argv = [sys.executable, "-m", "fastrapi_compat", "run", args.app, "--host", args.host,
            "--root-path", args.root_path, "--lifespan", args.lifespan, "--tier", args.tier,
            "--app-dir", args.app_dir, "--loop", args.loop, "--http", args.http,
            *optional("--log-level", args.log_level), *optional("--log-config", args.log_config),
            *switch("use-colors", args.use_colors), *switch("proxy-headers", args.proxy_headers),
            *switch("access-log", args.access_log), *switch("server-header", args.server_header),
            *switch("date-header", args.date_header), *switch("sched-batch", args.sched_batch),
            *[part for name, value in args.headers for part in ("--header", f"{name}:{value}")],
            "--backlog", str(args.backlog),
            *optional("--limit-concurrency", args.limit_concurrency),
            *optional("--limit-max-requests", args.limit_max_requests),
            "--limit-max-requests-jitter", str(args.limit_max_requests_jitter),
            *optional("--limit-request-headers", args.limit_request_headers),
            *optional("--h11-max-incomplete-event-size", args.h11_max_incomplete_event_size),
            *optional("--limit-request-body", args.limit_request_body),
            *optional("--forwarded-allow-ips", args.forwarded_allow_ips),
            "--timeout-keep-alive", repr(args.timeout_keep_alive),
            *optional("--timeout-request-header", args.timeout_request_header),
            "--timeout-graceful-shutdown", repr(args.timeout_graceful_shutdown),
            "--ws-max-size", str(args.ws_max_size), "--ws-max-queue", str(args.ws_max_queue),
            "--ws-ping-interval", repr(args.ws_ping_interval),
            "--ws-ping-timeout", repr(args.ws_ping_timeout),
            "--ws-per-message-deflate", "true" if args.ws_per_message_deflate else "false",
            "--metrics-host", args.metrics_host,
            *optional("--ssl-keyfile", args.ssl_keyfile), *optional("--ssl-certfile", args.ssl_certfile),
            *optional("--ssl-ca-certs", args.ssl_ca_certs), "--ssl-cert-reqs", str(args.ssl_cert_reqs),
            "--ssl-version", str(args.ssl_version), *optional("--ssl-ciphers", args.ssl_ciphers)]  # fmt: skip
    return [*argv, "--factory"] if args.factory else argv
