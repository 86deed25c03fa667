"""Stacks of Starlette's standard middleware, in different orders, against uvicorn.

Order is visible: with GZip outside CORS, CORS's ``Vary: Origin`` comes before GZip's
``Accept-Encoding`` (and the preflight's ``OK`` is compressed); with CORS outside
TrustedHost the 400 for a bad Host carries CORS headers; with GZip outside Sessions a
response whose session was touched is ``Vary: Cookie, Accept-Encoding``... Every request
goes to every stack.
"""

from __future__ import annotations

import json
import time
from base64 import b64encode
from typing import Any

import pytest
from apps import middleware_stacks as apps
from itsdangerous import TimestampSigner
from support.compare import PairClients, Req
from support.native_middleware import expect_native

from .conftest import pair_fixture

gzip_outside_cors = pair_fixture(apps.create_gzip_outside_cors_app)
cors_outside_gzip = pair_fixture(apps.create_cors_outside_gzip_app)
full = pair_fixture(apps.create_full_app)
full_reversed = pair_fixture(apps.create_full_reversed_app)
https = pair_fixture(apps.create_https_app)
constructor = pair_fixture(apps.create_constructor_app)
with_python_middleware = pair_fixture(apps.create_with_python_middleware_app)

PAIRS = [
    "gzip_outside_cors",
    "cors_outside_gzip",
    "full",
    "full_reversed",
    "https",
    "constructor",
    "with_python_middleware",
]

GOOD = apps.GOOD
BAD = "https://evil.example"
AE = "accept-encoding"
SIGNATURE = r"\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?=;)"


def _cookie(data: dict[str, Any]) -> str:
    signer = TimestampSigner(apps.SECRET)
    now = int(time.time())
    signer.get_timestamp = lambda: now  # type: ignore[method-assign]
    return signer.sign(b64encode(json.dumps(data).encode())).decode()


COOKIE = _cookie({"user": "alice"})


def r(
    method: str,
    path: str,
    *,
    origin: str | None = GOOD,
    gzip: bool = True,
    id: str,
    headers: list[tuple[str, str]] | None = None,
    **kw: Any,
) -> Req:
    h = list(headers or [])
    if origin is not None:
        h.append(("origin", origin))
    if gzip:
        h.append((AE, "gzip"))
    drop = () if gzip else (AE,)
    return Req(method, path, headers=h, drop_headers=drop, mask=(SIGNATURE,), id=id, **kw)


def preflight(origin: str, method: str, headers: str | None, id: str) -> Req:
    h = [("access-control-request-method", method)]
    if headers is not None:
        h.append(("access-control-request-headers", headers))
    return r("OPTIONS", "/items/1", origin=origin, headers=h, id=id)


REQUESTS = [
    r("GET", "/items/1?q=x", id="typed route, allowed origin, gzip"),
    r("GET", "/items/1", origin=BAD, id="disallowed origin"),
    r("GET", "/items/1", origin=None, gzip=False, id="no origin, no gzip"),
    r("GET", "/items/abc", id="422"),
    r("POST", "/items", json={"name": "n", "price": 1}, id="POST body"),
    r("GET", "/big/2000", id="Vary from endpoint, CORS and GZip"),
    r("GET", "/big/1", id="1-byte body"),
    r("HEAD", "/big/2000", id="HEAD"),
    r("GET", "/stream", id="stream"),
    preflight(GOOD, "POST", "X-Custom", id="preflight ok"),
    preflight(BAD, "PUT", "X-Other", id="preflight refused"),
    r("GET", "/items/1", headers=[("host", "evil.com")], id="bad Host"),
    r("GET", "/items/1", headers=[("host", "exa mple")], id="unparseable Host"),
    r("GET", "/items/1?q=1", headers=[("host", "example.org")], id="www redirect"),
    r("POST", "/session/user?value=bob", id="session written"),
    r(
        "GET",
        "/session",
        headers=[("cookie", f"session={COOKIE}; stack={COOKIE}")],
        id="session read",
    ),
    r("GET", "/http-error", id="HTTPException"),
    r("GET", "/boom", id="unhandled 500"),
    r("GET", "/nope", id="404"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
@pytest.mark.parametrize("pair_name", PAIRS)
def test_stack(request: pytest.FixtureRequest, pair_name: str, req: Req) -> None:
    pair: PairClients = request.getfixturevalue(pair_name)
    pair.reference.cookies.clear()
    pair.engine.cookies.clear()
    pair.compare(req)


def test_order_is_visible(
    gzip_outside_cors: PairClients,
    cors_outside_gzip: PairClients,
    full: PairClients,
    full_reversed: PairClients,
) -> None:
    big = r("GET", "/big/2000", id="big")
    assert gzip_outside_cors.compare(big).header("vary") == ("User-Agent, Origin, Accept-Encoding")
    assert cors_outside_gzip.compare(big).header("vary") == ("User-Agent, Accept-Encoding, Origin")
    ok = preflight(GOOD, "POST", "X-Custom", id="ok")
    assert gzip_outside_cors.compare(ok).header("content-encoding") == "gzip"
    assert cors_outside_gzip.compare(ok).header("content-encoding") is None
    bad_host = r("GET", "/items/1", headers=[("host", "evil.com")], id="bad host")
    outer_trusted = full.compare(bad_host)
    assert outer_trusted.header("access-control-allow-origin") is None
    assert outer_trusted.header("content-encoding") is None
    inner_trusted = full_reversed.compare(bad_host)
    assert inner_trusted.header("access-control-allow-origin") == GOOD
    assert inner_trusted.header("content-encoding") == "gzip"


PROBES = {
    "gzip_outside_cors": r("GET", "/items/2?q=n", id="native"),
    "cors_outside_gzip": r("GET", "/items/2?q=n", id="native"),
    "full": r("GET", "/items/2?q=n", id="native"),
    "full_reversed": r("GET", "/items/2?q=n", id="native"),
    "https": r("GET", "/items/2?q=n", id="native (the redirect)"),
    "constructor": r("GET", "/items/2?q=n", id="native"),
}


@pytest.mark.parametrize("pair_name", list(PROBES))
def test_native_tier(request: pytest.FixtureRequest, pair_name: str) -> None:
    """A typed route behind a stack of standard middleware: native once
    ``MIDDLEWARE_NATIVE`` is on (``with_python_middleware`` has a Python middleware in
    the stack, which keeps the ASGI tier: not probed)."""
    pair = request.getfixturevalue(pair_name)
    pair.reference.cookies.clear()
    pair.engine.cookies.clear()
    expect_native(pair, PROBES[pair_name], request)
