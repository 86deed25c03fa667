"""Starlette's standard middleware, native, against uvicorn + stock Starlette of *this* release.

Run with an older FastAPI/Starlette first on ``sys.path`` (``tests/differential/
test_middleware_releases.py`` does, for FastAPI 0.115.0 + Starlette 0.38.6 and FastAPI 0.128.0 +
Starlette 0.50.0); any release runs them, as every answer is compared with that release's own.
Every request here must be answered by the native tier, except the few listed as possibly
punted (text the engine leaves to Python's URL handling).

Where the releases differ (see ``fastrapi_compat.plan.middleware.VERIFIED_SOURCES``): ``Vary``
for requests without ``Origin`` and how existing ``Vary`` values are joined, ``"*"`` origins
mirrored for a cookie (< 1.0) or for credentials, gzip framing (``gzip.GzipFile`` before 1.4:
the header carries the request's time, so compared bodies mask those four bytes and
``test_gzip_file_mtime`` checks the engine's), ``Vary`` for clients without gzip (0.46+),
excluded content types, 206, the host check, plain-dict sessions (< 1.0: the cookie is
rewritten on every request with a non-empty session, no ``Vary: Cookie``), ``Max-Age=0``.
"""

from __future__ import annotations

import json
import struct
import time
from base64 import b64encode
from collections import Counter
from typing import Any

import pytest
from apps import middleware_releases as apps
from itsdangerous import TimestampSigner
from support.compare import PairClients, Req, capture
from support.pairs import pair_fixture

from fastrapi_compat.plan import middleware as plan_middleware

#: The four mtime bytes of a gzip header (``GzipFile`` writes the clock's second there).
GZIP_MTIME = r"(?s)\A\x1f\x8b\x08\x00...."
#: ``.<timestamp>.<signature>`` at the end of a set-cookie value.
SIGNATURE = r"\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?=;)"
GOOD = "https://a.example"
REGEX = "https://abc.regex.example"


cors_gzip_pair = pair_fixture(apps.create_cors_gzip_app)
inner_pair = pair_fixture(apps.create_inner_cors_gzip_app)
star_pair = pair_fixture(apps.create_star_app)
credentials_pair = pair_fixture(apps.create_credentials_app)
hosts_pair = pair_fixture(apps.create_hosts_app)
redirect_pair = pair_fixture(apps.create_redirect_app)
session_pair = pair_fixture(apps.create_session_app)


def exchange(pair: PairClients, req: Req, native: bool | None = True) -> None:
    """Compare ``req``'s answers; ``native``: the engine must (True) or must not (False) have
    answered it natively (None: either, the answers being compared all the same)."""
    before = Counter(pair.pair.engine.stats())
    pair.compare(req)
    delta = Counter(pair.pair.engine.stats())
    delta.subtract(before)
    assert delta["http"] == 1, f"{req.label()}: engine counted {dict(delta)}"
    if native is not None:
        assert delta["native"] == int(native), f"{req.label()}: native={native} expected, counted {dict(delta)}"


def get(path: str, id: str, origin: str | None = None, gzip: bool = True, **headers: str) -> Req:
    h = {"accept-encoding": "gzip" if gzip else "identity", **headers}
    if origin is not None:
        h["origin"] = origin
    return Req("GET", path, headers=h, mask=(GZIP_MTIME,), id=id)


def preflight(origin: str, method: str = "GET", id: str = "", **headers: str) -> Req:
    h = {"origin": origin, "access-control-request-method": method, **headers}
    return Req("OPTIONS", "/text/10", headers=h, id=id or f"preflight {origin} {method} {headers}")


def test_release_under_test() -> None:
    """The Starlette the driver installed is the one imported (``$FASTRAPI_EXPECT_STARLETTE``)."""
    import os

    import starlette

    expected = os.environ.get("FASTRAPI_EXPECT_STARLETTE")
    assert expected is None or starlette.__version__ == expected, starlette.__file__


def test_bench_app_native() -> None:
    """The bench app with CORS + GZip is native throughout: routes and middleware."""
    from bench.apps.fastapi_app import create_app
    from fastrapi_compat.plan.compiler import compile_app

    compiled = compile_app(create_app(middleware=True))
    assert [(m.name, m.native) for m in compiled.middleware] == [("CORSMiddleware", True), ("GZipMiddleware", True)]
    assert all(route.tier == "native" and not route.under for route in compiled.routes), compiled.routes


def test_all_layers_native() -> None:
    """Each app's middleware is native on this release (none kept in Python)."""
    from fastrapi_compat.plan.compiler import compile_app

    for create in (
        apps.create_cors_gzip_app,
        apps.create_star_app,
        apps.create_credentials_app,
        apps.create_hosts_app,
        apps.create_redirect_app,
        apps.create_session_app,
    ):
        found = compile_app(create()).middleware
        assert found and all(m.native for m in found), [(m.name, m.reason) for m in found]


CORS_GZIP = [
    get("/text/50", "small, no Origin"),
    get("/text/5000", "large, no Origin"),
    get("/text/5000", "large, listed origin", GOOD),
    get("/text/5000", "regex origin", REGEX),
    get("/text/5000", "regex origin not matched whole", REGEX + ".evil"),
    get("/text/5000", "other origin", "https://b.example"),
    get("/text/5000", "client without gzip", GOOD, gzip=False),
    get("/text/50", "small, client without gzip", GOOD, gzip=False),
    get("/vary?v=Cookie&v=Accept-Language", "two Vary values of the endpoint's", GOOD),
    get("/vary?v=Cookie&v=Accept-Language", "two Vary values, no Origin"),
    get("/vary?v=Cookie&v=Accept-Language", "two Vary values, no gzip", GOOD, gzip=False),
    get("/vary?v=Cookie&size=50", "a Vary value, small body", GOOD),
    get("/stream?chunks=3&size=1000", "stream", GOOD),
    get("/stream?chunks=4&size=40000", "large stream"),
    get("/stream?chunks=1&size=10", "one-chunk stream"),
    get("/stream?chunks=3&size=1000", "stream, client without gzip", GOOD, gzip=False),
    get("/encoded", "already encoded", GOOD),
    get("/media?type=text/event-stream", "event stream"),
    get("/media?type=Text/Event-Stream;%20charset=utf-8", "event stream, other case"),
    get("/media?type=image/png", "png"),
    get("/media?type=application/grpc%2Bproto", "grpc+proto"),
    get("/partial", "206"),
    get("/json", "JSON with a cookie", GOOD, cookie="a=1"),
    preflight(GOOD, "GET", **{"access-control-request-headers": "X-Custom"}),
    preflight(REGEX, "POST"),
    preflight("https://b.example", "GET", id="preflight: origin refused"),
    preflight(GOOD, "DELETE", id="preflight: method refused"),
    preflight(GOOD, "GET", **{"access-control-request-headers": "x-other"}),
    preflight(GOOD, "GET", **{"access-control-request-private-network": "true"}),
]


@pytest.mark.parametrize("req", CORS_GZIP, ids=Req.label)
def test_cors_gzip(cors_gzip_pair: PairClients, req: Req) -> None:
    exchange(cors_gzip_pair, req)


STAR = [
    get("/text/5000", "any origin", GOOD),
    get("/text/5000", "any origin with a cookie", GOOD, cookie="a=1"),
    get("/text/5000", "no Origin"),
    get("/text/400", "below minimum_size", GOOD),
    get("/vary?v=Origin", "Vary: Origin already", GOOD),
    preflight(GOOD, "PATCH", **{"access-control-request-headers": "X-Anything, Content-Type"}),
]


def test_inner_layers_run_in_rust() -> None:
    """Under a Python middleware, this release's CORS and GZip run in Rust inside it."""
    from fastrapi_compat.plan.compiler import compile_app

    compiled = compile_app(apps.create_inner_cors_gzip_app())
    assert compiled.inner_layers is not None, compiled.under
    in_rust = {layer.name: layer.spec is not None for layer in compiled.inner_layers}
    assert in_rust == {"SawMiddleware": False, "CORSMiddleware": True, "GZipMiddleware": True}, [
        (layer.name, layer.reason) for layer in compiled.inner_layers
    ]


@pytest.mark.parametrize("req", CORS_GZIP, ids=Req.label)
def test_cors_gzip_inside_a_python_middleware(inner_pair: PairClients, req: Req) -> None:
    """The same requests, the layers inside a pure-ASGI middleware that puts the status and
    header names it was sent on the wire: this release's answers, seen from outside. (A
    preflight is answered by the CORS layer before any route: the engine counts no native
    route for it, so only its answer is compared.)"""
    exchange(inner_pair, req, native=None if req.method == "OPTIONS" else True)


@pytest.mark.parametrize("req", STAR, ids=Req.label)
def test_star_origins(star_pair: PairClients, req: Req) -> None:
    exchange(star_pair, req)


def sign(data: Any) -> str:
    return TimestampSigner(apps.SECRET).sign(b64encode(json.dumps(data).encode())).decode()


def sess(path: str, id: str, cookie: str | None = None, **headers: str) -> Req:
    h = dict(headers)
    if cookie is not None:
        h["cookie"] = cookie
    return Req("GET", path, headers=h, mask=(SIGNATURE, GZIP_MTIME), id=id)


def test_credentials_and_sessions(credentials_pair: PairClients) -> None:
    valid = f"session={sign({'user': 'alice'})}"
    empty = f"session={sign({})}"
    for req in [
        get("/text/100", "credentials: origin, no cookie", GOOD),
        get("/text/100", "credentials: origin and a cookie", GOOD, cookie="a=1"),
        get("/text/5000", "credentials: no Origin"),
        sess("/session/set?key=k&value=v", "set, no cookie", origin=GOOD),
        sess("/session/get", "read", valid),
        sess("/session/none", "untouched, valid cookie", valid),
        sess("/session/none", "untouched, empty session cookie", empty),
        sess("/session/clear", "clear a valid session", valid),
        sess("/session/clear", "clear, no cookie"),
        sess("/session/set?key=x&value=y", "set over a valid session", valid),
        sess("/session/get", "bad signature", "session=eyJ1Ijoxfq==.AAAA.BBBB"),
        Req(
            "GET",
            "/session/get",
            headers=[("cookie", "other=1"), ("cookie", valid)],
            mask=(SIGNATURE,),
            id="session cookie in a second Cookie header",
        ),
    ]:
        exchange(credentials_pair, req)


def test_session_max_age_zero(session_pair: PairClients) -> None:
    """``max_age=0``: no ``Max-Age`` before 1.8, ``Max-Age=0`` from 1.8 (the cookie is not
    read back: with ``max_age=0`` it is valid for the second it was signed in only)."""
    exchange(session_pair, sess("/session/set", "set with max_age=0"))
    exchange(session_pair, sess("/session/none", "untouched, no cookie"))


HOSTS = [
    ("example.com", True),
    ("EXAMPLE.com", True),
    ("example.com:8080", True),
    ("a.example.org", True),
    ("example.org", True),
    ("Mixed.Example", True),
    ("mixed.example", True),
    ("other.com", True),
    ("bad host", True),
    ("example.com:", True),
    ("[::1]:80", None),
]


@pytest.mark.parametrize(("host", "native"), HOSTS, ids=[h for h, _ in HOSTS])
def test_trusted_host(hosts_pair: PairClients, host: str, native: bool | None) -> None:
    exchange(hosts_pair, Req("GET", "/text/10", headers={"host": host}, id=f"Host {host!r}"), native)


def _plain_url() -> bool:
    return plan_middleware._helpers()["plain_url"]


REDIRECTS = [
    (Req("GET", "/text/10", id="the server's own Host"), True),
    (Req("GET", "/text/10?a=1&b=%20", headers={"host": "example.com"}, id="query"), True),
    (Req("GET", "/text/10", headers={"host": "example.com:80"}, id="port 80"), True),
    (Req("GET", "/text/10", headers={"host": "Example.COM:8443"}, id="other port"), True),
    (Req("GET", "/a%20b/%C3%A9", headers={"host": "example.com"}, id="escaped path"), True),
    (Req("GET", "/a%3Fb", headers={"host": "example.com"}, id="? in the path"), None),
    (Req("GET", "/text/10", headers={"host": "bad host"}, id="invalid Host"), None),
]


@pytest.mark.parametrize(("req", "native"), REDIRECTS, ids=[r.label() for r, _ in REDIRECTS])
def test_https_redirect(redirect_pair: PairClients, req: Req, native: bool | None) -> None:
    exchange(redirect_pair, req, native)


def test_plain_url_requests_punt(redirect_pair: PairClients) -> None:
    """Where this release's ``URL`` keeps the text as it is, a path with ``?`` is left to it."""
    req = Req("GET", "/a%3Fb", headers={"host": "example.com"}, id="? in the path")
    exchange(redirect_pair, req, native=not _plain_url())


def test_gzip_file_mtime(cors_gzip_pair: PairClients) -> None:
    """The engine's gzip header: ``GzipFile``'s (the request's second, OS 255) on releases
    before 1.4, zlib's (mtime 0, OS 3) after; the reference's has the same form."""
    req = get("/text/5000", "mtime")
    before = int(time.time())
    answers = [
        capture(client, server.port, Req(req.method, req.path, headers=req.headers))
        for _, server, client in cors_gzip_pair.each()
    ]
    after = int(time.time())
    (reference, engine) = answers
    assert engine.body[:4] == reference.body[:4] == b"\x1f\x8b\x08\x00"
    assert engine.body[8:10] == reference.body[8:10]
    (mtime,) = struct.unpack("<I", engine.body[4:8])
    if engine.body[9] == 0xFF:
        assert before <= mtime <= after
    else:
        assert mtime == 0
