"""Starlette's standard middleware inside a Python middleware, in process: Starlette's classes
against the engine's Rust layers (:mod:`fastrapi_compat.execute.rust_layers`) on the same
request, with a minimal ASGI endpoint below them and no server. The difference is what running
them in Rust saves (or costs) per request inside the app's stack.

Run as ``python -m bench.inner_layers [--calls N] [--rounds R]``: one line per case, the best
round's CPU microseconds per call for each side (``time.process_time``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

SMALL = b'{"message":"hello"}'
LARGE = b'{"text":"' + b"abcdefghij" * 400 + b'"}'
ORIGIN = (b"origin", b"https://good.example")
GZIP = (b"accept-encoding", b"gzip")
#: (label, layers, body, request headers)
CASES: tuple[tuple[str, tuple[str, ...], bytes, tuple[tuple[bytes, bytes], ...]], ...] = (
    ("CORS, no Origin", ("cors",), SMALL, ()),
    ("CORS, Origin", ("cors",), SMALL, (ORIGIN,)),
    ("CORS+GZip, Origin, 4 KB gzip'd", ("cors", "gzip"), LARGE, (ORIGIN, GZIP)),
    ("CORS+GZip, no Origin, small body", ("cors", "gzip"), SMALL, (GZIP,)),
)


def layers_under_python(kinds: Sequence[str], body: bytes) -> Any:
    """The :class:`RustLayers` of an app with ``kinds`` inside a ``BaseHTTPMiddleware``, its
    Starlette instances linked below it, both ending in an endpoint answering ``body``."""
    from fastapi import FastAPI
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware

    from fastrapi_compat.execute.rust_layers import RustLayers, install
    from fastrapi_compat.plan.compiler import compile_app

    app = FastAPI()
    if "gzip" in kinds:
        app.add_middleware(GZipMiddleware, minimum_size=500)
    if "cors" in kinds:
        app.add_middleware(CORSMiddleware, allow_origins=["https://good.example"], allow_methods=["*"])

    async def passthrough(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    app.middleware_stack = app.build_middleware_stack()
    inner = compile_app(app).inner_layers
    if inner is None or install(app, inner) != 1:
        raise RuntimeError("the engine did not put its Rust layers in this app's stack")
    layer = app.middleware_stack
    while type(layer) is not RustLayers:
        layer = layer.app

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    layer.app = endpoint
    return layer


def _scope(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/plain", "raw_path": b"/plain", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers], "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1),
    }  # fmt: skip


async def per_call(app: Any, headers: Sequence[tuple[bytes, bytes]], calls: int) -> float:
    """CPU microseconds per ``app`` call."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(min(calls, 500)):
        await app(_scope(headers), receive, send)
    start = time.process_time()
    for _ in range(calls):
        await app(_scope(headers), receive, send)
    return (time.process_time() - start) / calls * 1e6


async def measure(calls: int, rounds: int) -> list[tuple[str, float, float]]:
    """Per case: (label, Starlette's µs, the Rust layers' µs), the best of ``rounds``."""
    results = []
    for label, kinds, body, headers in CASES:
        rust = layers_under_python(kinds, body)
        python = min([await per_call(rust.python, headers, calls) for _ in range(rounds)])
        native = min([await per_call(rust, headers, calls) for _ in range(rounds)])
        results.append((label, python, native))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inner_layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round (20,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best counts (5)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be positive")
    print(f"CPU µs per call, best of {args.rounds} × {args.calls:,} (endpoint included)")
    for label, python, native in asyncio.run(measure(args.calls, args.rounds)):
        print(f"{label:34} Starlette {python:6.2f}   Rust {native:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
