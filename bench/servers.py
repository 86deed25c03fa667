"""The servers under test: how each one is started (one process, or N workers for the
workers run), and what the table says about it; and the apps they serve in turn (default,
10,000 routes, CORS + GZip, production, production with instruments)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from bench.apps import fastapi_app

ASGI_MODULE = "bench.apps.fastapi_app"
FASTRAPI_MODULE = "bench.apps.fastrapi_app"
NATIVE_TIER_ENV = "BENCH_NATIVE_TIER"


@dataclass(frozen=True)
class AppVariant:
    """One app every server serves in turn: ``attr`` in :mod:`bench.apps.fastapi_app`, with
    ``extra_routes`` routes before the measured ones, with or without CORS + GZip middleware,
    or one of the production runs' apps (``variant``)."""

    attr: str
    label: str
    extra_routes: int = fastapi_app.DEFAULT_EXTRA_ROUTES
    middleware: bool = False
    # the production runs' apps ("production", "instrumented"): their own requests and rows
    variant: str = ""

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_APP


DEFAULT_APP = AppVariant("app", "default app")
SCALED_APP = AppVariant(
    fastapi_app.SCALED_APP,
    f"{fastapi_app.SCALED_EXTRA_ROUTES:,}-route app",
    extra_routes=fastapi_app.SCALED_EXTRA_ROUTES,
)
MIDDLEWARE_APP = AppVariant(fastapi_app.MIDDLEWARE_APP, "CORS + GZip app", middleware=True)
PRODUCTION_APP = AppVariant(fastapi_app.PRODUCTION_APP, "production app", variant="production")
INSTRUMENTED_APP = AppVariant(
    fastapi_app.INSTRUMENTED_APP, "production app + Sentry, OpenTelemetry, Prometheus", variant="instrumented"
)

# (host, port, app, workers) -> argv; workers None: the main runs' one-process command
CommandBuilder = Callable[[str, int, AppVariant, int | None], list[str]]


@dataclass(frozen=True)
class ReadyLine:
    """What a server logs once all its workers are up: ``text``, ``count`` times."""

    text: str
    count: int = 1


def asgi_target(app: AppVariant) -> str:
    """``module:attr`` of the FastAPI app."""
    return f"{ASGI_MODULE}:{app.attr}"


@dataclass(frozen=True)
class ServerSpec:
    """One server configuration; ``unavailable`` (a reason) keeps its row in the table but
    does not run it."""

    key: str
    label: str
    command: CommandBuilder
    env: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    unavailable: str | None = None
    no_middleware: str | None = None  # why it does not serve the middleware and production apps
    # the workers run: this many worker processes (None: the main runs' command)
    workers: int | None = None
    # workers -> what the server logs once they are all up; None: no workers run
    workers_ready: Callable[[int], ReadyLine] | None = None

    def argv(self, host: str, port: int, app: AppVariant) -> list[str]:
        return self.command(host, port, app, self.workers)

    def with_workers(self, workers: int) -> ServerSpec:
        """This slot in the workers run, with ``workers`` worker processes."""
        label = f"{self.label}, {workers} worker{'s' if workers > 1 else ''}"
        return replace(self, workers=workers, label=label)

    @property
    def slug(self) -> str:
        """``key``, and the worker count in the workers run (for file names)."""
        return self.key if self.workers is None else f"{self.key}-{self.workers}w"

    @property
    def ready_line(self) -> ReadyLine | None:
        """The log line to wait for, after the first answer, in the workers run."""
        if self.workers is None or self.workers_ready is None:
            return None
        return self.workers_ready(self.workers)

    def describe_command(self) -> str:
        """The command as the table shows it (placeholders for host and port)."""
        argv = self.command("HOST", 0, DEFAULT_APP, self.workers)
        argv = ["python" if a == sys.executable else a for a in argv]
        text = " ".join(argv).replace("--port 0", "--port PORT")
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{env} {text}".strip()


def _log_level(workers: int | None) -> str:
    """``info`` in the workers run: the harness waits for the line that says every worker is
    up (no server here logs per request at ``info``: no access log); else ``warning``."""
    return "warning" if workers is None else "info"


def _uvicorn(host: str, port: int, app: AppVariant, workers: int | None) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", asgi_target(app),
        "--host", host, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--workers", str(workers or 1), "--no-access-log", "--log-level", _log_level(workers),
    ]  # fmt: skip


def _granian(host: str, port: int, app: AppVariant, workers: int | None) -> list[str]:
    return [
        sys.executable, "-m", "granian", "--interface", "asgi",
        "--host", host, "--port", str(port),
        "--workers", str(workers or 1), "--log-level", _log_level(workers),
        asgi_target(app),
    ]  # fmt: skip


def _fastrapi_compat(host: str, port: int, app: AppVariant, workers: int | None) -> list[str]:
    # `python -m fastrapi_compat` is the `fastrapi-compat` console script; run through the
    # interpreter so that the engine benchmarked is the one `bench` imports (see runner).
    argv = [
        sys.executable, "-m", "fastrapi_compat", "run", asgi_target(app),
        "--host", host, "--port", str(port), "--no-access-log", "--log-level", _log_level(workers),
    ]  # fmt: skip
    return argv if workers is None else [*argv, "--workers", str(workers)]


def _fastrapi(host: str, port: int, app: AppVariant, workers: int | None) -> list[str]:
    if app.middleware or app.variant or workers is not None:
        raise ValueError(f"{FASTRAPI_MODULE} has no middleware or production app and no workers")
    return [
        sys.executable, "-m", FASTRAPI_MODULE,
        "--host", host, "--port", str(port), "--extra-routes", str(app.extra_routes),
    ]  # fmt: skip


UVICORN = "uvicorn"
GRANIAN = "granian"
OURS_NATIVE = "fastrapi-compat-native"
OURS_ASGI = "fastrapi-compat-asgi"
FASTRAPI = "fastrapi"


def _uvicorn_ready(workers: int) -> ReadyLine:
    # every worker (its own process with --workers N) logs it after its lifespan startup
    return ReadyLine("Application startup complete.", workers)


def _ours_ready(workers: int) -> ReadyLine:
    # with N > 1 the supervisor logs it once every worker has said it is serving
    if workers == 1:
        return ReadyLine("fastrapi-compat running on http://")
    return ReadyLine(f" with {workers} workers ")


def all_servers(native_tier: bool | None = None) -> list[ServerSpec]:
    """Every server slot, in table order. The native-tier slot runs unless turned off
    (``native_tier=False``, ``--no-native-tier`` or ``BENCH_NATIVE_TIER=0``)."""
    if native_tier is None:
        native_tier = os.environ.get(NATIVE_TIER_ENV, "1") not in ("", "0")
    return [
        ServerSpec(
            UVICORN,
            "FastAPI + uvicorn",
            _uvicorn,
            note="uvloop + httptools, 1 worker, no access log",
            workers_ready=_uvicorn_ready,
        ),
        ServerSpec(GRANIAN, "FastAPI + granian", _granian, note="ASGI interface, 1 worker"),
        ServerSpec(
            OURS_NATIVE,
            "fastrapi-compat (native tier)",
            _fastrapi_compat,
            note="engine defaults (native tier where the compiler understands the route)",
            workers_ready=_ours_ready,
            unavailable=None if native_tier else f"turned off (--no-native-tier or {NATIVE_TIER_ENV}=0)",
        ),
        ServerSpec(
            OURS_ASGI,
            "fastrapi-compat (asgi tier)",
            _fastrapi_compat,
            env={"FASTRAPI_TIER": "asgi"},
            note="FASTRAPI_TIER=asgi: every route through the engine's ASGI tier",
        ),
        ServerSpec(
            FASTRAPI,
            "FastrAPI 0.2.11",
            _fastrapi,
            note="its own API (bench/apps/fastrapi_app.py); all endpoints `def`: "
            "its `async def` endpoints answer 500 in 0.2.11",
            no_middleware="its own API has no equivalent of Starlette's middleware",
        ),
    ]


def server_by_key(servers: list[ServerSpec], key: str) -> ServerSpec:
    for server in servers:
        if server.key == key:
            return server
    known = ", ".join(s.key for s in servers)
    raise ValueError(f"unknown server {key!r} (known: {known})")
