"""The requests the benchmark sends: one :class:`Endpoint` per measured route, plus a few
probes that are only checked for identical answers (never measured); and the same for the
middleware app, whose requests come from an allowed origin and accept gzip, and for the
production apps, whose requests come from an allowed origin."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.apps.fastapi_app import CORS_ORIGIN

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Endpoint:
    """One request: ``name`` is what tables show, ``target`` the request line's path+query."""

    name: str
    method: str
    target: str
    body: bytes | None = None
    description: str = ""
    extra_headers: Headers = ()  # a tuple, not a dict: an Endpoint is hashable

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if self.body is not None else {}
        headers.update(self.extra_headers)
        return headers


ITEM_BODY = json.dumps({"name": "widget", "price": 9.5, "tags": ["blue", "small"]}, separators=(",", ":")).encode()

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/plain", "GET", "/plain", description="async def, small dict"),
    Endpoint("/sync", "GET", "/sync", description="def (thread pool), small dict"),
    Endpoint(
        "/items/{id}",
        "GET",
        "/items/42?q=hello&limit=5",
        description="typed path + query params",
    ),
    Endpoint(
        "POST /items",
        "POST",
        "/items",
        body=ITEM_BODY,
        description="pydantic body + response_model",
    ),
    Endpoint("/deps", "GET", "/deps?page=3", description="two levels of Depends"),
    Endpoint("/deps-def", "GET", "/deps-def?user=ann", description="async def, two levels of def Depends"),
    Endpoint("/big", "GET", "/big", description="list of 100 dicts"),
)

# Checked for identical answers only: error paths must match too.
PROBES: tuple[Endpoint, ...] = (
    Endpoint("422 path", "GET", "/items/abc", description="int path param not an int"),
    Endpoint("422 body", "POST", "/items", body=b'{"name":"x"}', description="missing field"),
    Endpoint("404", "GET", "/no-such-route", description="unknown path"),
    Endpoint("405", "DELETE", "/plain", description="method not allowed"),
)

PLAIN = ENDPOINTS[0]  # the smallest answer: the engine's own cost shows most
SCALING_ENDPOINT = PLAIN
# The workers run's: the smallest answer, and one with typed path and query parameters.
WORKERS_ENDPOINTS: tuple[Endpoint, ...] = (PLAIN, ENDPOINTS[2])


def endpoint_by_name(name: str) -> Endpoint:
    for endpoint in ENDPOINTS:
        if endpoint.name == name or endpoint.target == name:
            return endpoint
    names = ", ".join(e.name for e in ENDPOINTS)
    raise ValueError(f"unknown endpoint {name!r} (known: {names})")


MIDDLEWARE_HEADERS: Headers = (("Origin", CORS_ORIGIN), ("Accept-Encoding", "gzip"))


def _with_middleware_headers(name: str, description: str) -> Endpoint:
    endpoint = endpoint_by_name(name)
    return replace(endpoint, description=description, extra_headers=MIDDLEWARE_HEADERS)


# CORSMiddleware answers a preflight itself, before the app. On the native tier the engine's
# CORS layer answers it in Rust, without a call into Python: its numbers are the engine's
# ceiling on the machine (HTTP, loopback TCP and wrk, nothing else), what every endpoint's
# req/s and p99 are bounded by.
PREFLIGHT = Endpoint(
    "preflight", "OPTIONS", "/plain", description="CORS preflight, answered by the middleware",
    extra_headers=(
        ("Origin", CORS_ORIGIN), ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "x-token"),
    ),
)  # fmt: skip

# Measured on the middleware app; same names as on the plain app, so that the two pair up
# (the preflight has no pair: the plain app has no CORS). The preflight is measured whenever
# ``/plain`` is.
MIDDLEWARE_ENDPOINTS: tuple[Endpoint, ...] = (
    _with_middleware_headers("/plain", "below minimum_size: CORS headers only"),
    _with_middleware_headers("/big", "CORS headers, gzip-compressed body"),
    PREFLIGHT,
)


def middleware_endpoints(names: Sequence[str]) -> tuple[Endpoint, ...]:
    """Those of :data:`MIDDLEWARE_ENDPOINTS` measured for ``--endpoints names``."""
    wanted = {*names, PREFLIGHT.name} if PLAIN.name in names else set(names)
    return tuple(e for e in MIDDLEWARE_ENDPOINTS if e.name in wanted)


# Checked on the middleware app only: an origin not allowed, an error answer.
MIDDLEWARE_PROBES: tuple[Endpoint, ...] = (
    Endpoint(
        "other origin", "GET", "/big", description="origin not allowed, gzip",
        extra_headers=(("Origin", "https://other.example"), ("Accept-Encoding", "gzip")),
    ),
    Endpoint(
        "404 + CORS", "GET", "/no-such-route", description="an error answer through both",
        extra_headers=MIDDLEWARE_HEADERS,
    ),
)  # fmt: skip


# The production runs (the production-style app, and it with Sentry, OpenTelemetry and
# Prometheus): requests from the allowed origin, as a browser app sends them; the endpoints of
# ``--endpoints`` among these, same names as on the default app so that they pair up.
PRODUCTION_HEADERS: Headers = (("Origin", CORS_ORIGIN),)
PRODUCTION_ENDPOINTS: tuple[Endpoint, ...] = tuple(
    replace(endpoint_by_name(name), extra_headers=PRODUCTION_HEADERS)
    for name in ("/plain", "/items/{id}", "POST /items", "/deps")
)


def production_endpoints(names: Sequence[str]) -> tuple[Endpoint, ...]:
    """Those of :data:`PRODUCTION_ENDPOINTS` measured for ``--endpoints names``."""
    return tuple(e for e in PRODUCTION_ENDPOINTS if e.name in names)


# Checked on the production apps only: error answers through every layer.
PRODUCTION_PROBES: tuple[Endpoint, ...] = (
    Endpoint("422 body + CORS", "POST", "/items", body=b'{"name":"x"}', description="missing field",
             extra_headers=PRODUCTION_HEADERS),
    Endpoint("404 + CORS", "GET", "/no-such-route", description="an error answer through every layer",
             extra_headers=PRODUCTION_HEADERS),
)  # fmt: skip


def checked_requests(middleware: bool, variant: str = "") -> tuple[Endpoint, ...]:
    """Every request whose answer is compared with uvicorn's, on the plain or the middleware
    app, or on a production run's app (``variant``)."""
    if variant:
        return (*PRODUCTION_ENDPOINTS, *PRODUCTION_PROBES)
    if middleware:
        return (*MIDDLEWARE_ENDPOINTS, *MIDDLEWARE_PROBES)
    return (*ENDPOINTS, *PROBES)
