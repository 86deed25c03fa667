"""CORSMiddleware, every option, against uvicorn + stock Starlette.

Preflights (allowed and each kind of failure, edge cases of the request headers), simple
requests with and without ``Origin``, and responses that come from elsewhere than the
endpoint (404/405, ``HTTPException``, validation 422, unhandled 500, redirects, streams).

Starlette 1.10 details the native implementation must reproduce, among others:

* a simple response gets ``Vary: Origin`` whenever it does not echo an explicit origin,
  even when the request has no ``Origin`` at all;
* with an ``Origin`` (allowed or not) the static "simple" headers are set anyway:
  ``Access-Control-Allow-Credentials`` and ``Access-Control-Expose-Headers`` appear on
  answers to disallowed origins too; they replace the endpoint's own values;
* the origin regex is applied with ``re.fullmatch`` to the latin-1 decoded header;
* a preflight is ``OPTIONS`` + ``Origin`` + an ``Access-Control-Request-Method`` header,
  even an empty one; failures are listed in a fixed order in a 400's body;
* the 500 from ``ServerErrorMiddleware`` (outside user middleware) has no CORS headers.
"""

from __future__ import annotations

from typing import Any

import pytest
from apps import middleware_cors as apps
from support.compare import PairClients, Req
from support.native_middleware import expect_native

from .conftest import pair_fixture

list_pair = pair_fixture(apps.create_list_app)
defaults_pair = pair_fixture(apps.create_defaults_app)
nothing_pair = pair_fixture(apps.create_nothing_app)
wildcard_pair = pair_fixture(apps.create_wildcard_app)
wildcard_credentials_pair = pair_fixture(apps.create_wildcard_credentials_app)
wildcard_origins_pair = pair_fixture(apps.create_wildcard_origins_only_app)
regex_pair = pair_fixture(apps.create_regex_app)
regex_features_pair = pair_fixture(apps.create_regex_features_app)
private_network_pair = pair_fixture(apps.create_private_network_app)

GOOD = apps.GOOD
LOCAL = apps.LOCAL
BAD = "https://evil.example"
ACRM = "access-control-request-method"
ACRH = "access-control-request-headers"
ACRPN = "access-control-request-private-network"


def preflight(
    origin: str | bytes | None,
    method: str | None = "GET",
    headers: str | None = None,
    path: str = "/data",
    extra: list[tuple[str, Any]] | None = None,
    id: str = "",
) -> Req:
    h: list[tuple[str, Any]] = []
    if origin is not None:
        h.append(("origin", origin))
    if method is not None:
        h.append((ACRM, method))
    if headers is not None:
        h.append((ACRH, headers))
    h.extend(extra or [])
    return Req(
        "OPTIONS",
        path,
        headers=h,
        id=id or f"preflight {origin!r} {method!r} {headers!r} {path}",
    )


def simple(
    origin: str | bytes | None,
    path: str = "/data",
    method: str = "GET",
    id: str = "",
    **kw: Any,
) -> Req:
    headers = list(kw.pop("headers", []))
    if origin is not None:
        headers.insert(0, ("origin", origin))
    return Req(
        method,
        path,
        headers=headers,
        id=id or f"{method} {path} origin={origin!r}",
        **kw,
    )


def _responses_from_everywhere(origin: str) -> list[Req]:
    """Simple requests whose answers come from each layer inside the middleware."""
    o = origin
    return [
        simple(o, "/items/3?q=x", id=f"typed params {o}"),
        simple(o, "/items/abc", id=f"validation 422 path {o}"),
        simple(
            o,
            "/items",
            "POST",
            json={"name": "n", "price": 1.5},
            id=f"pydantic body 201 {o}",
        ),
        simple(o, "/items", "POST", json={"name": 1}, id=f"validation 422 body {o}"),
        simple(
            o,
            "/items/7",
            "PUT",
            json={"name": "n", "price": 2},
            id=f"sync PUT {o}",
        ),
        simple(o, "/items/7", "DELETE", id=f"204 {o}"),
        simple(o, "/http-error", id=f"HTTPException with headers {o}"),
        simple(o, "/boom", id=f"unhandled 500 has no CORS headers {o}"),
        simple(o, "/nope", id=f"404 {o}"),
        simple(o, "/only-get", "POST", id=f"405 {o}"),
        simple(o, "/redirect", id=f"redirect {o}"),
        simple(o, "/stream", id=f"streaming {o}"),
        simple(o, "/vary", id=f"Vary merged {o}"),
        simple(o, "/two-vary", id=f"two Vary headers merged {o}"),
        simple(o, "/own-cors-headers", id=f"endpoint's own CORS headers {o}"),
        simple(o, "/echo", "HEAD", id=f"HEAD {o}"),
        simple(o, "/echo", "PATCH", id=f"PATCH not in allow_methods {o}"),
        simple(o, "/options-route", "OPTIONS", id=f"OPTIONS route, no ACRM {o}"),
    ]


# ---------------------------------------------------------------------------------------------
# Explicit lists, credentials, expose_headers, max_age=0
# ---------------------------------------------------------------------------------------------

LIST_REQUESTS = [
    simple(None, id="no Origin: Vary: Origin anyway"),
    simple(None, "/vary", id="no Origin, Vary merged"),
    simple(GOOD),
    simple(LOCAL, headers=[("cookie", "a=b")], id="allowed origin with cookie"),
    simple(BAD, id="disallowed origin still gets credentials and expose headers"),
    simple("", id="empty Origin"),
    simple("null", id="null Origin"),
    simple(GOOD + "/", id="trailing slash is another origin"),
    simple("HTTPS://GOOD.EXAMPLE", id="origin comparison is case-sensitive"),
    simple(GOOD + ":443", id="explicit default port is another origin"),
    simple(
        None,
        headers=[("origin", BAD), ("origin", GOOD)],
        id="repeated Origin: first one counts (disallowed first)",
    ),
    simple(
        None,
        headers=[("origin", GOOD), ("origin", BAD)],
        id="repeated Origin: first one counts (allowed first)",
    ),
    simple(GOOD, "/data", "POST", headers=[("content-type", "text/plain")], content=b"x"),
    simple(GOOD, "/echo", "POST", content=b"", id="Request-using route sees Origin"),
    *_responses_from_everywhere(GOOD),
    *_responses_from_everywhere(BAD),
    # preflights
    preflight(GOOD),
    preflight(LOCAL, "POST", "X-Custom"),
    preflight(GOOD, "PUT", "x-custom, content-type", id="preflight list of allowed headers"),
    preflight(GOOD, "PUT", "X-MIXED-CASE", id="preflight header case-insensitive"),
    preflight(GOOD, "POST", "Accept, Accept-Language, Content-Language", id="safelisted"),
    preflight(GOOD, "POST", "X-Custom, X-Custom, x-custom", id="duplicate request headers"),
    preflight(GOOD, "POST", "X-Custom  ,  content-type", id="whitespace around names"),
    preflight(GOOD, "POST", "X-Custom,, Content-Type", id="blank entry fails"),
    preflight(GOOD, "POST", "X-Custom,", id="trailing comma fails"),
    preflight(GOOD, "POST", "", id="empty request headers fails"),
    preflight(GOOD, "POST", "X-Custom, ,x-custom", id="blank entry between commas fails"),
    preflight(GOOD, "GET", "X-Other", id="disallowed header"),
    preflight(GOOD, "DELETE", id="disallowed method"),
    preflight(GOOD, "get", id="method comparison is case-sensitive"),
    preflight(GOOD, "", id="empty ACRM is a preflight that fails"),
    preflight(BAD, id="disallowed origin"),
    preflight(BAD, "DELETE", "X-Other", id="every failure listed"),
    preflight(
        BAD,
        "DELETE",
        "X-Other",
        extra=[(ACRPN, "true")],
        id="every failure including private network",
    ),
    preflight(GOOD, extra=[(ACRPN, "true")], id="private network not allowed"),
    preflight("", id="empty origin preflight"),
    preflight("null", id="null origin preflight"),
    preflight(GOOD, path="/nope", id="preflight to unknown path"),
    preflight(GOOD, path="/only-get", id="preflight to GET-only path"),
    preflight(GOOD, "PUT", path="/only-get", id="preflight PUT to GET-only path"),
    preflight(GOOD, path="/options-route", id="preflight shadows OPTIONS route"),
    preflight(GOOD, path="/boom", id="preflight never reaches the endpoint"),
    preflight(GOOD, path="/items/abc?x=1", id="preflight with query string"),
    preflight(None, id="OPTIONS with ACRM but no Origin is not a preflight"),
    preflight(None, path="/options-route", id="ACRM without Origin reaches OPTIONS route"),
    preflight(GOOD, None, id="OPTIONS without ACRM is not a preflight (405)"),
    preflight(GOOD, None, path="/options-route", id="OPTIONS without ACRM reaches route"),
    preflight(
        None,
        extra=[("origin", BAD), ("origin", GOOD)],
        id="preflight repeated Origin: first counts",
    ),
    preflight(
        GOOD,
        None,
        extra=[(ACRM, "DELETE"), (ACRM, "GET")],
        id="preflight repeated ACRM: first counts",
    ),
    preflight(
        GOOD,
        "POST",
        None,
        extra=[(ACRH, "X-Custom"), (ACRH, "X-Other")],
        id="preflight repeated ACRH: first counts",
    ),
    preflight(GOOD, "POST", "X-Custom", extra=[("cookie", "a=b")], id="preflight cookie"),
    Req("OPTIONS", "/data", id="plain OPTIONS"),
    Req("GET", "/echo", headers={ACRM: "GET"}, id="GET with ACRM is not a preflight"),
    Req(
        "GET",
        "/echo",
        headers={"origin": GOOD, ACRM: "GET"},
        id="GET with Origin and ACRM is simple",
    ),
]


@pytest.mark.parametrize("req", LIST_REQUESTS, ids=Req.label)
def test_cors_lists(list_pair: PairClients, req: Req) -> None:
    list_pair.compare(req)


def test_lists_preflight_headers(list_pair: PairClients) -> None:
    ok = list_pair.compare(preflight(GOOD, "PUT", "X-Custom"))
    assert ok.status == 200 and ok.body == b"OK"
    assert ok.header("access-control-allow-origin") == GOOD
    assert ok.header("access-control-allow-credentials") == "true"
    assert ok.header("access-control-max-age") == "0"
    assert ok.header("access-control-allow-methods") == "GET, POST, PUT"
    assert ok.header("access-control-allow-headers") == (
        "Accept, Accept-Language, Content-Language, Content-Type, X-Custom, X-Mixed-Case, content-type, x-custom"
    )
    failed = list_pair.compare(preflight(BAD, "DELETE", "X-Other", extra=[(ACRPN, "true")]))
    assert failed.status == 400
    assert failed.body == b"Disallowed CORS origin, method, headers, private-network"


def test_lists_simple_headers(list_pair: PairClients) -> None:
    allowed = list_pair.compare(simple(GOOD, "/vary"))
    assert allowed.header("access-control-allow-origin") == GOOD
    assert allowed.header("vary") == "Accept-Language, Origin"
    assert allowed.header("access-control-expose-headers") == "X-Exposed, X-Request-Id"
    no_origin = list_pair.compare(simple(None))
    assert no_origin.header("vary") == "Origin"
    assert no_origin.header("access-control-allow-credentials") is None
    disallowed = list_pair.compare(simple(BAD))
    assert disallowed.header("access-control-allow-origin") is None
    assert disallowed.header("access-control-allow-credentials") == "true"
    boom = list_pair.compare(simple(GOOD, "/boom"))
    assert boom.status == 500 and boom.header("access-control-allow-origin") is None


# ---------------------------------------------------------------------------------------------
# Defaults (only allow_origins) and no options at all
# ---------------------------------------------------------------------------------------------

DEFAULTS_REQUESTS = [
    simple(GOOD),
    simple(BAD),
    simple(None),
    simple(GOOD, "/vary"),
    simple(GOOD, "/http-error"),
    preflight(GOOD, id="GET is the default method"),
    preflight(GOOD, "HEAD", id="HEAD is not"),
    preflight(GOOD, "POST", id="POST is not"),
    preflight(GOOD, "GET", "Content-Type, accept", id="safelisted headers allowed"),
    preflight(GOOD, "GET", "X-Custom", id="other header refused"),
    preflight(BAD),
    preflight(GOOD, extra=[(ACRPN, "true")], id="private network refused"),
]

NOTHING_REQUESTS = [
    simple(GOOD),
    simple(None),
    simple("", id="empty origin"),
    preflight(GOOD),
    preflight("", "", "", id="all empty"),
    simple(GOOD, "/items/abc", id="422"),
]


@pytest.mark.parametrize("req", DEFAULTS_REQUESTS, ids=Req.label)
def test_cors_defaults(defaults_pair: PairClients, req: Req) -> None:
    defaults_pair.compare(req)


@pytest.mark.parametrize("req", NOTHING_REQUESTS, ids=Req.label)
def test_cors_no_options(nothing_pair: PairClients, req: Req) -> None:
    nothing_pair.compare(req)


# ---------------------------------------------------------------------------------------------
# "*" everywhere, with and without credentials
# ---------------------------------------------------------------------------------------------

WILDCARD_REQUESTS = [
    simple(BAD),
    simple(None),
    simple("", id="empty origin"),
    simple(BAD, headers=[("cookie", "session=1")], id="any origin with cookie"),
    *_responses_from_everywhere(BAD),
    preflight(BAD, "DELETE", "X-Anything, X-Else"),
    preflight(BAD, "PURGE", id="method not in ALL_METHODS"),
    preflight(BAD, "QUERY", id="QUERY is in Starlette 1.x ALL_METHODS"),
    preflight(BAD, "TRACE", id="TRACE is not"),
    preflight(BAD, "", id="empty ACRM fails even with *"),
    preflight(BAD, "GET", "X-Spaced  ,x-lower,X-UPPER", id="headers echoed verbatim"),
    preflight(BAD, "GET", "", id="empty ACRH echoed as empty"),
    preflight(BAD, "GET", "a,,b", id="blank entries echoed"),
    preflight(BAD, "GET", id="no ACRH: no Allow-Headers"),
    preflight("", id="empty origin preflight"),
    preflight(BAD, extra=[(ACRPN, "true")], id="private network refused"),
    preflight(BAD, path="/nope", id="unknown path"),
]

WILDCARD_CREDENTIALS_REQUESTS = [
    simple(BAD, id="origin echoed instead of *"),
    simple(None, id="no origin"),
    simple("", id="empty origin echoed"),
    simple(BAD, "/vary", id="vary merged"),
    simple(BAD, "/two-vary", id="two vary merged"),
    simple(BAD, "/own-cors-headers", id="own CORS headers replaced"),
    simple(BAD, "/boom", id="500 has none"),
    simple(BAD, "/http-error"),
    simple(BAD, "/items/abc", id="422"),
    preflight(BAD, "PATCH", "X-Anything"),
    preflight("", id="empty origin preflight echoed"),
    preflight(BAD, "GET", "", id="empty ACRH"),
    preflight(BAD, "CONNECT", id="CONNECT not allowed"),
]

WILDCARD_ORIGINS_REQUESTS = [
    simple(BAD),
    simple(None),
    simple(BAD, "/own-cors-headers", id="own Allow-Origin replaced by *"),
    preflight(BAD, "DELETE"),
    preflight(BAD, "POST", id="POST not listed"),
    preflight(BAD, "GET", "X-Custom", id="header not allowed"),
    preflight(BAD, "GET", "content-type", id="safelisted header allowed"),
]


@pytest.mark.parametrize("req", WILDCARD_REQUESTS, ids=Req.label)
def test_cors_wildcard(wildcard_pair: PairClients, req: Req) -> None:
    wildcard_pair.compare(req)


@pytest.mark.parametrize("req", WILDCARD_CREDENTIALS_REQUESTS, ids=Req.label)
def test_cors_wildcard_credentials(wildcard_credentials_pair: PairClients, req: Req) -> None:
    wildcard_credentials_pair.compare(req)


@pytest.mark.parametrize("req", WILDCARD_ORIGINS_REQUESTS, ids=Req.label)
def test_cors_wildcard_origins_only(wildcard_origins_pair: PairClients, req: Req) -> None:
    wildcard_origins_pair.compare(req)


def test_wildcard_answers(wildcard_pair: PairClients, wildcard_credentials_pair: PairClients) -> None:
    plain = wildcard_pair.compare(preflight(BAD, "DELETE", "X-A"))
    assert plain.header("access-control-allow-origin") == "*"
    assert plain.header("access-control-allow-headers") == "X-A"
    assert plain.header("access-control-allow-methods") == ("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, QUERY")
    assert plain.header("access-control-max-age") == "3600"
    simple_answer = wildcard_pair.compare(simple(BAD))
    assert simple_answer.header("access-control-allow-origin") == "*"
    assert simple_answer.header("vary") == "Origin"
    creds = wildcard_credentials_pair.compare(simple(BAD))
    assert creds.header("access-control-allow-origin") == BAD
    assert creds.header("access-control-allow-credentials") == "true"


# ---------------------------------------------------------------------------------------------
# allow_origin_regex
# ---------------------------------------------------------------------------------------------

CAFE_UTF8 = "https://café.example.org".encode()
REGEX_REQUESTS = [
    simple("https://app.example.org", id="regex match"),
    simple("https://a.b.example.org", id="regex match nested"),
    simple("https://listed.example", id="list match besides the regex"),
    simple("https://example.org", id="regex no match"),
    simple("http://app.example.org", id="regex wrong scheme"),
    simple("https://app.example.org.evil.com", id="fullmatch: suffix refused"),
    simple("xhttps://app.example.org", id="fullmatch: prefix refused"),
    simple("https://app.example.org/", id="fullmatch: trailing slash refused"),
    simple("https://APP.EXAMPLE.ORG", id="regex is case-sensitive"),
    simple("https://word.example.net", id="second alternative"),
    simple("https://two.words.example.net", id="\\w does not match a dot"),
    simple("https://word.example.net.evil", id="fullmatch on second alternative"),
    simple(CAFE_UTF8, id="non-ASCII origin (utf-8 bytes) matches ."),
    simple("https://caf\xe9.example.net".encode("latin-1"), id="latin-1 byte is \\w"),
    simple("https://xn--caf-dma.example.org", id="punycode origin"),
    simple(
        "https://caf\xe9.example.com".encode("latin-1"),
        id="non-ASCII origin no match",
    ),
    preflight("https://x.example.org", "POST", "X-Custom"),
    preflight(CAFE_UTF8, "POST", id="non-ASCII origin preflight echoed"),
    preflight("https://x.example.org.evil", "POST", id="preflight fullmatch"),
    preflight("https://evil.com", "POST"),
    preflight("https://listed.example", "GET", "x-custom"),
]

REGEX_FEATURES_REQUESTS = [
    simple("https://app.example.com", id="look-ahead allows"),
    simple("https://evil.example.com", id="look-ahead refuses"),
    simple("https://evilx.example.com", id="look-ahead refuses prefix"),
    simple("https://xevil.example.com", id="look-ahead allows later evil"),
    simple("HTTPS://APP.EXAMPLE.COM", id="scoped (?i) flag"),
    simple("https://app.example.com.evil.org", id="fullmatch with alternation"),
    simple("http://localhost:3000", id="second alternative"),
    simple("http://local:8080", id="optional group"),
    simple("http://localhost:300", id="three digits refused"),
    simple("http://LOCALHOST:3000", id="flag scoped to first alternative"),
    simple("https://app.example.com", "/vary", id="credentials with vary"),
    simple(None, id="no origin"),
    preflight("https://app.example.com", "GET", id="allowed"),
    preflight("https://evil.example.com", "GET", id="refused"),
    preflight("http://localhost:3000", "POST", id="method refused"),
]


@pytest.mark.parametrize("req", REGEX_REQUESTS, ids=Req.label)
def test_cors_regex(regex_pair: PairClients, req: Req) -> None:
    regex_pair.compare(req)


@pytest.mark.parametrize("req", REGEX_FEATURES_REQUESTS, ids=Req.label)
def test_cors_regex_features(regex_features_pair: PairClients, req: Req) -> None:
    regex_features_pair.compare(req)


def test_regex_fullmatch_and_non_ascii(regex_pair: PairClients, regex_features_pair: PairClients) -> None:
    cafe = regex_pair.compare(simple(CAFE_UTF8))
    # the header goes back byte for byte (latin-1 round trip of the utf-8 bytes)
    assert cafe.header("access-control-allow-origin") == CAFE_UTF8.decode("latin-1")
    suffix = regex_pair.compare(simple("https://app.example.org.evil.com"))
    assert suffix.header("access-control-allow-origin") is None
    alternation = regex_features_pair.compare(simple("https://app.example.com.evil.org"))
    assert alternation.header("access-control-allow-origin") is None
    upper = regex_features_pair.compare(simple("HTTPS://APP.EXAMPLE.COM"))
    assert upper.header("access-control-allow-origin") == "HTTPS://APP.EXAMPLE.COM"


# ---------------------------------------------------------------------------------------------
# allow_private_network
# ---------------------------------------------------------------------------------------------

PRIVATE_NETWORK_REQUESTS = [
    preflight(GOOD, extra=[(ACRPN, "true")], id="private network allowed"),
    preflight(GOOD, extra=[(ACRPN, "false")], id="any value counts"),
    preflight(GOOD, extra=[(ACRPN, "")], id="empty value counts"),
    preflight(GOOD, id="without the request header"),
    preflight(BAD, extra=[(ACRPN, "true")], id="allowed network, bad origin"),
    preflight(GOOD, "PUT", "X-Other", extra=[(ACRPN, "true")], id="other failures"),
    preflight(GOOD, "POST", "x-custom", extra=[(ACRPN, "true")], id="everything ok"),
    simple(GOOD, headers=[(ACRPN, "true")], id="simple request ignores it"),
]


@pytest.mark.parametrize("req", PRIVATE_NETWORK_REQUESTS, ids=Req.label)
def test_cors_private_network(private_network_pair: PairClients, req: Req) -> None:
    private_network_pair.compare(req)


def test_private_network_answer(private_network_pair: PairClients) -> None:
    answer = private_network_pair.compare(preflight(GOOD, extra=[(ACRPN, "true")]))
    assert answer.status == 200
    assert answer.header("access-control-allow-private-network") == "true"
    assert answer.header("vary") == (
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
    )


# ---------------------------------------------------------------------------------------------
# Tier
# ---------------------------------------------------------------------------------------------

#: Per pair, whether the native tier serves the route: every one does. Python-only regex
#: syntax (look-ahead) has no equivalent in Rust's regex crate, so that app's CORSMiddleware
#: runs in Python, its own class, with the route native under it.
PAIRS = {
    "list_pair": True,
    "defaults_pair": True,
    "nothing_pair": True,
    "wildcard_pair": True,
    "wildcard_credentials_pair": True,
    "wildcard_origins_pair": True,
    "regex_pair": True,
    "regex_features_pair": True,
    "private_network_pair": True,
}


@pytest.mark.parametrize("pair_name", list(PAIRS))
def test_native_tier(request: pytest.FixtureRequest, pair_name: str) -> None:
    """A typed route behind CORSMiddleware: native once ``MIDDLEWARE_NATIVE`` is on."""
    pair = request.getfixturevalue(pair_name)
    probe = simple(GOOD, "/items/5?q=native")
    expect_native(pair, probe, request, native=PAIRS[pair_name])
