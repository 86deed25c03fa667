"""The production runs: the production-style app (CORS, a pure-ASGI request-id middleware, an
``@app.middleware("http")`` timer, ``Depends``) and the same app with Sentry, OpenTelemetry and
Prometheus (all in-process), on every FastAPI server; what they measure, what they need
installed, and what the report says about them (``results.meta["production"]``)."""

from __future__ import annotations

from bench import install
from bench.apps.fastapi_app import CORS_ORIGIN
from bench.endpoints import PRODUCTION_HEADERS, Endpoint, production_endpoints
from bench.options import BenchOptions
from bench.servers import INSTRUMENTED_APP, PRODUCTION_APP, AppVariant, asgi_target


def production_apps(options: BenchOptions) -> list[AppVariant]:
    """The production runs' apps, in run order, as ``--no-production``/``--no-instruments`` say."""
    if not options.production:
        return []
    return [PRODUCTION_APP, *([INSTRUMENTED_APP] if options.instruments else [])]


def production_cases(options: BenchOptions) -> list[tuple[Endpoint, int]]:
    """Each production app's cases: the endpoints of ``--endpoints`` it has, at the first
    connection count."""
    return [(e, options.connections[0]) for e in production_endpoints(options.endpoints)]


def ensure_instruments(options: BenchOptions) -> str | None:
    """Sentry, OpenTelemetry and Prometheus for the instrumented app: None when there (or
    installed), else why not (the instrumented run is then not run, and the report says so)."""
    return install.ensure_packages(install.INSTRUMENT_DISTRIBUTIONS, install=options.install)


def production_meta(options: BenchOptions, unavailable: str | None) -> dict[str, object] | None:
    """What the production runs serve and send, for ``results.json`` and the report."""
    apps = production_apps(options)
    if not apps:
        return None
    return {
        "apps": {app.variant: {"target": asgi_target(app), "label": app.label} for app in apps},
        "cors_allow_origins": [CORS_ORIGIN],
        "request_headers": dict(PRODUCTION_HEADERS),
        "instruments": install.instrument_versions() if INSTRUMENTED_APP in apps else None,
        "instruments_unavailable": unavailable,
    }
