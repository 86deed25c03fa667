"""The benchmark's FastAPI app with no server at all: each endpoint's ASGI call awaited in a loop
(uvloop, one process, pinned where the servers run), for the time the app itself takes per
request. No ASGI server can answer faster than that, so ``1 / req/s`` minus it is what a server
adds per request; the report uses it to compare the ASGI servers where the app's own work
dominates.

Run as ``python -m bench.app_alone ENDPOINT...``: prints ``{name: microseconds}`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.endpoints import Endpoint, endpoint_by_name

WARMUP_CALLS = 200
BUDGET_S = 1.0  # per endpoint and round
ROUNDS = 3  # the median round counts, as the servers' tables take their median run


class AppAloneError(RuntimeError):
    """The app answered a measured endpoint with something other than 200."""


def _scope(endpoint: Endpoint) -> dict[str, Any]:
    path, _, query = endpoint.target.partition("?")
    headers = [(b"host", b"127.0.0.1"), *((k.lower().encode(), v.encode()) for k, v in endpoint.headers.items())]
    if endpoint.body is not None:
        headers.append((b"content-length", str(len(endpoint.body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": endpoint.method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _time_endpoint(app: Any, endpoint: Endpoint) -> float:
    """Microseconds per call, the median of :data:`ROUNDS` rounds (the fastest would pick the
    machine's best moment, which the servers' median runs do not get)."""
    body = endpoint.body or b""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def calls(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await app(_scope(endpoint), receive, send)
        return time.perf_counter() - started

    await calls(WARMUP_CALLS)
    if set(statuses) != {200}:
        raise AppAloneError(f"{endpoint.name}: the app answered {sorted(set(statuses))}, not 200")
    per_call = await calls(WARMUP_CALLS) / WARMUP_CALLS
    n = max(10, int(BUDGET_S / per_call))
    return statistics.median([await calls(n) for _ in range(ROUNDS)]) / n * 1e6


async def measure(endpoints: Sequence[Endpoint]) -> dict[str, float]:
    from bench.apps.fastapi_app import app

    return {e.name: await _time_endpoint(app, e) for e in endpoints}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.app_alone", description=__doc__)
    parser.add_argument("endpoints", nargs="+", help="endpoint names, as --endpoints takes them")
    args = parser.parse_args(argv)
    endpoints = [endpoint_by_name(name) for name in args.endpoints]
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    print(json.dumps(run(measure(endpoints))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
