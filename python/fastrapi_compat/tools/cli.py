"""The ``fastrapi-compat`` command line: ``run``, ``explain`` and ``check`` ``MODULE:APP``.

Flag names and defaults follow uvicorn's, so ``uvicorn main:app --port 8080`` becomes
``fastrapi-compat run main:app --port 8080``. Every error a user can cause (bad flag,
unimportable app, port in use, failing lifespan startup) prints one ``Error: ...`` line
on stderr and exits 1; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import logging
import os
import platform
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from fastrapi_compat.errors import StartupError
from fastrapi_compat.serve.logs import configure_logging

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LIFESPAN_MODES = ("auto", "on", "off")


class UsageError(Exception):
    """A command line the parser rejects; ``str()`` is the one line to print."""


class AppLoadError(Exception):
    """The ``MODULE:APP`` target cannot be turned into an ASGI app; ``str()`` is one line."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit 1 (not a usage dump, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand: ``run``, ``explain`` and ``check``."""
    parser = _Parser(
        prog="fastrapi-compat",
        description="Serve an unmodified FastAPI (or any ASGI) app with the Rust engine.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="serve MODULE:APP",
        description="Serve MODULE:APP until interrupted (flags as in uvicorn).",
    )
    run.add_argument("app", metavar="MODULE:APP", help="import target, e.g. main:app")
    run.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    run.add_argument("--port", type=_port, default=8000, help="bind port (default: %(default)s)")
    run.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default="info",
        help="log level (default: %(default)s)",
    )
    run.add_argument(
        "--root-path",
        default="",
        help="ASGI root_path, for apps served under a path prefix by a proxy",
    )
    run.add_argument(
        "--lifespan",
        choices=LIFESPAN_MODES,
        default="auto",
        help="lifespan events: auto, on or off (default: %(default)s)",
    )
    run.add_argument(
        "--tier",
        choices=("auto", "asgi"),
        default=os.environ.get("FASTRAPI_TIER", "auto"),
        help="auto: native routes natively, the rest through ASGI; asgi: everything through the "
        "app's ASGI stack (default: %(default)s, or $FASTRAPI_TIER)",
    )
    run.add_argument(
        "--app-dir",
        default=".",
        help="directory put first on sys.path to import the app (default: current directory)",
    )
    run.add_argument(
        "--factory",
        action="store_true",
        help="treat MODULE:APP as a function with no arguments that returns the app",
    )
    run.add_argument(
        "--backlog",
        type=_positive_int,
        default=2048,
        metavar="N",
        help="connections the kernel queues before they are accepted (default: %(default)s)",
    )
    run.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        default=None,
        metavar="N",
        help="answer 503 once N connections are open or N requests in flight (default: none)",
    )
    run.add_argument(
        "--limit-max-requests",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop gracefully after N requests; with --workers the worker is replaced (default: none)",
    )
    run.add_argument(
        "--limit-max-requests-jitter",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="add a random 0..N to --limit-max-requests, so workers do not stop together (default: 0)",
    )
    run.add_argument(
        "--limit-request-headers",
        type=_head_limit,
        default=None,
        metavar="BYTES",
        help="answer 431 to a request head larger than this, at least 8192 (default: about 400 KB; "
        "uvicorn has no limit)",
    )
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
        "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    run.add_argument(
        "--timeout-keep-alive",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="close a connection that sends no new request within this (default: %(default)s)",
    )
    run.add_argument(
        "--timeout-graceful-shutdown",
        type=_non_negative_float,
        default=30.0,
        metavar="SECONDS",
        help="on shutdown, how long requests in flight and background tasks get before they are "
        "cancelled (default: %(default)s)",
    )
    run.add_argument(
        "--ws-max-size",
        type=_positive_int,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="largest websocket message accepted; larger ones are closed 1009 (default: %(default)s)",
    )
    run.add_argument(
        "--ws-max-queue",
        type=_positive_int,
        default=32,
        metavar="N",
        help="websocket messages read ahead of the app; reading stops beyond (default: %(default)s)",
    )
    run.add_argument(
        "--ws-ping-interval",
        type=_non_negative_float,
        default=20.0,
        metavar="SECONDS",
        help="keepalive ping interval, 0 for none (default: %(default)s)",
    )
    run.add_argument(
        "--ws-ping-timeout",
        type=_non_negative_float,
        default=20.0,
        metavar="SECONDS",
        help="close 1011 when a ping is not answered within this, 0 for never (default: %(default)s)",
    )
    run.add_argument(
        "--ws-per-message-deflate",
        type=_boolean,
        default=True,
        metavar="BOOLEAN",
        help="offer permessage-deflate compression to websocket clients (default: true)",
    )
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes sharing the port (SO_REUSEPORT; default: %(default)s)",
    )
    explain = commands.add_parser(
        "explain",
        help="show how each route of MODULE:APP is served",
        description="Per route: path, methods, tier (native/asgi) and the reason for the ASGI "
        "tier; per middleware: whether it runs natively.",
    )
    explain.add_argument("app", metavar="MODULE:APP", help="import target, e.g. main:app")
    explain.add_argument("--json", action="store_true", help="print JSON instead of a table")
    explain.add_argument("--app-dir", default=".", help="directory put first on sys.path")
    explain.add_argument("--factory", action="store_true", help="MODULE:APP is an app factory")

    check = commands.add_parser(
        "check",
        help="fuzz MODULE:APP's OpenAPI schema against stock FastAPI",
        description="Send requests generated from the app's OpenAPI schema (schemathesis) to "
        "stock FastAPI in process and to the engine over HTTP; report every difference in "
        "status, headers or body. Exit 0 when there is none, 1 otherwise.",
    )
    check.add_argument("app", metavar="MODULE:APP", help="import target, e.g. main:app")
    check.add_argument(
        "--max-examples",
        type=_positive_int,
        default=20,
        metavar="N",
        help="at most N generated requests per operation (default: %(default)s)",
    )
    check.add_argument(
        "--seed",
        type=_seed,
        default=None,
        help="generation seed (default: a random one, printed)",
    )
    check.add_argument(
        "--mode",
        choices=("positive", "negative", "all"),
        default="all",
        help="valid requests, invalid ones or both halves of N (default: %(default)s)",
    )
    check.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="per request and side (default: %(default)s)",
    )
    check.add_argument(
        "--mask",
        action="append",
        default=[],
        metavar="REGEX",
        help="replace matches in header values and bodies before comparing (values the app "
        "derives from the clock or randomness); repeatable",
    )
    check.add_argument(
        "--ignore-header",
        action="append",
        default=[],
        metavar="NAME",
        help="leave this response header out of the comparison (e.g. a timing the app adds); repeatable",
    )
    check.add_argument(
        "--tier",
        choices=("auto", "asgi"),
        default=os.environ.get("FASTRAPI_TIER", "auto"),
        help="the engine's tier, as for run (default: %(default)s)",
    )
    check.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default="critical",
        help="log level of the engine and of the app's own loggers (default: %(default)s: "
        "app exceptions are compared, not printed)",
    )
    check.add_argument("--app-dir", default=".", help="directory put first on sys.path")
    check.add_argument("--factory", action="store_true", help="MODULE:APP is an app factory")
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: must be 0..65535")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid number {value}: must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid number {text}: must be more than 0")
    return value


def _head_limit(text: str) -> int:
    value = _positive_int(text)
    if value < 8192:
        raise argparse.ArgumentTypeError(f"invalid size {text}: must be at least 8192 bytes")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid integer {text}: must be 0 or more")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"invalid number {text}: must be 0 or more")
    return value


#: The words uvicorn's (click's) BOOLEAN flags take, in either case.
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise argparse.ArgumentTypeError(f"{text!r} is not a valid boolean (true or false)")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: not a whole number") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"invalid seed {value}: must be 0..2**64-1")
    return value


def import_from_string(target: str) -> Any:
    """Import ``module:attr.sub`` the way uvicorn does; raise :class:`AppLoadError` if not."""
    module_name, _, attrs = target.partition(":")
    if not module_name or not attrs:
        raise AppLoadError(f"import target {target!r} must be in the form 'module:attribute'.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"could not import module {module_name!r}.") from exc
        raise AppLoadError(f"importing module {module_name!r} failed: {_describe(exc)}") from exc
    except Exception as exc:
        raise AppLoadError(f"importing module {module_name!r} failed: {_describe(exc)}") from exc

    instance: Any = module
    for attr in attrs.split("."):
        try:
            instance = getattr(instance, attr)
        except AttributeError:
            raise AppLoadError(f"attribute {attrs!r} not found in module {module_name!r}.") from None
    return instance


def load_app(target: str, factory: bool) -> Any:
    """Import ``target`` and return an ASGI 3 callable (calling it first if a factory)."""
    app = import_from_string(target)
    if factory:
        if not callable(app):
            raise AppLoadError(f"{target!r} is not callable, so --factory cannot call it.")
        app = _call_factory(target, app)
    elif _is_factory(app):
        # uvicorn calls a factory given without --factory, with a warning; so do we.
        logging.getLogger("fastrapi_compat").warning(
            "ASGI app factory detected. Using it, but please consider setting the --factory flag."
        )
        app = _call_factory(target, app)
    if not _is_asgi3(app):
        kind = type(app).__name__
        raise AppLoadError(f"{target!r} is not an ASGI application (got a {kind} object).")
    return app


def _call_factory(target: str, factory: Any) -> Any:
    try:
        return factory()
    except Exception as exc:
        raise AppLoadError(f"app factory {target!r} failed: {_describe(exc)}") from exc


def _signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def _is_factory(obj: Any) -> bool:
    """True for a plain function that takes no arguments (so cannot be an ASGI app)."""
    if not inspect.isfunction(obj):
        return False
    signature = _signature(obj)
    return signature is not None and not signature.parameters


def _is_asgi3(obj: Any) -> bool:
    """Callable as ``app(scope, receive, send)`` (the signature check is skipped if unknown)."""
    if not callable(obj) or inspect.isclass(obj):
        return False
    signature = _signature(obj)
    if signature is None:
        return True
    try:
        signature.bind(object(), object(), object())
    except TypeError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame, all on one line."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        text += f" ({exc.filename}:{exc.lineno})"
    elif frames:
        last = frames[-1]
        text += f" ({last.filename}:{last.lineno})"
    return " ".join(text.split())


def version_text() -> str:
    from fastapi import __version__ as fastapi_version

    from fastrapi_compat import __version__

    return (
        f"fastrapi-compat {__version__} (fastapi {fastapi_version}, "
        f"{platform.python_implementation()} {platform.python_version()} on {platform.system()})"
    )


def _fail(message: str) -> int:
    print(f"Error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def _load_target(args: argparse.Namespace, *, verbose: bool = False) -> Any:
    """The app named on the command line (``--app-dir`` first on ``sys.path``); raises
    :class:`AppLoadError` with one line if it cannot be had."""
    app_dir = os.path.abspath(args.app_dir)
    if not os.path.isdir(app_dir):
        raise AppLoadError(f"--app-dir {args.app_dir!r} is not a directory.")
    sys.path.insert(0, app_dir)
    try:
        return load_app(args.app, args.factory)
    except AppLoadError as exc:
        if verbose and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        raise


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        app = _load_target(args)
    except AppLoadError as exc:
        return _fail(str(exc))

    from fastrapi_compat.plan.compiler import compile_app

    compiled = compile_app(app)
    if args.json:
        print(json.dumps(compiled.as_json(), indent=2))
        return 0
    rows = [("PATH", "METHODS", "TIER", "REASON")]
    rows += [(r.path, ",".join(r.methods or ["*"]), r.tier, r.reason) for r in compiled.routes]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    print()
    if compiled.middleware:
        for m in compiled.middleware:
            where = "native (run by the engine in Rust)" if m.native else f"python ({m.reason})"
            print(f"middleware {m.name}: {where}")
    else:
        print("middleware: none besides FastAPI's own")
    native = sum(r.tier == "native" for r in compiled.routes)
    print(f"{native} of {len(compiled.routes)} routes native")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    for pattern in args.mask:
        try:
            re.compile(pattern)
        except re.error as exc:
            return _fail(f"invalid --mask {pattern!r}: {exc}.")
    if importlib.util.find_spec("schemathesis") is None:
        return _fail("check needs schemathesis (Python >= 3.11): pip install 'fastrapi-compat[check]'.")
    from fastrapi_compat.tools.check import (
        CheckError,
        Options,
        load_two_instances,
        run_check,
        summary,
    )

    configure_logging(args.log_level)
    # The app's own loggers too (a warning per malformed generated request is noise here).
    logging.getLogger().setLevel(logging.getLogger("fastrapi_compat").level)
    try:
        pair = load_two_instances(lambda: _load_target(args), args.app_dir)
    except AppLoadError as exc:
        return _fail(str(exc))
    if pair.shared_reason:
        print(
            f"note: both sides share one app object ({pair.shared_reason}): state that one "
            "side's requests change is seen by the other",
            file=sys.stderr,
        )
    options = Options(
        max_examples=args.max_examples,
        seed=args.seed,
        mode=args.mode,
        timeout=args.timeout,
        tier=args.tier,
        masks=tuple(args.mask),
        ignored_headers=frozenset(name.lower() for name in args.ignore_header),
    )
    try:
        report = run_check(pair, options)
    except CheckError as exc:
        return _fail(str(exc))
    print(summary(report))
    return 1 if report.differences else 0


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The command line of one worker of ``run --workers N`` (the port is added per run)."""
    argv = [sys.executable, "-m", "fastrapi_compat", "run", args.app, "--host", args.host,
            "--log-level", args.log_level, "--root-path", args.root_path,
            "--lifespan", args.lifespan, "--tier", args.tier, "--app-dir", args.app_dir,
            "--proxy-headers" if args.proxy_headers else "--no-proxy-headers",
            "--access-log" if args.access_log else "--no-access-log",
            "--backlog", str(args.backlog),
            *(["--limit-concurrency", str(args.limit_concurrency)] if args.limit_concurrency else []),
            *(["--limit-max-requests", str(args.limit_max_requests)] if args.limit_max_requests else []),
            "--limit-max-requests-jitter", str(args.limit_max_requests_jitter),
            *(["--limit-request-headers", str(args.limit_request_headers)] if args.limit_request_headers else []),
            *(["--forwarded-allow-ips", args.forwarded_allow_ips] if args.forwarded_allow_ips is not None else []),
            "--timeout-keep-alive", repr(args.timeout_keep_alive),
            "--timeout-graceful-shutdown", repr(args.timeout_graceful_shutdown),
            "--ws-max-size", str(args.ws_max_size), "--ws-max-queue", str(args.ws_max_queue),
            "--ws-ping-interval", repr(args.ws_ping_interval),
            "--ws-ping-timeout", repr(args.ws_ping_timeout),
            "--ws-per-message-deflate", "true" if args.ws_per_message_deflate else "false"]  # fmt: skip
    return [*argv, "--factory"] if args.factory else argv


def cmd_run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, access_log=args.access_log)
    if args.workers > 1:
        from fastrapi_compat.serve.workers import Supervisor, WorkerStartupFailed

        try:
            return Supervisor(
                _worker_argv(args), args.workers, args.host, args.port, graceful_timeout=args.timeout_graceful_shutdown
            ).run()
        except WorkerStartupFailed as exc:
            return 1 if exc.code == 1 else _fail(str(exc))  # 1: the worker said why
        except StartupError as exc:
            return _fail(str(exc))
    try:
        app = _load_target(args, verbose=args.log_level in ("debug", "trace"))
    except AppLoadError as exc:
        return _fail(str(exc))

    from fastrapi_compat.serve.server import run

    try:
        run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            root_path=args.root_path,
            lifespan=args.lifespan,
            tier=args.tier,
            graceful_timeout=args.timeout_graceful_shutdown,
            timeout_keep_alive=args.timeout_keep_alive,
            backlog=args.backlog,
            limit_concurrency=args.limit_concurrency,
            limit_max_requests=args.limit_max_requests,
            limit_max_requests_jitter=args.limit_max_requests_jitter,
            limit_request_headers=args.limit_request_headers,
            access_log=args.access_log,
            proxy_headers=args.proxy_headers,
            forwarded_allow_ips=args.forwarded_allow_ips,
            ws_max_size=args.ws_max_size,
            ws_max_queue=args.ws_max_queue,
            ws_ping_interval=args.ws_ping_interval,
            ws_ping_timeout=args.ws_ping_timeout,
            ws_per_message_deflate=args.ws_per_message_deflate,
        )
    except StartupError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}.")
    except KeyboardInterrupt:
        pass  # an interrupt is the normal way to stop the server
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastrapi-compat`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail(str(exc))
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    if args.version:
        print(version_text())
        return 0
    if args.command == "run":
        return cmd_run(args)
    if args.command == "explain":
        return cmd_explain(args)
    if args.command == "check":
        return cmd_check(args)
    return _fail("missing command (see 'fastrapi-compat --help').")


if __name__ == "__main__":
    sys.exit(main())
