"""Starlette's standard middleware inside the app's own Python middleware, run in Rust by the
engine (issue 21; :mod:`fastrapi_compat.execute.rust_layers`), against uvicorn + stock FastAPI.

Each answer is compared (status, headers, body bytes), and so is what the Python middleware
outside saw: every message whole, headers in order and body bytes (a pure-ASGI recorder), the
response's headers as ``call_next`` returned them (an ``@app.middleware("http")``), what was
raised, the scope's session. The engine's Rust layers must have served every request (Starlette's
classes, linked below them for the cases the engine leaves to Python, are never called here).
"""

from __future__ import annotations

import json
import time
from base64 import b64encode
from collections.abc import Iterator
from typing import Any

import itsdangerous
import pytest
from apps import rust_inner
from support.compare import PairClients, Req
from support.native_middleware import expect_native, rust_layers

from fastrapi_compat.plan.compiler import compile_app

from .conftest import pair_fixture

body_recorded = pair_fixture(rust_inner.create_body_recorded)
body_read = pair_fixture(rust_inner.create_body_read)
hosts_recorded = pair_fixture(rust_inner.create_hosts_recorded)
hosts_read = pair_fixture(rust_inner.create_hosts_read)
split = pair_fixture(rust_inner.create_split)
#: How many runs of Rust layers each app's stack gets.
RUNS = {"split": 2}

GOOD = rust_inner.GOOD
MASK = (r"\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?=;)",)  # a session cookie's timestamp and signature
IDENTITY = ("accept-encoding",)


def _cookie(data: dict[str, Any], secret: str = rust_inner.SECRET) -> str:
    signed = itsdangerous.TimestampSigner(secret).sign(b64encode(json.dumps(data).encode("utf-8")))
    return "session=" + signed.decode()


BODY_REQUESTS = [
    Req("GET", "/plain", drop_headers=IDENTITY, id="no Origin, no gzip"),
    Req("GET", "/plain", headers={"origin": GOOD}, id="CORS simple, allowed origin, small body"),
    Req("GET", "/plain", headers={"origin": "https://evil.example"}, id="CORS simple, other origin"),
    Req(
        "OPTIONS",
        "/plain",
        headers={"origin": GOOD, "access-control-request-method": "GET", "access-control-request-headers": "X-A"},
        id="CORS preflight allowed",
    ),
    Req(
        "OPTIONS",
        "/plain",
        headers={"origin": "https://evil.example", "access-control-request-method": "DELETE"},
        id="CORS preflight refused",
    ),
    Req(
        "GET",
        "/big",
        headers={"origin": GOOD, "cookie": "other=1", "accept-encoding": "gzip"},
        id="CORS credentialed, gzip'd body",
    ),
    Req("GET", "/big", drop_headers=IDENTITY, id="large body, no gzip accepted (Vary only)"),
    Req("GET", "/stream", headers={"accept-encoding": "gzip", "origin": GOOD}, id="streamed, gzip'd"),
    Req("GET", "/stream", drop_headers=IDENTITY, id="streamed, identity"),
    Req("GET", "/encoded", headers={"accept-encoding": "gzip"}, id="already encoded"),
    Req("GET", "/image", headers={"accept-encoding": "gzip"}, id="excluded content type"),
    Req("POST", "/session", headers={"origin": GOOD}, mask=MASK, id="session written"),
    Req("GET", "/session", headers={"cookie": _cookie({"n": 4})}, id="session read: Vary Cookie"),
    Req("POST", "/session", headers={"cookie": _cookie({"n": 4})}, mask=MASK, id="session updated"),
    Req("DELETE", "/session", headers={"cookie": _cookie({"n": 4})}, id="session cleared"),
    Req("GET", "/session", headers={"cookie": _cookie({"n": 4}, "wrong")}, id="session with a bad signature"),
    Req("GET", "/teapot", headers={"origin": GOOD, "accept-encoding": "gzip"}, id="handled exception"),
    Req("GET", "/boom", headers={"origin": GOOD}, id="unhandled exception: 500 outside every layer"),
    Req("GET", "/background", headers={"accept-encoding": "gzip"}, id="background task after a gzip'd body"),
]

HOST_REQUESTS = [
    Req("GET", "/plain?x=1", headers={"host": "good.example"}, id="trusted host: HTTPS redirect"),
    Req("GET", "/plain", headers={"host": "a.trusted.example:8080"}, id="wildcard host with a port: redirect"),
    Req("GET", "/plain", headers={"host": "evil.example"}, id="untrusted host: 400"),
    Req("GET", "/boom", headers={"host": "good.example"}, id="redirected before the endpoint"),
]


#: Cases the engine leaves to Starlette's classes (linked below the Rust layers), per app.
PUNTS = {
    "body_recorded": [
        Req("GET", "/session", headers={"cookie": 'session="a.b.c"'}, id="quoted session cookie"),
    ],
    "hosts_recorded": [
        Req("GET", "/plain", headers={"host": "moved.example"}, id="www redirect"),
    ],
}


class _Fallbacks:
    """Counts the requests a :class:`RustLayers` handed to Starlette's classes."""

    def __init__(self, python: Any) -> None:
        self.python = python
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.python(scope, receive, send)


@pytest.fixture
def watched(request: pytest.FixtureRequest) -> Iterator[tuple[PairClients, list[_Fallbacks]]]:
    pair: PairClients = request.getfixturevalue(request.param)
    pair.compare(Req("GET", "/seen", headers={"host": "good.example"}))  # installs the layers
    layers = rust_layers(pair.pair.engine_app)
    assert len(layers) == RUNS.get(request.param, 1), "the engine did not put its Rust layers in the app's stack"
    counters = []
    for layer in layers:
        if type(layer.python) is not _Fallbacks:
            layer.python = _Fallbacks(layer.python)
        counters.append(layer.python)
    yield pair, counters


def _settle(pair: PairClients, waits_for: set[str]) -> tuple[list[Any], list[Any]]:
    """Both apps' records, once each has every entry kind in ``waits_for`` (written after the
    answer reached the client, on either server)."""
    apps = (pair.pair.reference_app, pair.pair.engine_app)
    deadline = time.monotonic() + 10
    while True:
        records = [list(rust_inner.seen(app)) for app in apps]
        if all(waits_for <= {entry["by"] for entry in record} for record in records):
            return records[0], records[1]
        assert time.monotonic() < deadline, f"records never complete: {records}"
        time.sleep(0.01)


def _same_view(
    pair: PairClients, counters: list[_Fallbacks], req: Req, reader: bool, recorded: bool = True
) -> list[Any]:
    for app in (pair.pair.reference_app, pair.pair.engine_app):
        rust_inner.seen(app).clear()
    before = [c.calls for c in counters]
    pair.compare(req)
    waits_for = {"recorder"} if recorded else set()
    if "background" in req.path:
        waits_for.add("background")
    if reader and req.path != "/boom":
        waits_for.add("reader")
    stock, engine = _settle(pair, waits_for)
    assert json.dumps(engine, indent=1).splitlines() == json.dumps(stock, indent=1).splitlines()
    assert [c.calls for c in counters] == before, "Starlette's Python classes served it, not the Rust layers"
    return stock


@pytest.mark.parametrize("watched", ["body_recorded"], indirect=True)
@pytest.mark.parametrize("req", BODY_REQUESTS, ids=Req.label)
def test_body_layers_under_a_recording_asgi_middleware(watched: Any, req: Req) -> None:
    record = _same_view(*watched, req, reader=False)
    (entry,) = [entry for entry in record if entry["by"] == "recorder"]
    # the 500 of an unhandled exception comes from ServerErrorMiddleware, outside the recorder
    expected = ("RuntimeError", False) if req.path == "/boom" else (None, True)
    assert (entry["raised"], bool(entry["messages"])) == expected


@pytest.mark.parametrize("watched", ["body_read"], indirect=True)
@pytest.mark.parametrize("req", BODY_REQUESTS, ids=Req.label)
def test_body_layers_under_a_header_reading_http_middleware(watched: Any, req: Req) -> None:
    _same_view(*watched, req, reader=True)


@pytest.mark.parametrize("watched", ["hosts_recorded"], indirect=True)
@pytest.mark.parametrize("req", HOST_REQUESTS, ids=Req.label)
def test_host_layers_under_a_recording_asgi_middleware(watched: Any, req: Req) -> None:
    _same_view(*watched, req, reader=False)


@pytest.mark.parametrize("watched", ["hosts_read"], indirect=True)
@pytest.mark.parametrize("req", HOST_REQUESTS, ids=Req.label)
def test_host_layers_under_a_header_reading_http_middleware(watched: Any, req: Req) -> None:
    _same_view(*watched, req, reader=True)


@pytest.mark.parametrize(
    "req",
    [Req("GET", "/big", headers={"origin": GOOD, "accept-encoding": "gzip"}), Req("POST", "/session", mask=MASK)],
    ids=Req.label,
)
def test_routes_stay_native_under_them(request: pytest.FixtureRequest, body_read: PairClients, req: Req) -> None:
    expect_native(body_read, req, request)


@pytest.mark.parametrize("watched", ["split"], indirect=True)
@pytest.mark.parametrize(
    "req",
    [
        Req("GET", "/big", headers={"origin": GOOD, "accept-encoding": "gzip"}, id="gzip'd inside, CORS outside"),
        Req("GET", "/stream", headers={"origin": GOOD, "accept-encoding": "gzip"}, id="streamed"),
        Req("OPTIONS", "/plain", headers={"origin": GOOD, "access-control-request-method": "GET"}, id="preflight"),
        Req("GET", "/teapot", headers={"origin": GOOD}, id="handled exception"),
    ],
    ids=Req.label,
)
def test_layers_on_both_sides_of_a_python_middleware(watched: Any, req: Req) -> None:
    outside = req.method == "OPTIONS"  # answered by CORS, outside the recorder: it never runs
    record = _same_view(*watched, req, reader=False, recorded=not outside)
    assert (record == []) is outside


@pytest.mark.parametrize(
    ("watched", "req"),
    [(name, req) for name, reqs in PUNTS.items() for req in reqs],
    indirect=["watched"],
    ids=lambda value: value if isinstance(value, str) else value.label(),
)
def test_cases_left_to_starlette_go_to_its_classes(watched: Any, req: Req) -> None:
    pair, counters = watched
    before = sum(c.calls for c in counters)
    for app in (pair.pair.reference_app, pair.pair.engine_app):
        rust_inner.seen(app).clear()
    pair.compare(req)
    stock, engine = _settle(pair, {"recorder"})
    assert engine == stock
    assert sum(c.calls for c in counters) == before + 1


def test_the_order_is_observable() -> None:
    """What the test above compares is what makes the order visible: the recorder sees the CORS
    headers and the gzip'd body; the reader sees them in ``call_next``'s response."""
    from fastrapi_compat.testclient import TestClient

    app = rust_inner.create_body_read()
    with TestClient(app) as client:
        client.get("/big", headers={"origin": GOOD, "accept-encoding": "gzip"})
    assert len(rust_layers(app)) == 1
    reader = next(entry for entry in rust_inner.seen(app) if entry["by"] == "reader")
    names = [name for name, _ in reader["headers"]]
    assert {"access-control-allow-origin", "content-encoding", "vary"} <= set(names), names
    recorder = next(entry for entry in rust_inner.seen(app) if entry["by"] == "recorder")
    assert recorder["messages"][1]["body"].startswith("1f8b")  # gzip's magic: compressed inside


def test_explain_names_the_python_middleware_next_to_them() -> None:
    compiled = compile_app(rust_inner.create_split())
    assert [(m.name, m.native, m.reason) for m in compiled.middleware] == [
        ("CORSMiddleware", True, "runs in Rust, around Recorder"),
        ("Recorder", False, "runs in Python, around the native routes"),
        ("GZipMiddleware", True, "runs in Rust, inside Recorder"),
    ]


def test_explain_says_they_run_in_rust_inside_the_python_middleware() -> None:
    compiled = compile_app(rust_inner.create_body_read())
    assert [(m.name, m.native, m.reason) for m in compiled.middleware] == [
        ("Recorder", False, "runs in Python, around the native routes"),
        ("BaseHTTPMiddleware", False, "runs in Python, around the native routes"),
        ("SessionMiddleware", True, "runs in Rust, inside BaseHTTPMiddleware"),
        ("CORSMiddleware", True, "runs in Rust, inside BaseHTTPMiddleware"),
        ("GZipMiddleware", True, "runs in Rust, inside BaseHTTPMiddleware"),
    ]
    assert compiled.under_summary == (
        "under 2 Python middleware: Recorder, BaseHTTPMiddleware; "
        "in Rust inside them: SessionMiddleware, CORSMiddleware, GZipMiddleware"
    )
