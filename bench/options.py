"""The harness's options (``python -m bench --help``) as one dataclass."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.endpoints import ENDPOINTS, endpoint_by_name
from bench.environment import ROOT
from bench.servers import NATIVE_TIER_ENV, all_servers

DEFAULT_OUTPUT = ROOT / "bench" / "results"


@dataclass
class BenchOptions:
    servers: list[str] | None = None  # server keys; None: every available slot
    endpoints: list[str] = field(default_factory=lambda: [e.name for e in ENDPOINTS])
    connections: list[int] = field(default_factory=lambda: [64])  # every endpoint
    plain_connections: list[int] = field(default_factory=lambda: [20])  # /plain only, extra
    warmup_s: float = 2.0
    duration_s: float = 10.0
    scaling: bool = True
    middleware: bool = True  # the CORS + GZip app's run
    production: bool = True  # the production runs: the production-style app ...
    instruments: bool = True  # ... and it with Sentry, OpenTelemetry and Prometheus
    app_alone: bool = True  # the app with no server, after each round of the default app's runs
    ceiling: bool = True  # the bare hyper server on /plain (bench/hyper_ceiling), after the default app
    workers: bool = True  # the workers run: 1 vs 2 workers, uvicorn and the native tier
    native_tier: bool | None = None
    output_dir: Path = DEFAULT_OUTPUT
    plot: bool = True
    install: bool = True
    host: str = "127.0.0.1"
    server_core: int | None = 1
    wrk_core: int | None = 0
    ready_timeout_s: float = 120.0
    py_spy: bool = False
    verify_only: bool = False
    wait_quiet_s: float = 0.0  # before each run, wait up to this long for idle cores
    retry_disturbed: int = 0  # measure again when other processes took >= 10% of a core
    repeat: int = 1  # rounds over every case; the table shows each one's median run
    print_markdown: bool = True

    def cases(self) -> list[tuple[str, int]]:
        """``(endpoint name, connections)`` in run order."""
        cases = [(name, c) for name in self.endpoints for c in self.connections]
        if "/plain" in self.endpoints:
            cases += [("/plain", c) for c in self.plain_connections if c not in self.connections]
        return cases


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    keys = ", ".join(s.key for s in all_servers(native_tier=True))
    names = ", ".join(e.name for e in ENDPOINTS)
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark fastrapi-compat against FastAPI+uvicorn, FastAPI+granian and "
        "FastrAPI (wrk, server and load generator pinned to separate cores).",
    )
    p.add_argument("--servers", type=_names, help=f"comma-separated subset of: {keys}")
    p.add_argument("--endpoints", type=_names, help=f"comma-separated subset of: {names}")
    p.add_argument("--connections", type=_ints, default=[64], help="for every endpoint (64)")
    p.add_argument(
        "--plain-connections",
        type=_ints,
        default=[20],
        help="extra connection counts measured on /plain only (20; '' for none)",
    )
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up per run (2)")
    p.add_argument("--duration", type=float, default=None, help="seconds measured per run (10)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 s warm-up and 3 s per run (unless --warmup/--duration say otherwise)",
    )
    p.add_argument("--no-scaling", action="store_true", help="skip the 10,000-route run")
    p.add_argument(
        "--no-app-alone",
        action="store_true",
        help="skip timing the app with no server (python -m bench.app_alone, after each round of the default app's runs)",
    )
    p.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the bare hyper server (bench/hyper_ceiling, built with cargo) on /plain, the ceiling",
    )
    p.add_argument(
        "--no-middleware",
        action="store_true",
        help="skip the middleware run (/plain with a preflight, and /big, those of --endpoints, on the app "
        "with Starlette's CORSMiddleware and GZipMiddleware; not FastrAPI)",
    )
    p.add_argument(
        "--no-production",
        action="store_true",
        help="skip the production runs (/plain, /items/{id}, POST /items, /deps of --endpoints on the "
        "production-style app: CORS, a pure-ASGI request id, an @app.middleware('http') timer; and on it "
        "with Sentry, OpenTelemetry and Prometheus; not FastrAPI)",
    )
    p.add_argument(
        "--no-instruments",
        action="store_true",
        help="skip the production app with Sentry, OpenTelemetry and Prometheus (keep the plain production app)",
    )
    p.add_argument(
        "--no-workers",
        action="store_true",
        help="skip the workers run (1 vs 2 worker processes, /plain and /items/{id} of "
        "--endpoints, on uvicorn and the native tier; servers on cores 1-2 and wrk on "
        "core 0 with 3+ cores, else everything shares the cores and the report says so)",
    )
    p.add_argument(
        "--no-native-tier",
        dest="native_tier",
        action="store_false",
        default=None,
        help=f"skip the native-tier slot (or set {NATIVE_TIER_ENV}=0)",
    )
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results directory")
    p.add_argument("--no-plot", action="store_true", help="skip results.png")
    p.add_argument("--no-install", action="store_true", help="never pip/apt install anything")
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the server and wrk to cores 1 and 0",
    )
    p.add_argument(
        "--py-spy",
        action="store_true",
        help="record each measured run with py-spy (results/profiles/; numbers disturbed)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="N interleaved rounds over every case; the table shows the median run "
        "(e.g. --repeat 3 --duration 5 for steadier ratios on a noisy VM)",
    )
    p.add_argument(
        "--verify-only",
        action="store_true",
        help="start each server and compare its answers; measure nothing",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to SECONDS until both pinned cores are idle (for a shared machine)",
    )
    p.add_argument(
        "--retry-disturbed",
        type=int,
        default=0,
        metavar="N",
        help="measure a run again (up to N times) when other processes used >= 10%% of "
        "the server's or wrk's core during it",
    )
    return p


def parse_options(argv: Sequence[str] | None = None) -> BenchOptions:
    args = build_parser().parse_args(argv)
    warmup, duration = (1.0, 3.0) if args.quick else (2.0, 10.0)
    options = BenchOptions(
        servers=args.servers,
        connections=args.connections,
        plain_connections=args.plain_connections,
        warmup_s=args.warmup if args.warmup is not None else warmup,
        duration_s=args.duration if args.duration is not None else duration,
        scaling=not args.no_scaling,
        middleware=not args.no_middleware,
        production=not args.no_production,
        instruments=not args.no_instruments,
        app_alone=not args.no_app_alone,
        ceiling=not args.no_ceiling,
        workers=not args.no_workers,
        native_tier=args.native_tier,
        output_dir=args.output,
        plot=not args.no_plot,
        install=not args.no_install,
        py_spy=args.py_spy,
        verify_only=args.verify_only,
        wait_quiet_s=args.wait_quiet,
        retry_disturbed=args.retry_disturbed,
        repeat=args.repeat,
    )
    if args.endpoints:
        options.endpoints = [endpoint_by_name(n).name for n in args.endpoints]
    if args.no_pin:
        options.server_core = options.wrk_core = None
    return options
