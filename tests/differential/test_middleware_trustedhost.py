"""TrustedHostMiddleware against uvicorn + stock Starlette.

``Host`` values go through httpx where it can send them (it sends the header we give
instead of its own) and through raw sockets otherwise (no ``Host``, an empty one, two).

Starlette 1.10 details the native implementation must reproduce, among others:

* the header is parsed with ``starlette._utils.parse_host_header`` (a strict regex: no
  space, ``@``, ``/``, empty port; bracketed IPv6 literals checked with ``ipaddress``, a
  lower-case ``v`` only for IPvFuture) before any comparison; unparseable -> 400;
* the port is ignored for matching and not range-checked (``:99999`` passes), but a port
  above 65535 makes ``URL(scope=...)`` fall back to the scope's ``server`` for the
  www redirect: ``http://www.127.0.0.1:<port>/...``;
* ``*.example.com`` matches ``a.b.example.com`` and even ``.example.com``, not
  ``example.com``; ``"*"`` anywhere in the list disables every check;
* the www redirect is a 307 to ``"www." + netloc`` of the request URL: the netloc keeps
  the Host header's case and port; the path is the decoded path (``%2F`` becomes ``/``)
  re-quoted by ``RedirectResponse``.
"""

from __future__ import annotations

from typing import Any

import pytest
from apps import middleware_trustedhost as apps
from support.compare import PairClients, Req, compare_ws, recv, recv_close
from support.native_middleware import expect_native, lowercases_hosts, unreproduced
from support.wire import Wire, compare_wire

from .conftest import pair_fixture

exact_pair = pair_fixture(apps.create_exact_app)
wildcard_pair = pair_fixture(apps.create_wildcard_app)
no_redirect_pair = pair_fixture(apps.create_no_redirect_app)
any_pair = pair_fixture(apps.create_any_app)
default_pair = pair_fixture(apps.create_default_app)


def host(value: str | bytes, path: str = "/items/1?q=x", id: str = "", **kw: Any) -> Req:
    method = kw.pop("method", "GET")
    return Req(method, path, headers=[("host", value)], id=id or f"Host {value!r}", **kw)


#: Host values that ``parse_host_header`` refuses (400 unless ``"*"`` is allowed).
UNPARSEABLE = [
    host("exa mple.com", id="space"),
    host("user@example.com", id="userinfo"),
    host("example.com/evil", id="slash"),
    host("example.com?x", id="question mark"),
    host("example.com:", id="empty port"),
    host("example.com:80:80", id="two ports"),
    host("example.com:8o", id="port not digits"),
    host("::1", id="IPv6 without brackets"),
    host("[::1", id="unclosed bracket"),
    host("[zz::1]", id="invalid IPv6 literal"),
    host("[1::2::3]", id="two double colons"),
    host("[V1.abc]", id="IPvFuture with upper-case V"),
    host("ex\xe4mple.com".encode(), id="non-ASCII (utf-8 bytes)"),
    host(b"ex\xe4mple.com", id="non-ASCII (latin-1 byte)"),
]

EXACT_REQUESTS = [
    host("example.com"),
    host("EXAMPLE.COM", id="upper-case host"),
    host("Example.Com:8080", id="mixed case with port"),
    host("api.example.com", id="pattern given in mixed case"),
    host("API.EXAMPLE.COM:1", id="upper case against mixed-case pattern"),
    host("example.com:99999", id="port out of range is not checked"),
    host("example.com:0"),
    host("example.com:00080", id="leading zeros in port"),
    host("example.com.", id="trailing dot"),
    host("sub.example.com", id="subdomain of exact name"),
    host("evil.com"),
    host("127.0.0.1"),
    host("127.0.0.1:1"),
    host("[::1]"),
    host("[::1]:8080"),
    host("[0:0:0:0:0:0:0:1]", id="IPv6 compared as text"),
    host("[::ffff:127.0.0.1]", id="IPv4-mapped IPv6"),
    host("[v1.abc]", id="IPvFuture literal (parsed, not allowed)"),
    host("ex%41mple.com", id="percent in host"),
    *UNPARSEABLE,
    # www redirect
    host("other.org", id="www redirect"),
    host("other.org", "/echo/a/b?x=1&y=%20", id="www redirect keeps query"),
    host("other.org", "/echo/a%2Fb%20c?q=%C3%A9", id="www redirect re-quotes path"),
    host("other.org", "/echo//double", id="www redirect double slash"),
    host("OTHER.ORG:8080", id="www redirect keeps case and port"),
    host("other.org:99999", id="www redirect with invalid port uses server"),
    host("other.org", "/items/1", method="POST", id="www redirect for POST"),
    host("other.org", "/items/1", method="HEAD", id="www redirect for HEAD"),
    host("www.www.other.org", id="only one www"),
    host("ww.other.org", id="not a www prefix"),
    # methods and bodies
    host("example.com", "/notes", method="POST", json={"text": "t"}, id="POST allowed"),
    host("evil.com", "/notes", method="POST", json={"text": "t"}, id="POST refused"),
    host("example.com", "/notes", method="POST", json={}, id="422 allowed host"),
    host("example.com", "/nope", id="404 allowed host"),
    host("evil.com", "/nope", id="404 refused host"),
    host("example.com", "/echo/x?y=1", id="Request sees Host"),
    Req("GET", "/echo/default", id="httpx default Host 127.0.0.1:port"),
]

WILDCARD_REQUESTS = [
    host("a.example.com"),
    host("A.EXAMPLE.COM", id="upper case subdomain"),
    host("a.b.example.com", id="nested subdomain"),
    host("a.example.com:8443"),
    host(".example.com", id="empty label matches the wildcard"),
    host("example.com", id="apex does not match"),
    host("evilexample.com", id="suffix without dot"),
    host("a.example.com.evil.org"),
    host("example.org", id="www redirect next to a wildcard"),
    host("www.example.org"),
    host("sub.example.org", id="not a redirect"),
    host("127.0.0.1"),
    *UNPARSEABLE[:3],
]

NO_REDIRECT_REQUESTS = [
    host("www.example.com"),
    host("WWW.EXAMPLE.COM:80"),
    host("example.com", id="www_redirect=False: 400"),
    host("example.com", "/echo/x?y=1", id="www_redirect=False with query"),
    host("127.0.0.1"),
    Req("GET", "/items/2", id="httpx default Host refused"),
]

ANY_REQUESTS = [
    host("evil.com"),
    host("example.com"),
    *UNPARSEABLE,
    host("exa mple.com", "/echo/x", id="invalid Host reaches the app"),
]


@pytest.mark.parametrize("req", EXACT_REQUESTS, ids=Req.label)
def test_trustedhost_exact(exact_pair: PairClients, req: Req) -> None:
    exact_pair.compare(req)


@pytest.mark.parametrize("req", WILDCARD_REQUESTS, ids=Req.label)
def test_trustedhost_wildcard(wildcard_pair: PairClients, req: Req) -> None:
    wildcard_pair.compare(req)


@pytest.mark.parametrize("req", NO_REDIRECT_REQUESTS, ids=Req.label)
def test_trustedhost_no_redirect(no_redirect_pair: PairClients, req: Req) -> None:
    no_redirect_pair.compare(req)


@pytest.mark.parametrize("req", ANY_REQUESTS, ids=Req.label)
def test_trustedhost_any(any_pair: PairClients, req: Req) -> None:
    any_pair.compare(req)


@pytest.mark.parametrize("req", ANY_REQUESTS, ids=Req.label)
def test_trustedhost_default(default_pair: PairClients, req: Req) -> None:
    default_pair.compare(req)


def test_redirect_and_refusal(exact_pair: PairClients) -> None:
    redirect = exact_pair.compare(host("OTHER.ORG:8080", "/echo/a%2Fb?x=1"))
    python_only = unreproduced(exact_pair.pair.engine_app)
    if python_only:  # Starlette's own code on both sides; the values below are Starlette 1.10's
        pytest.skip(f"{', '.join(python_only)} of this Starlette runs in Python (answers compared)")
    if not lowercases_hosts():  # Starlette < 1.9 (Python 3.10's 1.7): "OTHER.ORG" is refused
        pytest.skip("this Starlette does not lower-case the host; the values below are 1.9+'s (answers compared)")
    assert redirect.status == 307
    assert redirect.header("location") == "http://www.OTHER.ORG:8080/echo/a/b?x=1"
    bad_port = exact_pair.compare(host("other.org:99999", "/items/1"))
    assert bad_port.header("location") == "http://www.127.0.0.1:<PORT>/items/1"
    refused = exact_pair.compare(host("evil.com"))
    assert (refused.status, refused.body) == (400, b"Invalid host header")
    lenient_port = exact_pair.compare(host("example.com:99999"))
    assert lenient_port.status == 200


# ---------------------------------------------------------------------------------------------
# Raw sockets: no Host, an empty Host, two Hosts
# ---------------------------------------------------------------------------------------------


def raw(*headers: bytes, target: bytes = b"/echo/raw?x=1", id: str) -> Wire:
    request = b"GET " + target + b" HTTP/1.1\r\n" + b"".join(headers)
    return Wire([request + b"Connection: close\r\n\r\n"], id)


WIRE_CASES = [
    raw(id="HTTP/1.1 without Host"),
    raw(b"Host:\r\n", id="empty Host"),
    raw(b"Host: evil.com\r\n", b"Host: example.com\r\n", id="two Hosts, bad first"),
    raw(b"Host: example.com\r\n", b"Host: evil.com\r\n", id="two Hosts, good first"),
    raw(b"Host: other.org\r\n", b"Host: x\r\n", id="two Hosts, redirect first"),
    raw(b"Host: {HOST}\r\n", target=b"/echo/a%2Fb?x=%ZZ", id="odd escapes"),
    raw(b"Host: other.org\r\n", target=b"/echo/a%2Fb?x=%ZZ", id="redirect odd escapes"),
    raw(b"Host: other.org\r\n", target=b"/echo/%3F?a=b", id="redirect encoded ?"),
]


@pytest.mark.parametrize("wire", WIRE_CASES, ids=Wire.label)
def test_trustedhost_wire_exact(exact_pair: PairClients, wire: Wire) -> None:
    compare_wire(exact_pair.pair, wire)


@pytest.mark.parametrize("wire", WIRE_CASES, ids=Wire.label)
def test_trustedhost_wire_any(any_pair: PairClients, wire: Wire) -> None:
    compare_wire(any_pair.pair, wire)


def test_missing_host_is_refused(exact_pair: PairClients) -> None:
    events = compare_wire(exact_pair.pair, raw(id="no Host"))
    assert events[0][2] == 400
    assert events[1] == ("body", b"Invalid host header")


# ---------------------------------------------------------------------------------------------
# Websockets
# ---------------------------------------------------------------------------------------------


def test_websocket_allowed_host(exact_pair: PairClients) -> None:
    transcript = compare_ws(exact_pair.pair, "/ws", [recv(), recv_close()])
    assert transcript.events[0][0] == "open"


def test_websocket_refused_host(no_redirect_pair: PairClients) -> None:
    transcript = compare_ws(no_redirect_pair.pair, "/ws", [recv()])
    assert transcript.events[0][:2] == ("denied", 400)


# ---------------------------------------------------------------------------------------------
# Tier
# ---------------------------------------------------------------------------------------------

#: Per pair, a Host that it lets through to the endpoint.
PAIRS = {
    "exact_pair": "example.com",
    "wildcard_pair": "www.example.com",
    "no_redirect_pair": "www.example.com",
    "any_pair": "anything.example",
    "default_pair": "anything.example",
}


@pytest.mark.parametrize("pair_name", list(PAIRS))
def test_native_tier(request: pytest.FixtureRequest, pair_name: str) -> None:
    """A typed route behind TrustedHostMiddleware: native once ``MIDDLEWARE_NATIVE`` is on."""
    pair = request.getfixturevalue(pair_name)
    expect_native(pair, host(PAIRS[pair_name], "/items/9?q=n"), request)
