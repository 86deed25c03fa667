"""One benchmark run: install what is missing, start each server in turn, check its answers
against FastAPI+uvicorn's, load it with wrk, record memory, stop it; then the other apps (10,000
routes, CORS + GZip, the production runs), then the same with 1 and 2 worker processes (the
workers run); then write the results."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench import ceiling, install
from bench.apps.fastapi_app import (
    CORS_ORIGIN,
    DEFAULT_EXTRA_ROUTES,
    GZIP_MINIMUM_SIZE,
    SCALED_EXTRA_ROUTES,
)
from bench.endpoints import (
    MIDDLEWARE_ENDPOINTS,
    MIDDLEWARE_HEADERS,
    MIDDLEWARE_PROBES,
    PLAIN,
    PROBES,
    PRODUCTION_PROBES,
    SCALING_ENDPOINT,
    WORKERS_ENDPOINTS,
    Endpoint,
    checked_requests,
    endpoint_by_name,
    middleware_endpoints,
)
from bench.environment import (
    ROOT,
    describe_engine,
    git_revision,
    locate_engine,
    machine,
    server_env,
)
from bench.interference import (
    DISTURBED_PCT,
    CoreMonitor,
    Interference,
    wait_until_quiet,
)
from bench.options import BenchOptions
from bench.placement import (
    WORKERS,
    Placement,
    allowed_cores,
    main_placement,
    workers_meta,
    workers_placement,
)
from bench.process import ServerFailed, ServerProcess, free_port, pinned
from bench.production import ensure_instruments, production_apps, production_cases, production_meta
from bench.profile import PySpyRecording, summarize
from bench.results import BenchResults, Measurement, ServerRun
from bench.servers import (
    DEFAULT_APP,
    FASTRAPI,
    GRANIAN,
    MIDDLEWARE_APP,
    SCALED_APP,
    UVICORN,
    AppVariant,
    ServerSpec,
    all_servers,
    asgi_target,
)
from bench.verify import Answer, Verdict, collect, compare
from bench.wrk import WrkError, WrkResult, run_wrk

STARTUP_ESTIMATE_S = 3.0
SCALED_STARTUP_ESTIMATE_S = 20.0


class BenchError(RuntimeError):
    """The run cannot go on (no wrk, no reference server, no engine): one line."""


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class _Context:
    options: BenchOptions
    env: dict[str, str]
    workdir: Path
    placement: Placement  # where servers and wrk run (the workers run has its own)
    references: dict[AppVariant, dict[str, Answer]] = field(default_factory=dict)


Case = tuple[Endpoint, int]  # an endpoint at a number of connections


def _middleware_cases(options: BenchOptions) -> list[Case]:
    """The middleware run: the endpoints of ``--endpoints`` it has (``/plain``, ``/big``; the
    preflight with ``/plain``), at the first connection count, as the route-count run."""
    return [(e, options.connections[0]) for e in middleware_endpoints(options.endpoints)]


def _workers_cases(options: BenchOptions) -> list[Case]:
    """The workers run: ``/plain`` and ``/items/{id}``, those of ``--endpoints``, at the first
    connection count."""
    return [(e, options.connections[0]) for e in WORKERS_ENDPOINTS
            if e.name in options.endpoints]  # fmt: skip


def estimate_seconds(options: BenchOptions, servers: list[ServerSpec]) -> float:
    per_run = (options.warmup_s + options.duration_s) * max(1, options.repeat)
    total = len(servers) * (STARTUP_ESTIMATE_S + len(options.cases()) * per_run)
    if options.scaling:
        total += len(servers) * (SCALED_STARTUP_ESTIMATE_S + per_run)
    if options.middleware:
        serving = sum(s.no_middleware is None for s in servers)
        runs = len(_middleware_cases(options)) * per_run
        total += serving * (STARTUP_ESTIMATE_S + runs)
    if apps := production_apps(options):
        serving = sum(s.no_middleware is None for s in servers)
        total += len(apps) * serving * (STARTUP_ESTIMATE_S + len(production_cases(options)) * per_run)
    if options.workers:
        slots = 2 * sum(s.workers_ready is not None for s in servers)
        runs = len(_workers_cases(options)) * per_run
        total += slots * (WORKERS * STARTUP_ESTIMATE_S + runs)
    return total


def _install(options: BenchOptions, wanted: list[ServerSpec]) -> dict[str, str]:
    """Install what is missing; return {server key: reason it cannot run}."""
    if not options.install:
        return {}
    problems: dict[str, str] = {}
    if (reason := install.ensure_wrk()) is not None:
        raise BenchError(reason)
    if (reason := install.ensure_uvicorn()) is not None:
        raise BenchError(reason + " (FastAPI+uvicorn is the reference)")
    keys = {s.key for s in wanted}
    if GRANIAN in keys and (reason := install.ensure_granian()) is not None:
        problems[GRANIAN] = reason
    if FASTRAPI in keys and (reason := install.ensure_fastrapi()) is not None:
        problems[FASTRAPI] = f"not installed: {reason}"
    if options.plot and (reason := install.ensure_matplotlib()) is not None:
        say(f"[install] no plot: {reason}")
        options.plot = False
    if options.py_spy and (reason := install.ensure_py_spy()) is not None:
        say(f"[install] no profiles: {reason}")
        options.py_spy = False
    return problems


def _start(ctx: _Context, spec: ServerSpec, app: AppVariant) -> ServerProcess:
    options = ctx.options
    port = free_port(options.host)
    env = dict(ctx.env)
    env.update(spec.env)
    server = ServerProcess(
        spec.argv(options.host, port, app),
        host=options.host,
        port=port,
        env=env,
        cwd=ROOT,
        log_path=ctx.workdir / f"{spec.slug}-{app.attr}.log",
        cores=ctx.placement.server_cores,
    )
    try:
        server.wait_ready("/plain", options.ready_timeout_s)
        # One worker answering is not all of them: wait for the line that says so.
        if (line := spec.ready_line) is not None:
            server.wait_log(line.text, line.count, options.ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _reference(ctx: _Context, app: AppVariant) -> dict[str, Answer]:
    """FastAPI+uvicorn's answers to every request checked on ``app``. The 10,000-route app is
    checked against the default app's answers: the route count changes none of them."""
    base = app if app.variant else MIDDLEWARE_APP if app.middleware else DEFAULT_APP
    if base not in ctx.references:
        spec = next(s for s in all_servers() if s.key == UVICORN)
        with _start(ctx, spec, base) as server:
            requests = checked_requests(base.middleware, base.variant)
            ctx.references[base] = collect(server.host, server.port, requests)
    return ctx.references[base]


def _verify(ctx: _Context, server: ServerProcess, app: AppVariant, endpoints: list[Endpoint]) -> dict[str, Verdict]:
    reference = _reference(ctx, app)
    answers = collect(server.host, server.port, endpoints)
    return {name: compare(name, reference[name], answer) for name, answer in answers.items()}


def _profile_path(ctx: _Context, spec: ServerSpec, endpoint: Endpoint, m: Measurement) -> Path:
    profiles = ctx.options.output_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "_" for c in endpoint.name).strip("_")
    app = "-middleware" if m.middleware else f"-{m.variant}" if m.variant else ""
    return profiles / f"{spec.slug}-{slug}-c{m.connections}-r{m.extra_routes}{app}.txt"


def _disturbed(interference: Interference) -> bool:
    foreign = (interference.server_core_foreign_pct, interference.wrk_core_foreign_pct)
    return any(f is not None and f >= DISTURBED_PCT for f in foreign)


def _attempt(
    ctx: _Context,
    spec: ServerSpec,
    server: ServerProcess,
    endpoint: Endpoint,
    m: Measurement,
) -> tuple[WrkResult, Interference]:
    """Warm-up, then one measured wrk run (under py-spy if asked)."""
    options, placement = ctx.options, ctx.placement
    base_url = f"http://{server.host}:{server.port}"
    load = {
        "connections": m.connections,
        "cores": placement.wrk_cores,
        "threads": placement.wrk_threads,
        "script_dir": ctx.workdir,
    }
    if options.wait_quiet_s > 0 and placement.cores:
        waited = wait_until_quiet(placement.cores, options.wait_quiet_s)
        m.extra["waited_for_quiet_s"] = round(m.extra.get("waited_for_quiet_s", 0) + waited, 1)
    if options.warmup_s > 0:
        run_wrk(base_url, endpoint, seconds=options.warmup_s, **load)
    recording = None
    if options.py_spy:
        output = _profile_path(ctx, spec, endpoint, m)
        recording = PySpyRecording(server.pid, output, options.duration_s, placement.wrk_cores, native=False)
    monitor = CoreMonitor(server.pid, placement.server_cores, placement.wrk_cores)
    result = run_wrk(base_url, endpoint, seconds=options.duration_s, **load)
    interference = monitor.stop()
    if recording is not None:
        problem = recording.finish()
        if problem is None:
            recording.output.with_suffix(".summary.txt").write_text(summarize(recording.output))
            m.extra["profile"] = str(recording.output.relative_to(options.output_dir))
        else:
            say(f"    py-spy: {problem}")
    return result, interference


def _measurement(spec: ServerSpec, case: Case, app: AppVariant, check: str = "") -> Measurement:
    endpoint, connections = case
    return Measurement(spec.key, endpoint.name, connections, app.extra_routes,
                       middleware=app.middleware, workers=spec.workers, variant=app.variant,
                       check=check)  # fmt: skip


def _measure(
    ctx: _Context,
    spec: ServerSpec,
    server: ServerProcess,
    case: Case,
    app: AppVariant,
    verdict: Verdict,
) -> Measurement:
    endpoint = case[0]
    m = _measurement(spec, case, app, check=verdict.outcome)
    if not verdict.measurable:
        m.skipped = f"wrong answer: {verdict.detail}"
        return m
    if ctx.options.verify_only:
        m.skipped = "not measured (--verify-only)"
        return m
    attempts = 1 + max(0, ctx.options.retry_disturbed)
    for attempt in range(attempts):
        try:
            result, interference = _attempt(ctx, spec, server, endpoint, m)
        except WrkError as exc:
            m.skipped = f"wrk failed: {exc}"
            return m
        if server.proc.poll() is not None:
            m.skipped = f"server exited during the run:\n{server.log_tail()}"
            return m
        if not _disturbed(interference) or attempt == attempts - 1:
            break
        say(f"  {spec.label}: disturbed by other processes, measuring again")
    m.extra["attempts"] = attempt + 1
    m.requests_per_sec = result.requests_per_sec
    m.p50_ms, m.p99_ms = result.p50_ms, result.p99_ms
    m.requests = result.requests
    m.non_2xx, m.socket_errors = result.non_2xx, result.socket_errors
    m.extra.update(p75_ms=result.p75_ms, p90_ms=result.p90_ms, seconds=result.seconds)
    m.extra.update(asdict(interference))
    return m


def _describe(spec: ServerSpec, m: Measurement) -> str:
    head = f"  {spec.label:<42}"  # "fastrapi-compat (native tier), 2 workers"
    if m.skipped:
        return f"{head} SKIPPED: {m.skipped.splitlines()[0]}"
    errors = f"  non-2xx={m.non_2xx}" if m.non_2xx else ""
    errors += f"  socket-errors={m.socket_errors}" if m.socket_errors else ""
    load = ""
    if m.extra.get("server_cpu_pct") is not None:
        load = f"  server cpu {m.extra['server_cpu_pct']:.0f}%"
    foreign = [m.extra.get(k) for k in ("server_core_foreign_pct", "wrk_core_foreign_pct")]
    if any(f is not None and f >= DISTURBED_PCT for f in foreign):
        load += f"  DISTURBED: other processes used {foreign[0]:.0f}% / {foreign[1]:.0f}% of"
        load += " the server / wrk core"
    return (
        f"{head} {m.requests_per_sec:>10,.0f} req/s  p50 {m.p50_ms:6.2f} ms  "
        f"p99 {m.p99_ms:6.2f} ms  [{m.check}]{errors}{load}"
    )


@dataclass
class _Live:
    """A started server with its slot and its verified answers."""

    spec: ServerSpec
    run: ServerRun
    server: ServerProcess
    verdicts: dict[str, Verdict]
    idle_rss_kib: int


def _record_verdicts(run: ServerRun, app: AppVariant, verdicts: list[Verdict]) -> None:
    if app.is_default:
        run.verdicts = [v.to_json() for v in verdicts]
    else:
        run.verdicts += [{**v.to_json(), "app": app.label} for v in verdicts]


def _start_checked(
    ctx: _Context,
    stack: ExitStack,
    spec: ServerSpec,
    run: ServerRun,
    app: AppVariant,
    endpoints: list[Endpoint],
) -> _Live | None:
    """Start ``spec`` on ``app`` (stopped when ``stack`` closes) and compare its answers with
    uvicorn's; None (and the reason in the table) if it does not start."""
    try:
        server = stack.enter_context(_start(ctx, spec, app))
    except ServerFailed as exc:
        if app.is_default:
            run.skipped = f"server failed: {exc}"
        else:
            run.not_run[app.label] = f"server failed: {exc}"
        say(f"  {spec.label}: FAILED: {exc}")
        return None
    verdicts = _verify(ctx, server, app, endpoints)
    rss = server.rss_kib()
    _record_verdicts(run, app, list(verdicts.values()))
    identical = sum(v.outcome == "identical" for v in verdicts.values())
    say(
        f"  {spec.label}: ready in {server.ready_after:.2f} s, idle RSS {rss / 1024:.1f} MiB, "
        f"answers: {identical}/{len(verdicts)} identical to uvicorn's"
    )
    for v in verdicts.values():
        if v.outcome != "identical":
            say(f"    MISMATCH {v.endpoint}: {v.outcome}: {v.detail}")
    return _Live(spec, run, server, verdicts, rss)


@contextmanager
def _serving(
    ctx: _Context,
    slots: list[tuple[ServerSpec, ServerRun]],
    app: AppVariant,
    endpoints: list[Endpoint],
    title: str = "",
) -> Iterator[list[_Live]]:
    """Every slot started on ``app`` (those that start), its answers to ``endpoints``
    checked; all stopped on exit (and said if processes of theirs outlived them). None if
    uvicorn, the reference, fails on an app other than the default (the runs before are
    kept). ``title`` names the run (else the app)."""
    try:
        _reference(ctx, app)
    except ServerFailed as exc:
        if app.is_default:
            raise BenchError(f"FastAPI+uvicorn, the reference, failed: {exc}") from exc
        say(f"\n== {app.label}: not run, FastAPI+uvicorn (the reference) failed: {exc}")
        for _, run in slots:
            run.not_run[app.label] = f"reference failed: {exc}"
        yield []
        return
    say(f"\n== starting every server ({title or app.label}), checking answers")
    with ExitStack() as stack:
        started = [_start_checked(ctx, stack, spec, run, app, endpoints)
                   for spec, run in slots]  # fmt: skip
        live = [item for item in started if item is not None]
        yield live
    for item in live:
        if item.server.left_running:
            pids = ", ".join(map(str, item.server.left_running))
            say(f"  {item.spec.label}: processes still running after it exited on SIGINT "
                f"(killed): {pids}")  # fmt: skip


def _median_run(runs: list[Measurement]) -> Measurement:
    """One measurement from repeated runs: the run with the median requests/s (its
    latencies with it), the others' requests/s kept in ``extra["runs_rps"]``."""
    measured = sorted(
        (m for m in runs if m.requests_per_sec is not None),
        key=lambda m: m.requests_per_sec or 0.0,
    )
    if len(runs) == 1 or not measured:
        return runs[0]
    median = measured[(len(measured) - 1) // 2]
    median.extra["runs_rps"] = [m.requests_per_sec for m in runs]
    median.non_2xx = sum(m.non_2xx for m in runs)
    median.socket_errors = sum(m.socket_errors for m in runs)
    return median


def _measure_all(
    ctx: _Context,
    live: list[_Live],
    cases: list[Case],
    app: AppVariant,
    results: BenchResults,
    after_round: Callable[[], None] | None = None,
) -> None:
    """Every case on every live server, interleaved (case by case, server by server, and
    with ``--repeat`` round by round), so that a slow drift of the machine does not bias one
    server against another; ``after_round`` is called at the end of each round."""
    rounds = max(1, ctx.options.repeat)
    runs: dict[tuple[str, str, int], list[Measurement]] = {}
    for round_ in range(rounds):
        for case in cases:
            endpoint, connections = case
            of = f", round {round_ + 1}/{rounds}" if rounds > 1 else ""
            say(f"-- {endpoint.name}, {connections} connections, {app.label}{of}")
            for item in live:
                if item.server.proc.poll() is not None:
                    m = _measurement(item.spec, case, app)
                    m.skipped = f"server exited earlier:\n{item.server.log_tail()}"
                else:
                    verdict = item.verdicts[endpoint.name]
                    m = _measure(ctx, item.spec, item.server, case, app, verdict)
                key = (item.spec.slug, endpoint.name, connections)
                runs.setdefault(key, []).append(m)
                say(_describe(item.spec, m))
        if after_round is not None:
            after_round()
    results.measurements.extend(_median_run(ms) for ms in runs.values())


def _still_running(
    slots: list[tuple[ServerSpec, ServerRun]],
) -> list[tuple[ServerSpec, ServerRun]]:
    """The slots that did not fail on the default app."""
    return [(spec, run) for spec, run in slots if not run.skipped]


def _run_default_app(ctx: _Context, slots: list[tuple[ServerSpec, ServerRun]], results: BenchResults) -> None:
    endpoints = [endpoint_by_name(n) for n in ctx.options.endpoints]
    cases = [(endpoint_by_name(n), c) for n, c in ctx.options.cases()]
    alone: list[dict[str, float] | str] = []
    after_round = (lambda: alone.append(_app_alone(ctx, endpoints))) if ctx.options.app_alone else None
    with _serving(ctx, slots, DEFAULT_APP, [*endpoints, *PROBES]) as live:
        for item in live:
            item.run.startup_s = item.server.ready_after
            item.run.idle_rss_kib = item.idle_rss_kib
        _measure_all(ctx, live, cases, DEFAULT_APP, results, after_round)
        for item in live:
            item.run.loaded_rss_kib = item.server.rss_kib()
            item.run.peak_rss_kib = item.server.rss_kib("VmHWM")
            say(
                f"  {item.spec.label}: RSS after load {item.run.loaded_rss_kib / 1024:.1f} "
                f"MiB (peak {item.run.peak_rss_kib / 1024:.1f} MiB)"
            )
    if alone:
        results.meta.update(app_alone_meta(alone))


def app_alone_meta(rounds: list[dict[str, float] | str]) -> dict[str, object]:
    """``app_alone_us``: each endpoint's median over the rounds that measured it (the lower
    one with an even count, as the servers' median run and the paired ratios take it), or why
    none did; with several rounds ``app_alone_rounds``, each round's timings or failure."""
    measured = [r for r in rounds if isinstance(r, dict)]
    meta: dict[str, object] = {}
    if measured:
        names = list(measured[0])
        meta["app_alone_us"] = {n: statistics.median_low(r[n] for r in measured if n in r) for n in names}
    else:
        meta["app_alone_us"] = rounds[-1]
    if len(rounds) > 1:
        meta["app_alone_rounds"] = rounds
    return meta


def _app_alone(ctx: _Context, endpoints: list[Endpoint]) -> dict[str, float] | str:
    """The app with no server (:mod:`bench.app_alone`), on the servers' core (theirs idle),
    right after a round of their runs: microseconds per endpoint, or why it failed."""
    argv = [sys.executable, "-m", "bench.app_alone", *(e.name for e in endpoints)]
    say("  the app alone, no server (python -m bench.app_alone)")
    try:
        done = subprocess.run(
            pinned(argv, ctx.placement.server_cores), cwd=ROOT, capture_output=True, text=True,
            timeout=60 + 10 * len(endpoints),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        failed = "timed out"
    else:
        failed = None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]
    if failed is not None:
        say(f"  app alone: {failed}")
        return failed
    timings: dict[str, float] = json.loads(done.stdout)
    say("  " + ", ".join(f"{name} {us:,.0f} µs" for name, us in timings.items()))
    return timings


def _run_ceiling(ctx: _Context, results: BenchResults) -> None:
    """The bare hyper server on ``/plain`` (its answer checked against uvicorn's), at the first
    connection count, ``--repeat`` times: the ceiling the report shares every server against."""
    binary, problem = ceiling.build()
    if binary is None:
        say(f"\n== bare hyper server: not run: {problem}")
        results.meta["ceiling"] = {"not_run": problem}
        return
    spec = ceiling.spec(binary)
    results.meta["ceiling"] = {"command": spec.describe_command(), "binary": str(binary)}
    say("\n== bare hyper server (the ceiling), checking its /plain answer")
    with ExitStack() as stack:
        live = _start_checked(ctx, stack, spec, ServerRun(spec.key, spec.label, ""), DEFAULT_APP, [PLAIN])
        if live is None:
            results.meta["ceiling"] = {"not_run": "the bare hyper server did not start"}
            return
        _measure_all(ctx, [live], [(PLAIN, ctx.options.connections[0])], DEFAULT_APP, results)


def _run_scaled_app(ctx: _Context, slots: list[tuple[ServerSpec, ServerRun]], results: BenchResults) -> None:
    """``/plain`` on the app with 10,000 extra routes declared before it."""
    cases = [(SCALING_ENDPOINT, ctx.options.connections[0])]
    with _serving(ctx, _still_running(slots), SCALED_APP, [SCALING_ENDPOINT]) as live:
        for item in live:
            item.run.scaled_startup_s = item.server.ready_after
            item.run.scaled_idle_rss_kib = item.idle_rss_kib
        _measure_all(ctx, live, cases, SCALED_APP, results)


def _run_middleware_app(ctx: _Context, slots: list[tuple[ServerSpec, ServerRun]], results: BenchResults) -> None:
    """``/plain`` (CORS headers only), ``/big`` (gzipped) and a preflight on the CORS + GZip
    app, from an allowed origin, accepting gzip; servers without Starlette's middleware are
    left out."""
    cases = _middleware_cases(ctx.options)
    if not cases:
        names = ", ".join(e.name for e in MIDDLEWARE_ENDPOINTS)
        say(f"\n== {MIDDLEWARE_APP.label}: not run, none of {names} in --endpoints")
        return
    serving = []
    for spec, run in _still_running(slots):
        if spec.no_middleware is None:
            serving.append((spec, run))
        else:
            reason = run.not_run[MIDDLEWARE_APP.label] = spec.no_middleware
            say(f"{spec.label}: not run on the {MIDDLEWARE_APP.label}: {reason}")
    checks = [*(endpoint for endpoint, _ in cases), *MIDDLEWARE_PROBES]
    with _serving(ctx, serving, MIDDLEWARE_APP, checks) as live:
        _measure_all(ctx, live, cases, MIDDLEWARE_APP, results)


def _run_production_apps(
    ctx: _Context, slots: list[tuple[ServerSpec, ServerRun]], results: BenchResults, unavailable: str | None
) -> None:
    """The production-style app, then it with Sentry, OpenTelemetry and Prometheus (unless
    ``unavailable`` says why not): the endpoints of ``--endpoints`` it has, on every server
    that serves Starlette's middleware."""
    cases = production_cases(ctx.options)
    for app in production_apps(ctx.options):
        if not cases:
            say(f"\n== {app.label}: not run, none of its endpoints in --endpoints")
            return
        serving = []
        for spec, run in _still_running(slots):
            reason = spec.no_middleware or (unavailable if app.variant == "instrumented" else None)
            if reason is None:
                serving.append((spec, run))
            else:
                run.not_run[app.label] = reason
                say(f"{spec.label}: not run on the {app.label}: {reason}")
        if not serving:
            continue
        with _serving(ctx, serving, app, [*(e for e, _ in cases), *PRODUCTION_PROBES]) as live:
            _measure_all(ctx, live, cases, app, results)


def _workers_slots(
    slots: list[tuple[ServerSpec, ServerRun]], results: BenchResults
) -> list[tuple[ServerSpec, ServerRun]]:
    """The workers run's slots: each server that has one, with 1 and with 2 workers (a row
    of their own in ``results.workers``)."""
    pairs = []
    for spec, _ in _still_running(slots):
        if spec.workers_ready is None:
            continue
        for workers in (1, WORKERS):
            variant = spec.with_workers(workers)
            run_ = ServerRun(variant.key, variant.label, variant.describe_command(),
                             workers=workers)  # fmt: skip
            results.workers.append(run_)
            pairs.append((variant, run_))
    return pairs


def _run_workers(
    ctx: _Context,
    slots: list[tuple[ServerSpec, ServerRun]],
    results: BenchResults,
    placement: Placement,
) -> None:
    """``/plain`` and ``/items/{id}`` on the default app served by 1 and by 2 worker
    processes (uvicorn's and the native tier's), all started together and measured
    interleaved, placed as :func:`~bench.placement.workers_placement` decided."""
    cases = _workers_cases(ctx.options)
    if not cases:
        names = ", ".join(e.name for e in WORKERS_ENDPOINTS)
        say(f"\n== workers run: not run, none of {names} in --endpoints")
        return
    pairs = _workers_slots(slots, results)
    if not pairs:
        say("\n== workers run: not run, none of the servers selected has one")
        return
    ctx = replace(ctx, placement=placement)
    checks = [endpoint for endpoint, _ in cases]
    title = f"workers run: 1 and {WORKERS} workers"
    with _serving(ctx, pairs, DEFAULT_APP, checks, title) as live:
        for item in live:
            item.run.startup_s = item.server.ready_after
            item.run.idle_rss_kib = item.idle_rss_kib
        _measure_all(ctx, live, cases, DEFAULT_APP, results)
        for item in live:
            item.run.loaded_rss_kib = item.server.rss_kib()
            item.run.peak_rss_kib = item.server.rss_kib("VmHWM")
    for item in live:
        item.run.stopped_in_s = item.server.stopped_in
        item.run.left_running = item.server.left_running


def _middleware_meta() -> dict[str, object]:
    """What the middleware run serves and sends, for the report."""
    return {
        "app": asgi_target(MIDDLEWARE_APP),
        "gzip_minimum_size": GZIP_MINIMUM_SIZE,
        "cors_allow_origins": [CORS_ORIGIN],
        "request_headers": dict(MIDDLEWARE_HEADERS),
    }


def _also(options: BenchOptions) -> str:
    """The runs after the default app's, for the banner."""
    also = ""
    if options.scaling:
        also += f", plus /plain on the {SCALED_APP.label}"
    if options.middleware and (cases := _middleware_cases(options)):
        names = ", ".join(endpoint.name for endpoint, _ in cases)
        also += f", plus {names} on the {MIDDLEWARE_APP.label}"
    for app in production_apps(options):
        if cases := production_cases(options):
            also += f", plus {', '.join(endpoint.name for endpoint, _ in cases)} on the {app.label}"
    if options.workers and (cases := _workers_cases(options)):
        names = ", ".join(endpoint.name for endpoint, _ in cases)
        also += f", plus {names} with 1 and {WORKERS} workers"
    return also


def run(options: BenchOptions) -> BenchResults:
    """Run the whole benchmark; write results.json (and .md, .png) to ``options.output_dir``."""
    started = time.monotonic()
    slots = all_servers(options.native_tier)
    selected = slots if options.servers is None else [s for s in slots if s.key in options.servers]
    unknown = set(options.servers or ()) - {s.key for s in slots}
    if unknown:
        raise BenchError(f"unknown server(s): {', '.join(sorted(unknown))}")
    runnable = [s for s in selected if s.unavailable is None]
    problems = _install(options, runnable)
    instruments_unavailable = ensure_instruments(options) if options.production and options.instruments else None

    engine_package, engine_native = locate_engine()
    engine = describe_engine(engine_package, engine_native)
    allowed = allowed_cores()  # before this process pins itself below
    pin = options.server_core is not None  # not --no-pin
    workers_at = workers_placement(allowed, pin)
    if len(allowed) < 2 and pin:
        say(f"only {len(allowed)} core(s): server and wrk are not pinned")
        options.server_core = options.wrk_core = None
    if options.wrk_core is not None:
        os.sched_setaffinity(0, {options.wrk_core})  # this process stays off the server's core

    results = BenchResults(
        meta={
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "machine": machine(),
            "git": git_revision(),
            "engine": engine,
            "versions": install.versions(),
            "warmup_s": options.warmup_s,
            "duration_s": options.duration_s,
            "connections": options.connections,
            "plain_connections": options.plain_connections,
            "server_core": options.server_core,
            "wrk_core": options.wrk_core,
            "wrk_threads": 1,
            "default_extra_routes": DEFAULT_EXTRA_ROUTES,
            "scaled_extra_routes": SCALED_EXTRA_ROUTES if options.scaling else None,
            "middleware": _middleware_meta() if options.middleware else None,
            "production": production_meta(options, instruments_unavailable),
            "workers": workers_meta(allowed, pin, workers_at) if options.workers else None,
            "profiled": options.py_spy,
            "wait_quiet_s": options.wait_quiet_s,
            "retry_disturbed": options.retry_disturbed,
            "repeat": options.repeat,
        }
    )
    to_run = [s for s in runnable if s.key not in problems]
    say(f"engine: {engine}")
    say(
        f"servers: {', '.join(s.label for s in to_run)}; {len(options.cases())} runs each of "
        f"{options.warmup_s:g} s warm-up + {options.duration_s:g} s{_also(options)}; "
        f"about {estimate_seconds(options, to_run) / 60:.1f} min"
    )
    options.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        # A copy: a rebuild of the engine in place during the run must not change it midway.
        snapshot = Path(tmp) / "engine" / engine_package.name
        shutil.copytree(engine_package, snapshot, ignore=shutil.ignore_patterns("__pycache__"))
        placement = main_placement(options.server_core, options.wrk_core)
        ctx = _Context(options, server_env(snapshot), Path(tmp), placement)
        slots_to_run = []
        for spec in selected:
            run_ = ServerRun(spec.key, spec.label, spec.describe_command(), note=spec.note)
            results.servers.append(run_)
            run_.skipped = spec.unavailable or problems.get(spec.key)
            if run_.skipped:
                say(f"{spec.label}: not run: {run_.skipped}")
            else:
                slots_to_run.append((spec, run_))
        _run_default_app(ctx, slots_to_run, results)
        if options.ceiling and any(e == PLAIN.name for e in options.endpoints):
            _run_ceiling(ctx, results)
        if options.scaling:
            _run_scaled_app(ctx, slots_to_run, results)
        if options.middleware:
            _run_middleware_app(ctx, slots_to_run, results)
        if options.production:
            _run_production_apps(ctx, slots_to_run, results, instruments_unavailable)
        if options.workers:
            _run_workers(ctx, slots_to_run, results, workers_at)
    results.meta["elapsed_s"] = round(time.monotonic() - started, 1)
    return results
