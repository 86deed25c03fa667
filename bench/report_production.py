"""``results.md``'s section on the production runs: each server's requests/s on the
production-style app and on it with Sentry, OpenTelemetry and Prometheus, next to the default
app's, with the ratio to FastAPI+uvicorn on the same app (issue 21's targets: ≥ 3× and ≥ 1.5×)."""

from __future__ import annotations

from typing import Any

from bench.endpoints import PRODUCTION_ENDPOINTS
from bench.report_format import _check, _flagged, _label, _ms, _ratio
from bench.results import BenchResults, ServerRun
from bench.servers import UVICORN

# issue 21: ratio to FastAPI+uvicorn on the same app, in one run
TARGETS = {"production": 3.0, "instrumented": 1.5}


def _intro(meta: dict[str, Any]) -> str:
    apps = meta["apps"]
    headers = ", ".join(f"`{k}: {v}`" for k, v in meta["request_headers"].items())
    text = (
        f"`{apps['production']['target']}`: the default app with, outside in, a pure-ASGI "
        'request-id middleware, an `@app.middleware("http")` timer (`BaseHTTPMiddleware`) and '
        f"`CORSMiddleware(allow_origins={meta['cors_allow_origins']})`; every request sends "
        f"{headers}. *× uvicorn* is the ratio to FastAPI+uvicorn on the same app, in this run "
        "(issue 21's targets: ≥ 3× on the production app, ≥ 1.5× with the instruments); "
        "*default app* is the main run's, minutes earlier."
    )
    if "instrumented" in apps:
        versions = ", ".join(f"{k} {v}" for k, v in (meta.get("instruments") or {}).items())
        text += (
            f" `{apps['instrumented']['target']}` adds Sentry (`traces_sample_rate=1.0`, a "
            "counting `Transport`), OpenTelemetry (a global SDK `TracerProvider`, "
            "`BatchSpanProcessor` into a bounded `InMemorySpanExporter`, "
            "`FastAPIInstrumentor.instrument_app`) and prometheus-fastapi-instrumentator "
            f"(`instrument(app).expose(app)`), all in-process ({versions or 'versions unknown'})."
        )
    if meta.get("instruments_unavailable"):
        text += f" The instrumented app was not run: {meta['instruments_unavailable']}."
    return text


def production_lines(results: BenchResults, runs: list[ServerRun]) -> list[str]:
    """The section, or nothing when the production runs were not run."""
    meta = results.meta.get("production")
    if not meta:
        return []
    default = results.meta["default_extra_routes"]
    conns = results.meta["connections"][0]
    variants = [v for v in ("production", "instrumented") if v in meta["apps"]]
    head = "| endpoint | server | req/s, default app |"
    rule = "|---|---|--:|"
    for variant in variants:
        name = "production" if variant == "production" else "+ instruments"
        head += f" req/s, {name} | × uvicorn | p99 ms |"
        rule += "--:|--:|--:|"
    lines = [
        "",
        f"## Production-style app, and with Sentry + OpenTelemetry + Prometheus ({conns} connections)",
        "",
        _intro(meta),
        "",
        head + " answers vs uvicorn |",
        rule + "---|",
    ]
    for endpoint in (e.name for e in PRODUCTION_ENDPOINTS):
        for r in runs:
            found = [results.find(r.key, endpoint, conns, default, variant=v) for v in variants]
            if all(m is None for m in found):
                continue
            plain = results.find(r.key, endpoint, conns, default)
            row = f"| `{endpoint}` | {_label(r)} | {_flagged(plain)} |"
            checks = []
            for variant, m in zip(variants, found, strict=True):
                base = results.find(UVICORN, endpoint, conns, default, variant=variant)
                versus = _ratio(m, base) if r.key != UVICORN else ""
                row += f" {_flagged(m)} | {versus} | {_ms(m.p99_ms if m else None)} |"
                if m is not None:
                    checks.append(_check(m))
            lines.append(row + f" {' / '.join(checks)} |")
    for r in runs:
        for variant in variants:
            label = meta["apps"][variant]["label"]
            if reason := r.not_run.get(label):
                lines.append(f"| | {_label(r)} | not run on the {label}: {reason.splitlines()[0]} |")
    return lines
