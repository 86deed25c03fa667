"""CORSMiddleware (preflight, simple, disallowed origins) and GZipMiddleware."""

import pytest
from apps import middleware
from support.compare import PairClients, Req
from support.native_middleware import expect_native

from .conftest import pair_fixture

cors = pair_fixture(middleware.create_cors_app)
cors_wildcard = pair_fixture(middleware.create_cors_wildcard_app)
cors_regex = pair_fixture(middleware.create_cors_regex_app)
gzip_pair = pair_fixture(middleware.create_gzip_app)

GOOD = "https://good.example"
BAD = "https://evil.example"


def preflight(
    origin: str,
    method: str = "GET",
    headers: str | None = None,
    path: str = "/data",
    id: str = "",
) -> Req:
    h = {"origin": origin, "access-control-request-method": method}
    if headers is not None:
        h["access-control-request-headers"] = headers
    return Req("OPTIONS", path, headers=h, id=id or f"preflight {origin} {method} {headers}")


CORS_REQUESTS = [
    Req("GET", "/data", id="no origin"),
    Req("GET", "/data", headers={"origin": GOOD}, id="simple allowed origin"),
    Req("GET", "/data", headers={"origin": BAD}, id="simple disallowed origin"),
    Req(
        "GET",
        "/data",
        headers={"origin": "http://localhost:3000", "cookie": "a=b"},
        id="simple with cookie",
    ),
    Req(
        "POST",
        "/data",
        headers={"origin": GOOD, "content-type": "text/plain"},
        content=b"x",
    ),
    Req("GET", "/vary", headers={"origin": GOOD}, id="vary merged"),
    Req("GET", "/error", headers={"origin": GOOD}, id="cors headers on error response"),
    Req("GET", "/nope", headers={"origin": GOOD}, id="cors headers on 404"),
    preflight(GOOD),
    preflight(GOOD, "POST", "X-Custom"),
    preflight(GOOD, "POST", "x-custom, content-type"),
    preflight(GOOD, "DELETE", id="preflight disallowed method"),
    preflight(GOOD, "GET", "X-Other", id="preflight disallowed header"),
    preflight(GOOD, "GET", "X-Custom,, X-Other", id="preflight header list with blanks"),
    preflight(BAD, id="preflight disallowed origin"),
    preflight(BAD, "DELETE", "X-Other", id="preflight everything disallowed"),
    preflight("null", id="preflight null origin"),
    preflight(GOOD, path="/nope", id="preflight to unknown path"),
    Req(
        "OPTIONS",
        "/data",
        headers={"origin": GOOD},
        id="OPTIONS without request method is not preflight",
    ),
    Req("OPTIONS", "/data", id="plain OPTIONS"),
]

WILDCARD_REQUESTS = [
    Req("GET", "/data", headers={"origin": BAD}, id="any origin"),
    Req(
        "GET",
        "/data",
        headers={"origin": BAD, "cookie": "session=1"},
        id="any origin with cookie",
    ),
    Req("GET", "/data", id="no origin"),
    preflight(BAD, "DELETE", "X-Anything, X-Else"),
    preflight(BAD, "PURGE"),
]

REGEX_REQUESTS = [
    Req("GET", "/data", headers={"origin": "https://app.example.org"}, id="regex match"),
    Req("GET", "/data", headers={"origin": "https://example.org"}, id="regex no match"),
    Req(
        "GET",
        "/data",
        headers={"origin": "http://app.example.org"},
        id="regex wrong scheme",
    ),
    Req(
        "GET",
        "/data",
        headers={"origin": "https://app.example.org.evil.com"},
        id="regex fullmatch only",
    ),
    preflight("https://x.example.org", "PUT", "X-A"),
    preflight("https://evil.com", "PUT"),
]

AE = "accept-encoding"
GZIP_REQUESTS = [
    Req("GET", "/small", headers={AE: "gzip"}, decode_body=True, id="below minimum_size"),
    Req("GET", "/exact", headers={AE: "gzip"}, decode_body=True, id="at minimum_size"),
    Req(
        "GET",
        "/large-json",
        headers={AE: "gzip"},
        decode_body=True,
        id="large json gzip",
    ),
    Req(
        "GET",
        "/large-json",
        headers={AE: "gzip, deflate, br"},
        decode_body=True,
        id="large json gzip in list",
    ),
    Req("GET", "/large-json", headers={AE: "br"}, id="large json br only"),
    Req("GET", "/large-json", headers={AE: "identity"}, id="large json identity"),
    Req(
        "GET",
        "/large-json",
        headers={AE: "x-gzip"},
        decode_body=True,
        id="x-gzip contains gzip",
    ),
    Req("GET", "/large-json", headers={AE: "GZIP"}, id="upper-case GZIP"),
    Req("GET", "/large-json", drop_headers=(AE,), id="no accept-encoding"),
    Req("GET", "/stream", headers={AE: "gzip"}, decode_body=True, id="streaming gzip"),
    Req("GET", "/stream", drop_headers=(AE,), id="streaming without accept-encoding"),
    Req(
        "GET",
        "/stream-small",
        headers={AE: "gzip"},
        decode_body=True,
        id="small stream gzip",
    ),
    Req(
        "GET",
        "/event-stream",
        headers={AE: "gzip"},
        decode_body=True,
        id="event-stream not compressed",
    ),
    Req("GET", "/already-encoded", headers={AE: "gzip"}, id="already encoded"),
    Req("GET", "/with-vary", headers={AE: "gzip"}, decode_body=True, id="vary appended"),
    Req("GET", "/empty", headers={AE: "gzip"}, decode_body=True, id="204 with gzip"),
    Req("HEAD", "/head-large", headers={AE: "gzip"}, decode_body=True, id="HEAD large"),
    Req("GET", "/nope", headers={AE: "gzip"}, decode_body=True, id="404 small"),
]


@pytest.mark.parametrize("req", CORS_REQUESTS, ids=Req.label)
def test_cors(cors: PairClients, req: Req) -> None:
    cors.compare(req)


@pytest.mark.parametrize("req", WILDCARD_REQUESTS, ids=Req.label)
def test_cors_wildcard(cors_wildcard: PairClients, req: Req) -> None:
    cors_wildcard.compare(req)


@pytest.mark.parametrize("req", REGEX_REQUESTS, ids=Req.label)
def test_cors_regex(cors_regex: PairClients, req: Req) -> None:
    cors_regex.compare(req)


@pytest.mark.parametrize("req", GZIP_REQUESTS, ids=Req.label)
def test_gzip(gzip_pair: PairClients, req: Req) -> None:
    gzip_pair.compare(req)


def test_preflight_allowed(cors: PairClients) -> None:
    answer = cors.compare(preflight(GOOD, "POST", "X-Custom"))
    assert answer.status == 200
    assert answer.header("access-control-allow-origin") == GOOD
    assert answer.header("access-control-max-age") == "600"


def test_preflight_disallowed_origin(cors: PairClients) -> None:
    answer = cors.compare(preflight(BAD))
    assert answer.status == 400
    assert answer.body == b"Disallowed CORS origin"


def test_simple_request_disallowed_origin_has_no_cors_headers(
    cors: PairClients,
) -> None:
    answer = cors.compare(Req("GET", "/data", headers={"origin": BAD}))
    assert answer.status == 200
    assert answer.header("access-control-allow-origin") is None


def test_gzip_applies_above_minimum_size(gzip_pair: PairClients) -> None:
    large = gzip_pair.compare(Req("GET", "/large-json", headers={AE: "gzip"}, decode_body=True))
    assert large.header("content-encoding") == "gzip"
    assert large.raw_length is not None and large.raw_length < len(large.body)
    small = gzip_pair.compare(Req("GET", "/small", headers={AE: "gzip"}, decode_body=True))
    assert small.header("content-encoding") is None
    plain = gzip_pair.compare(Req("GET", "/large-json", drop_headers=(AE,)))
    assert plain.header("content-encoding") is None
    assert plain.body == large.body


@pytest.mark.parametrize("pair_name", ["cors", "cors_wildcard", "cors_regex", "gzip_pair"])
def test_native_tier(request: pytest.FixtureRequest, pair_name: str) -> None:
    """A route behind CORS/GZip: native once ``MIDDLEWARE_NATIVE`` is on."""
    pair = request.getfixturevalue(pair_name)
    probe = "/large-json" if pair_name == "gzip_pair" else "/data"
    expect_native(pair, Req("GET", probe, headers={"origin": GOOD}), request)
