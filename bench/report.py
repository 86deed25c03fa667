"""``results.md``: the tables a reader wants, from :class:`~bench.results.BenchResults`."""

from __future__ import annotations

from typing import Any

from bench.ceiling import ceiling_lines
from bench.endpoints import ENDPOINTS, MIDDLEWARE_ENDPOINTS, PLAIN, PREFLIGHT, WORKERS_ENDPOINTS
from bench.interference import DISTURBED_PCT
from bench.report_format import (
    _check,
    _flagged,
    _foreign,
    _is_disturbed,
    _label,
    _mib,
    _ms,
    _pct,
    _ratio,
    _rps,
    _rps_spread,
)
from bench.report_production import production_lines
from bench.results import BenchResults, Measurement, ServerRun
from bench.servers import FASTRAPI, GRANIAN, MIDDLEWARE_APP, OURS_ASGI, OURS_NATIVE, UVICORN

FASTRAPI_FOOTNOTE = (
    "FastrAPI runs `bench/apps/fastrapi_app.py` (its own API, same paths and answers) with "
    "every endpoint a `def`: in 0.2.11 its `async def` endpoints answer 500, so its `/plain` "
    "is not the `async def` the FastAPI app has."
)


def _order(results: BenchResults) -> list[tuple[str, int]]:
    """``(endpoint, connections)`` measured on the default app, in endpoint order."""
    names = [e.name for e in ENDPOINTS]
    seen = {(m.endpoint, m.connections) for m in results.measurements
            if m.extra_routes == results.meta["default_extra_routes"]
            and not m.middleware and not m.variant and m.workers is None}  # fmt: skip
    return sorted(seen, key=lambda case: (names.index(case[0]), -case[1]))


def _header(results: BenchResults) -> list[str]:
    meta = results.meta
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    pinning = (
        f"server pinned to core {meta['server_core']}, wrk (1 thread) to core {meta['wrk_core']}"
        if meta.get("server_core") is not None
        else "not pinned"
    )
    rounds = meta.get("repeat", 1)
    per_run = f"{meta['warmup_s']:g} s warm-up + {meta['duration_s']:g} s per run"
    if rounds > 1:
        per_run += f", median of {rounds} interleaved rounds (range in brackets)"
    lines = [
        "# Benchmark results",
        "",
        (
            f"{meta['date']} · {machine['cpu']}, {machine['cores']} cores, Linux "
            f"{machine['kernel']} · commit {meta['git']} · {pinning} · {per_run} · "
            f"whole run {meta.get('elapsed_s', 0) / 60:.1f} min"
        ),
        "",
        f"Engine: `{meta['engine']}`. Versions: {versions}.",
    ]
    measured = [m for m in results.measurements if m.requests_per_sec is not None]
    disturbed = [m for m in measured if _is_disturbed(m)]
    if disturbed:
        lines += [
            "",
            (
                f"**⚠ {len(disturbed)} of {len(measured)} runs were disturbed: other processes "
                f"used ≥ {DISTURBED_PCT:.0f}% of the server's or wrk's core (last column of "
                "*Every run*). Their numbers are not reliable; run again on a quiet machine "
                "(`--wait-quiet 300 --retry-disturbed 2` helps on a shared one).**"
            ),
        ]
    if meta.get("profiled"):
        lines += [
            "",
            "**Profiled with py-spy during every run: numbers are disturbed.**",
        ]
    return lines


def _matrix(results: BenchResults, runs: list[ServerRun]) -> list[str]:
    default = results.meta["default_extra_routes"]
    lines = [
        "",
        "## Requests per second (× FastAPI+uvicorn)",
        "",
        "| endpoint | conns | " + " | ".join(_label(r) for r in runs) + " |",
        "|---|--:|" + "--:|" * len(runs),
    ]
    for endpoint, conns in _order(results):
        base = results.find(UVICORN, endpoint, conns, default)
        cells = []
        for r in runs:
            m = results.find(r.key, endpoint, conns, default)
            ratio = _ratio(m, base) if r.key != UVICORN else ""
            cell = _rps(m) + (f" ({ratio})" if ratio and ratio != "–" else "")
            cells.append(cell + (" ⚠" if m is not None and _is_disturbed(m) else ""))
        lines.append(f"| `{endpoint}` | {conns} | " + " | ".join(cells) + " |")
    return lines


def _details(results: BenchResults, runs: list[ServerRun]) -> list[str]:
    default = results.meta["default_extra_routes"]
    lines = [
        "",
        "## Every run",
        "",
        (
            "*server CPU %*: the server's process tree, in % of its one core. *others' CPU*: "
            "share of the server's and wrk's pinned cores used by other processes during "
            f"the run (⚠ from {DISTURBED_PCT:.0f}%: the machine was shared, numbers suspect)."
        ),
        "",
        (
            "| endpoint | conns | server | req/s | p50 ms | p99 ms | × uvicorn "
            "| × FastrAPI | answers vs uvicorn | server CPU % | others' CPU % server/wrk core |"
        ),
        "|---|--:|---|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for endpoint, conns in _order(results):
        base = results.find(UVICORN, endpoint, conns, default)
        fastrapi = results.find(FASTRAPI, endpoint, conns, default)
        for r in runs:
            m = results.find(r.key, endpoint, conns, default)
            if m is None:
                continue
            lines.append(
                f"| `{endpoint}` | {conns} | {_label(r)} | {_rps_spread(m)} | {_ms(m.p50_ms)} | "
                f"{_ms(m.p99_ms)} | {_ratio(m, base)} | {_ratio(m, fastrapi)} | {_check(m)} | "
                f"{_pct(m.extra.get('server_cpu_pct'))} | {_foreign(m)} |"
            )
    return lines


# The comparisons issue #6 sets targets for, besides uvicorn: (server, against, label).
PAIRS = ((OURS_NATIVE, FASTRAPI, "native tier × FastrAPI"), (OURS_ASGI, GRANIAN, "ASGI tier × granian"))


def paired_ratios(m: Measurement | None, base: Measurement | None) -> list[float]:
    """``m``'s requests/s over ``base``'s, round by round (the two ran back to back in each
    round), sorted; empty without ``--repeat`` or when a round was not measured."""
    if m is None or base is None:
        return []
    ours, theirs = m.extra.get("runs_rps", []), base.extra.get("runs_rps", [])
    if len(ours) < 2 or len(ours) != len(theirs) or None in ours or None in theirs or 0 in theirs:
        return []
    return sorted(a / b for a, b in zip(ours, theirs))


def _paired(results: BenchResults) -> list[str]:
    """Each round's ratio for the two comparisons with targets, and their median: sturdier
    than the ratio of medians when the machine drifts between rounds."""
    default = results.meta["default_extra_routes"]
    rows = []
    for endpoint, conns in _order(results):
        cells = []
        for server, base, _ in PAIRS:
            ratios = paired_ratios(results.find(server, endpoint, conns, default),
                                   results.find(base, endpoint, conns, default))  # fmt: skip
            if ratios:
                each = ", ".join(f"{r:.2f}" for r in ratios)
                cells.append(f"{ratios[(len(ratios) - 1) // 2]:.2f}× ({each})")
            else:
                cells.append("–")
        if any(cell != "–" for cell in cells):
            rows.append(f"| `{endpoint}` | {conns} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "",
        "## Paired ratios, round by round",
        "",
        (
            "In each round the servers ran one after the other on the same case, seconds "
            "apart; the ratio within a round cancels the machine's drift between rounds. "
            "Median of the rounds' ratios (lower median with an even count), each round's in "
            "brackets, lowest first."
        ),
        "",
        "| endpoint | conns | " + " | ".join(label for _, _, label in PAIRS) + " |",
        "|---|--:|" + "--:|" * len(PAIRS),
        *rows,
    ]


def _per_request_us(m: Measurement | None) -> float | None:
    return 1e6 / m.requests_per_sec if m is not None and m.requests_per_sec else None


def _app_alone(results: BenchResults, runs: list[ServerRun]) -> list[str]:
    """Each server's time per request next to the app's own time with no server."""
    alone = results.meta.get("app_alone_us")
    if alone is None:
        return []
    conns = results.meta["connections"][0]
    lines = ["", f"## Time per request: the app alone and each server ({conns} connections)", ""]
    if not isinstance(alone, dict):
        return [*lines, f"The app alone was not measured: {alone}."]
    default = results.meta["default_extra_routes"]
    servers = [r for r in runs if r.key in (UVICORN, GRANIAN, OURS_ASGI, OURS_NATIVE)]
    rounds = results.meta.get("app_alone_rounds")
    when = (
        f"measured after each of the {len(rounds)} rounds of server runs; the median of those rounds"
        if isinstance(rounds, list) and len(rounds) > 1
        else "measured right after the server runs"
    )
    lines += [
        (
            "*app alone*: `python -m bench.app_alone`, the stock app's ASGI call awaited in a "
            "loop with no server (uvloop, on the servers' core, the median of 3 rounds), "
            + when
            + ". A server's time per request is 1,000,000 / req/s (one core, busy all the time); "
            "in brackets what it adds to the app alone. *bound × granian* = granian's time / "
            "the app alone: what an ASGI server adding nothing at all would measure against "
            "granian. The native tier does not run the ASGI app. The app alone and the servers "
            "ran at different moments, so the columns carry the machine's drift."
        ),
        "",
        "| endpoint | app alone µs | "
        + " | ".join(f"{_label(r)} µs" for r in servers)
        + " | ASGI tier × granian | bound × granian |",
        "|---|--:|" + "--:|" * len(servers) + "--:|--:|",
    ]
    for name, app_us in alone.items():
        cells = []
        for r in servers:
            us = _per_request_us(results.find(r.key, name, conns, default))
            if us is None:
                cells.append("–")
            elif r.key == OURS_NATIVE:
                cells.append(f"{us:,.0f}")
            else:
                cells.append(f"{us:,.0f} (+{us - app_us:,.0f})")
        ours = results.find(OURS_ASGI, name, conns, default)
        granian = results.find(GRANIAN, name, conns, default)
        granian_us = _per_request_us(granian)
        bound = f"{granian_us / app_us:.2f}×" if granian_us else "–"
        lines.append(f"| `{name}` | {app_us:,.0f} | " + " | ".join(cells) + f" | {_ratio(ours, granian)} | {bound} |")
    return lines


def _scaling(results: BenchResults, runs: list[ServerRun]) -> list[str]:
    scaled = results.meta.get("scaled_extra_routes")
    if not scaled:
        return []
    default = results.meta["default_extra_routes"]
    conns = results.meta["connections"][0]
    lines = [
        "",
        (
            f"## Route-count scaling: `/plain` with {default} vs {scaled:,} routes "
            f"declared before it ({conns} connections)"
        ),
        "",
        (
            f"| server | req/s, {default} routes | req/s, {scaled:,} routes "
            f"| {scaled:,} / {default} | p99 ms, {default} | p99 ms, {scaled:,} "
            f"| startup s, {scaled:,} | idle RSS MiB, {scaled:,} |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in runs:
        small = results.find(r.key, "/plain", conns, default)
        big = results.find(r.key, "/plain", conns, scaled)
        if big is None and small is None:
            continue
        startup = "–" if r.scaled_startup_s is None else f"{r.scaled_startup_s:.1f}"
        lines.append(
            f"| {_label(r)} | {_rps(small)} | {_rps(big)} | {_ratio(big, small)} | "
            f"{_ms(small.p99_ms if small else None)} | {_ms(big.p99_ms if big else None)} | "
            f"{startup} | {_mib(r.scaled_idle_rss_kib)} |"
        )
    return lines


def _middleware_intro(meta: dict[str, Any]) -> str:
    headers = ", ".join(f"`{k}: {v}`" for k, v in meta["request_headers"].items())
    return (
        f"`{meta['app']}`: the default app with Starlette's own "
        f"`GZipMiddleware(minimum_size={meta['gzip_minimum_size']})` and, around it, "
        f"`CORSMiddleware(allow_origins={meta['cors_allow_origins']}, allow_methods=['*'], "
        f"allow_headers=['*'])`; every request sends {headers}. `/plain` is below "
        "`minimum_size` (CORS headers only), `/big` is gzipped. *Plain app* is the default "
        "app's run above (same connections, minutes earlier); *cost* = CORS + GZip / plain "
        "app (1.00× = free). fastrapi-compat runs both middleware in Rust around its native "
        "routes; on its ASGI tier and on the other servers they are Starlette's Python. "
        f"`{PREFLIGHT.name}` is `{PREFLIGHT.method} {PREFLIGHT.target}` with "
        "`Access-Control-Request-Method`: the CORS middleware answers it before the app, so it "
        "has no plain-app pair; on the native tier no Python runs for it at all."
    )


def _middleware(results: BenchResults, runs: list[ServerRun]) -> list[str]:
    meta = results.meta.get("middleware")
    if not meta:
        return []
    default = results.meta["default_extra_routes"]
    conns = results.meta["connections"][0]
    lines = [
        "",
        f"## Cost of CORS + GZip on a native route ({conns} connections)",
        "",
        _middleware_intro(meta),
        "",
        (
            "| endpoint | server | req/s, plain app | req/s, CORS + GZip | cost "
            "| CORS + GZip × uvicorn | p99 ms, plain | p99 ms, CORS + GZip "
            "| answers vs uvicorn |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for endpoint in (e.name for e in MIDDLEWARE_ENDPOINTS):
        base = results.find(UVICORN, endpoint, conns, default, middleware=True)
        for r in runs:
            plain = results.find(r.key, endpoint, conns, default)
            m = results.find(r.key, endpoint, conns, default, middleware=True)
            if m is None:
                continue
            versus = _ratio(m, base) if r.key != UVICORN else ""
            lines.append(
                f"| `{endpoint}` | {_label(r)} | {_flagged(plain)} | {_flagged(m)} | "
                f"{_ratio(m, plain)} | {versus} | {_ms(plain.p99_ms if plain else None)} | "
                f"{_ms(m.p99_ms)} | {_check(m)} |"
            )
    for r in runs:
        if reason := r.not_run.get(MIDDLEWARE_APP.label):
            lines.append(f"| | {_label(r)} | not run: {reason.splitlines()[0]} "
                         "| | | | | | |")  # fmt: skip
    return lines


def _ceiling(results: BenchResults) -> list[str]:
    """The native tier's preflight (answered in Rust, no Python) next to its ``/plain``: how
    far p99 at this many connections can go on this machine at all."""
    default = results.meta["default_extra_routes"]
    conns = results.meta["connections"][0]
    floor = results.find(OURS_NATIVE, PREFLIGHT.name, conns, default, middleware=True)
    if floor is None or not floor.requests_per_sec:
        return []
    rows = [(f"`{PREFLIGHT.name}` on the CORS + GZip app: Rust only", floor)]
    plain = results.find(OURS_NATIVE, PLAIN.name, conns, default)
    if plain is not None and plain.requests_per_sec:
        rows.append((f"`{PLAIN.name}`: one `async def` call per request", plain))
    lines = [
        "",
        f"## Latency floor of the native tier ({conns} connections)",
        "",
        (
            f"wrk keeps all {conns} connections busy (closed loop), so the mean latency is "
            f"{conns} / req/s (Little's law) whatever the server does: a p99 of 2 ms (issue #6) "
            f"needs more than {conns * 500:,} req/s with no spread at all. The preflight is "
            "answered by the engine's CORS layer without calling Python: HTTP, loopback TCP "
            "and wrk alone, the most any route can get on this machine. *mean* = "
            f"{conns} / req/s."
        ),
        "",
        "| request | req/s | mean ms | p50 ms | p99 ms | p99 / mean |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, m in rows:
        mean = conns / m.requests_per_sec * 1e3
        lines.append(
            f"| {name} | {_rps_spread(m)} | {mean:.2f} | {_ms(m.p50_ms)} | {_ms(m.p99_ms)} | {m.p99_ms / mean:.2f} |"
        )
    return lines


def _servers(results: BenchResults) -> list[str]:
    base = results.server(UVICORN)
    lines = [
        "",
        "## Servers: memory and startup",
        "",
        (
            "RSS is `VmRSS` from `/proc/PID/status`, summed over the server's process "
            "tree (granian runs its worker as a child process); idle = after startup, "
            "before any request but the readiness probe; after load = after its last "
            "run; peak = `VmHWM`."
        ),
        "",
        ("| server | idle RSS MiB | × uvicorn | RSS after load MiB | peak MiB | ready in s | command |"),
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in results.servers:
        if r.skipped:
            lines.append(f"| {_label(r)} | not run: {r.skipped.splitlines()[0]} | | | | | "
                         f"`{r.command}` |")  # fmt: skip
            continue
        ratio = f"{r.idle_rss_kib / base.idle_rss_kib:.2f}×" if base and base.idle_rss_kib and r.idle_rss_kib else "–"
        startup = "–" if r.startup_s is None else f"{r.startup_s:.2f}"
        lines.append(
            f"| {_label(r)} | {_mib(r.idle_rss_kib)} | {ratio} | {_mib(r.loaded_rss_kib)} | "
            f"{_mib(r.peak_rss_kib)} | {startup} | `{r.command}` |"
        )
    return lines


WORKERS_TARGET = 1.8  # issue #6: 2 workers give >= 1.8x one worker
WRK_SATURATED_PCT = 90.0  # wrk's CPU, % of its cores: it may have been the limit


def _cores(cores: list[int]) -> str:
    return ",".join(map(str, cores))


def _workers_how(meta: dict[str, Any]) -> str:
    """How the workers run was measured: where everything ran, and what that means."""
    n, wrk = meta["workers"], meta["wrk_cores"]
    servers = f"`taskset -c {_cores(meta['server_cores'])}`"
    threads = f"`wrk -t{meta['wrk_threads']}`, `taskset -c {_cores(wrk)}`"
    if not meta["shared"]:
        return (
            f"Every server (1 worker and {n} workers alike) ran on cores "
            f"{_cores(meta['server_cores'])} ({servers}), wrk ({threads}) on core "
            f"{_cores(wrk)}, a core of its own ({meta['why']}). Same cores for 1 and {n} "
            f"workers: the ratio is what the second worker adds on this machine. A wrk CPU "
            f"of ≥ {WRK_SATURATED_PCT:.0f}% of its core means wrk may have been the limit "
            "(marked ⚠)."
        )
    return (
        f"**Measured on shared cores: the load generator competed with the workers.** "
        f"Usable cores: {_cores(meta['allowed_cores'])} (`os.sched_getaffinity`; "
        f"{meta['why']}). Every server (1 worker and {n} workers alike) and wrk "
        f"({threads}) ran on the same cores {_cores(meta['server_cores'])}; the harness "
        f"on {_cores(meta['harness_cores'])}. wrk's own CPU is taken from the cores the workers "
        f"would use, more so the more requests they answer, so the ratio **understates** "
        f"what {n} workers give when the load comes from elsewhere; it cannot show whether "
        f"the target is met. *wrk CPU %* shows how much of the cores wrk took."
    )


def _cpu_split(m: Measurement | None) -> str:
    """The server's CPU, and each worker's (``170 (84 / 86)``), in % of one core."""
    if m is None or m.requests_per_sec is None:
        return "–"
    text = _pct(m.extra.get("server_cpu_pct"))
    if workers := m.extra.get("worker_cpu_pct"):
        text += " (" + " / ".join(f"{w:.0f}" for w in workers) + ")"
    return text


def _wrk_cpu(m: Measurement | None, meta: dict[str, Any]) -> str:
    if m is None or m.extra.get("wrk_cpu_pct") is None:
        return "–"
    cpu = m.extra["wrk_cpu_pct"]
    saturated = cpu >= WRK_SATURATED_PCT * len(meta["wrk_cores"]) and not meta["shared"]
    return f"{cpu:.0f}" + (" ⚠" if saturated else "")


def _workers_rows(results: BenchResults, meta: dict[str, Any]) -> list[str]:
    default, n = results.meta["default_extra_routes"], meta["workers"]
    conns = results.meta["connections"][0]
    keys = list(dict.fromkeys(r.key for r in results.workers))
    lines = []
    for endpoint in (e.name for e in WORKERS_ENDPOINTS):
        for key in keys:
            one, many = (results.find(key, endpoint, conns, default, workers=w)
                         for w in (1, n))  # fmt: skip
            if one is None and many is None:
                continue
            label = next(r.label for r in results.workers if r.key == key)
            label = label.rsplit(", ", 1)[0]  # without ", 1 worker"
            lines.append(
                f"| `{endpoint}` | {label} | {_flagged(one)} | {_flagged(many)} | "
                f"{_ratio(many, one)} | {_ms(one.p99_ms if one else None)} | "
                f"{_ms(many.p99_ms if many else None)} | {_cpu_split(one)} | "
                f"{_cpu_split(many)} | {_wrk_cpu(one, meta)} / {_wrk_cpu(many, meta)} | "
                f"{_check(many) if many else '–'} |"
            )
    return lines


def _workers_servers(results: BenchResults) -> list[str]:
    lines = [
        "",
        (
            "| server | ready in s | idle RSS MiB | RSS after load MiB | stopped in s "
            "| left running after SIGINT | command |"
        ),
        "|---|--:|--:|--:|--:|---|---|",
    ]
    for r in results.workers:
        if r.skipped:
            lines.append(f"| {r.label} | not run: {r.skipped.splitlines()[0]} | | | | | "
                         f"`{r.command}` |")  # fmt: skip
            continue
        startup = "–" if r.startup_s is None else f"{r.startup_s:.2f}"
        stopped = "–" if r.stopped_in_s is None else f"{r.stopped_in_s:.2f}"
        left = ", ".join(map(str, r.left_running)) + " (killed)" if r.left_running else "none"
        lines.append(
            f"| {r.label} | {startup} | {_mib(r.idle_rss_kib)} | {_mib(r.loaded_rss_kib)} | "
            f"{stopped} | {left} | `{r.command}` |"
        )
    return lines


def _workers(results: BenchResults) -> list[str]:
    meta = results.meta.get("workers")
    lines = ["", "## Workers: 1 vs 2 worker processes", ""]
    if not meta:
        return [*lines, "Not run (`--no-workers`)."]
    n, conns = meta["workers"], results.meta["connections"][0]
    if not results.workers:
        return [*lines, "Not run: none of the servers selected has a workers run."]
    return [
        *lines,
        (
            f"The default app with `--workers 1` and `--workers {n}` (same command "
            f"otherwise; `--log-level info`, for the line that says every worker is up), "
            f"{conns} connections, all four servers started together and measured "
            f"interleaved. Target (issue #6): {n} workers give ≥ {WORKERS_TARGET:.2f}× one "
            f"worker, with the load generator on its own core. *CPU %*: the server's "
            f"process tree in % of one core (each worker's in brackets)."
        ),
        "",
        _workers_how(meta),
        "",
        (
            f"| endpoint | server | req/s, 1 worker | req/s, {n} workers | {n} / 1 "
            f"| p99 ms, 1 | p99 ms, {n} | CPU %, 1 | CPU %, {n} | wrk CPU %, 1 / {n} "
            "| answers vs uvicorn |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
        *_workers_rows(results, meta),
        *_workers_servers(results),
    ]


def _mismatches(results: BenchResults) -> list[str]:
    lines: list[str] = []
    for r in results.servers:
        for v in r.verdicts:
            if v["outcome"] != "identical":
                app = f" ({v['app']})" if "app" in v else ""
                lines.append(f"- {_label(r)}, `{v['endpoint']}`{app}: {v['outcome']}: {v['detail']}")
    if not lines:
        return [
            "",
            "## Answers",
            "",
            (
                "Every server's status, body bytes and middleware headers were identical "
                "to FastAPI+uvicorn's on every endpoint and probe."
            ),
        ]
    return [
        "",
        "## Answers that differ from FastAPI+uvicorn's",
        "",
        (
            "Checked before measuring: status, body bytes and the headers middleware adds "
            "(`access-control-*`, `content-encoding`, `vary`) of each endpoint, plus probes "
            "(422 path, 422 body, 404, 405; on the CORS + GZip app a preflight, an origin "
            "not allowed, a 404). *different* on a measured endpoint means it was not "
            "measured; *json-equal* (same JSON, other bytes) and *gzip-equal* (same body "
            "decompressed, other compressed bytes) were measured."
        ),
        "",
        *lines,
    ]


def render(results: BenchResults) -> str:
    runs = [r for r in results.servers if not r.skipped]
    lines = _header(results)
    lines += _matrix(results, runs)
    lines += _details(results, runs)
    lines += _paired(results)
    lines += _app_alone(results, runs)
    lines += _scaling(results, runs)
    lines += _middleware(results, runs)
    lines += production_lines(results, runs)
    lines += _ceiling(results)
    lines += ceiling_lines(results, {r.key: r.label for r in runs})
    lines += _servers(results)
    lines += _workers(results)
    lines += _mismatches(results)
    lines += ["", f"¹ {FASTRAPI_FOOTNOTE}", ""]
    return "\n".join(lines)
