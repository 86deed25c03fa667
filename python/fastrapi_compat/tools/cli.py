"""The ``fastrapi-compat`` command line: ``run``, ``explain``, ``check`` and ``bench`` ``MODULE:APP``.

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
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from fastrapi_compat.errors import StartupError
from fastrapi_compat.serve.logs import LOGGING_CONFIG, SERVER_LOGGER, configure_logging
from fastrapi_compat.tools.run_flags import (
    LOG_LEVELS,
    UsageError,
    add_run_arguments,
    positive_float,
    positive_int,
    version_text,
)


class AppLoadError(Exception):
    """The ``MODULE:APP`` target cannot be turned into an ASGI app; ``str()`` is one line."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit 1 (not a usage dump, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand: ``run``, ``explain``, ``check`` and ``bench``."""
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
    add_run_arguments(run)
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
        type=positive_int,
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
        type=positive_float,
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
    _add_bench_parser(commands)
    return parser


def _add_bench_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure MODULE:APP served by uvicorn and by the engine",
        description="Serve MODULE:APP with stock uvicorn and with the engine on 127.0.0.1, send each "
        "operation valid requests generated from its OpenAPI schema (or --requests FILE) in "
        "interleaved rounds, and print requests/s, their ratio and p99 latency per operation, the "
        "answers that were not 2xx, and why operations are not native; plot them to a PNG.",
    )
    bench.add_argument("app", metavar="MODULE:APP", help="import target, e.g. main:app")
    bench.add_argument(
        "--duration",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="measuring time in all, shared by rounds, operations and servers (default: %(default)s; "
        "wrk measures whole seconds, so it may take longer)",
    )
    bench.add_argument("--rounds", type=positive_int, default=2, metavar="N", help="default: %(default)s")
    bench.add_argument(
        "--connections",
        type=positive_int,
        default=16,
        metavar="N",
        help="keep-alive connections (default: %(default)s)",
    )
    bench.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed, else a Python client (default: %(default)s)",
    )
    bench.add_argument(
        "--requests",
        metavar="FILE",
        default=None,
        help='requests to send instead of generated ones: JSON lines {"method", "path", "headers", "body", "operation"}',
    )
    bench.add_argument(
        "--max-examples",
        type=positive_int,
        default=10,
        metavar="N",
        help="generated requests per operation (default: %(default)s)",
    )
    bench.add_argument("--seed", type=_seed, default=0, help="generation seed (default: %(default)s)")
    bench.add_argument("--tier", choices=("auto", "asgi"), default="auto", help="the engine's tier (default: auto)")
    bench.add_argument("--plot", default="bench.png", metavar="PATH", help="PNG to write (default: %(default)s)")
    bench.add_argument("--no-plot", action="store_true", help="write no PNG (matplotlib not needed)")
    bench.add_argument("--no-pin", action="store_true", help="do not give the servers and the load generator own cores")
    bench.add_argument("--app-dir", default=".", help="directory put first on sys.path")
    bench.add_argument("--factory", action="store_true", help="MODULE:APP is an app factory")


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
        logging.getLogger(SERVER_LOGGER).warning(
            "ASGI app factory detected. Using it, but please consider setting the --factory flag explicitly."
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

    from fastrapi_compat.execute.under import fit
    from fastrapi_compat.plan.compiler import compile_app

    if getattr(app, "middleware_stack", False) is None and callable(getattr(app, "build_middleware_stack", None)):
        # built as the server's lifespan (or first request) builds it, so that what the engine
        # makes of the stack is seen here too
        try:
            app.middleware_stack = app.build_middleware_stack()
        except Exception:  # noqa: BLE001 - the app's own error, shown when it serves a request
            pass
    compiled = compile_app(app, fit)
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
            where = f"native ({m.reason or 'run by the engine in Rust'})" if m.native else f"python ({m.reason})"
            print(f"middleware {m.name}: {where}")
    else:
        print("middleware: none besides FastAPI's own")
    native = sum(r.tier == "native" for r in compiled.routes)
    print(f"{native} of {len(compiled.routes)} routes native")
    misses = "native" if compiled.misses is not None else f"asgi ({compiled.misses_reason})"
    print(f"requests no route takes (404, 405, redirect_slashes): {misses}")
    from fastrapi_compat.plan import internals

    flat = "on" if internals.FLAT is not None else f"off ({internals.FLAT_UNSUPPORTED})"
    print(f"flat plans (FastAPI's handler replicated for native routes): {flat}")
    return 0


# How to get the `check` extra while fastrapi-compat is on no package index: from a clone.
CHECK_INSTALL = "pip install '.[check]' in a clone of fastrapi-compat (or pip install 'WHEEL[check]' with its wheel)"


def missing_for_check() -> str:
    """Why ``check`` cannot run here ("" when it can): its extra's packages are missing."""
    if sys.version_info < (3, 11):
        return (
            f"check needs Python >= 3.11 (schemathesis 4); this is Python {platform.python_version()}. "
            "run, explain and pytest --fastrapi-engine work on it."
        )
    missing = [name for name in ("schemathesis", "httpx") if importlib.util.find_spec(name) is None]
    if missing:
        return f"check needs {' and '.join(missing)}, from the check extra: {CHECK_INSTALL}."
    return ""


def cmd_check(args: argparse.Namespace) -> int:
    for pattern in args.mask:
        try:
            re.compile(pattern)
        except re.error as exc:
            return _fail(f"invalid --mask {pattern!r}: {exc}.")
    missing = missing_for_check()
    if missing:
        return _fail(missing)
    from fastrapi_compat.tools.check import (
        CheckError,
        Options,
        load_two_instances,
        run_check,
        summary,
    )

    configure_logging(args.log_level)
    # The app's own loggers too (a warning per malformed generated request is noise here).
    logging.getLogger().setLevel(logging.getLogger(SERVER_LOGGER).level)
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


def cmd_bench(args: argparse.Namespace) -> int:
    """``bench``: its flags and what it needs checked first, then the app, then the run
    (:mod:`fastrapi_compat.tools.bench_cmd`)."""
    from fastrapi_compat.tools import bench_cmd

    problem = bench_cmd.check_args(args, missing_for_check() if args.requests is None else "")
    if problem:
        return _fail(problem)
    configure_logging("critical")  # the app's import-time logs; the servers log to their own files
    try:
        app = _load_target(args)
    except AppLoadError as exc:
        return _fail(str(exc))
    return bench_cmd.run(args, app)


def cmd_run(args: argparse.Namespace) -> int:
    """``run``, in uvicorn's order: logging, the environment file, the options, then the app
    (imported here, or by each worker)."""
    from fastrapi_compat.serve.environment import load_env_file, loop_factory
    from fastrapi_compat.serve.server import serve_forever
    from fastrapi_compat.tools.run_flags import PASSWORD_ENV, config_from, worker_argv

    try:
        log_config = LOGGING_CONFIG if args.log_config is None else args.log_config
        configure_logging(args.log_level, args.access_log, args.use_colors, log_config)
        if args.env_file is not None:
            load_env_file(args.env_file)
        workers = args.workers if args.workers is not None else _web_concurrency()
        config = config_from(args)
        loop_factory(config.loop)  # a bad --loop fails now, not in each worker
    except (StartupError, UsageError) as exc:
        return _fail(str(exc))
    if workers > 1 or args.reload:
        from fastrapi_compat.serve.reload import ReloadOptions
        from fastrapi_compat.serve.workers import Supervisor, WorkerStartupFailed

        if config.ssl_keyfile_password is not None:  # for the workers, not on their command line
            os.environ[PASSWORD_ENV] = config.ssl_keyfile_password
        reload = None
        if args.reload:
            if workers > 1:
                logging.getLogger(SERVER_LOGGER).warning('"workers" flag is ignored when reloading is enabled.')
            workers = 1
            try:
                reload = ReloadOptions.from_flags(
                    args.reload_dir, args.reload_include, args.reload_exclude, args.reload_delay
                )
            except StartupError as exc:
                return _fail(str(exc))
        supervisor = Supervisor(
            worker_argv(args),
            workers,
            config.host,
            config.port,
            graceful_timeout=config.graceful_timeout,
            uds=config.uds,
            fd=config.fd,
            backlog=config.backlog,
            metrics_port=config.metrics_port,
            tls=config.ssl_certfile is not None,
            reload=reload,
        )
        try:
            return supervisor.run()
        except WorkerStartupFailed as exc:
            return 1 if exc.code == 1 else _fail(str(exc))  # 1: the worker said why
        except StartupError as exc:
            return _fail(str(exc))
    try:
        app = _load_target(args, verbose=args.log_level in ("debug", "trace"))
    except AppLoadError as exc:
        return _fail(str(exc))
    try:
        serve_forever(app, config)
    except StartupError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}.")
    except KeyboardInterrupt:
        pass  # an interrupt is the normal way to stop the server
    return 0


def _web_concurrency() -> int:
    """uvicorn's default for ``--workers``: ``$WEB_CONCURRENCY``, else 1."""
    text = os.environ.get("WEB_CONCURRENCY")
    if text is None:
        return 1
    try:
        count = int(text)
    except ValueError:
        raise UsageError(f"invalid $WEB_CONCURRENCY {text!r}: not a number.") from None
    if count < 1:
        raise UsageError(f"invalid $WEB_CONCURRENCY {count}: must be at least 1.")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastrapi-compat`` console script; returns the exit code.

    When the reader of standard output goes away (``explain --json | head -1``), the command
    ends as other command-line tools do: silently, killed by ``SIGPIPE`` (status 141 in a shell)."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:
        return _broken_pipe()
    return code


def _broken_pipe() -> int:
    """Standard output's reader is gone: nothing more is written there, and the process dies of
    ``SIGPIPE`` as a tool that does not ignore it would (Python ignores it at startup)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush then goes nowhere
    os.close(devnull)
    sigpipe: int | None = getattr(signal, "SIGPIPE", None)
    if sigpipe is None:  # pragma: no cover - not POSIX
        return 1
    signal.signal(sigpipe, signal.SIG_DFL)
    os.kill(os.getpid(), sigpipe)
    return 128 + sigpipe  # pragma: no cover - the signal ends the process first


def _main(argv: Sequence[str] | None) -> int:
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
    if args.command == "bench":
        return cmd_bench(args)
    return _fail("missing command (see 'fastrapi-compat --help').")


if __name__ == "__main__":
    sys.exit(main())
