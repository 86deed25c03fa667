"""SessionMiddleware against uvicorn + stock Starlette.

Session cookies are ``base64(json.dumps(session)) + "." + timestamp + "." + signature``
(itsdangerous ``TimestampSigner``, one-second resolution). Compared answers mask the
timestamp and signature (``SIGNATURE``) but keep the payload, the cookie's attributes and
everything else; the cross tests send a cookie written by one server to the other (and
along chains that alternate between them) and check the signature with itsdangerous.
Cookies the tests sign themselves (tampered, expired, from the future, wrong secret,
payloads that are not base64 / JSON / an object) are sent to both servers alike.

Starlette 1.10 details the native implementation must reproduce, among others:

* the payload is ``json.dumps`` with its defaults (``", "``/``": "`` separators,
  ``ensure_ascii``, insertion order, Python's float repr), standard base64 with padding;
* ``Vary: Cookie`` when the endpoint touched ``request.session`` (even only read it);
  a cookie is written when it was modified (even to an equal value) and is non-empty, a
  ``null`` cookie with a 1970 ``expires`` when it was emptied and the request carried a
  valid (even empty ``{}``) session, nothing when it was emptied but started empty;
* only ``BadSignature`` is caught: a correctly signed payload that is not base64, not
  JSON, or JSON that ``dict()`` refuses, is an unhandled error (500, no cookie); a list
  of pairs is accepted;
* ``max_age``: expired *and* future timestamps are refused; with ``max_age=None`` any
  timestamp is accepted and no ``Max-Age`` is written;
* every ``Cookie`` header is read, in order, with Starlette's ``cookie_parser`` (a later
  header or a later duplicate name wins, values unquoted, names case-sensitive; older
  Starlette releases read the first header only);
* the session is set on a 4xx answer made from ``HTTPException`` (inside the middleware),
  never on the 500 from ``ServerErrorMiddleware`` (outside).
"""

from __future__ import annotations

import json
import time
from base64 import b64decode, b64encode
from typing import Any

import pytest
from apps import middleware_sessions as apps
from itsdangerous import TimestampSigner
from support.compare import Captured, PairClients, Req, capture, compare_ws, recv
from support.native_middleware import expect_native

from .conftest import pair_fixture

default_pair = pair_fixture(apps.create_default_app)
custom_pair = pair_fixture(apps.create_custom_app)
short_pair = pair_fixture(apps.create_short_app)

SECRET = apps.SECRET
#: ``.<timestamp>.<signature>`` at the end of a set-cookie value.
SIGNATURE = r"\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?=;)"
SIDES = ("uvicorn", "engine")


def payload(data: Any) -> bytes:
    """What Starlette signs for ``data``."""
    return b64encode(json.dumps(data).encode("utf-8"))


def sign(
    data: Any = None,
    *,
    raw: bytes | None = None,
    secret: str = SECRET,
    age: int = 0,
) -> str:
    """A cookie value signed ``age`` seconds ago (negative: in the future)."""
    signer = TimestampSigner(secret)
    now = int(time.time())
    signer.get_timestamp = lambda: now - age  # type: ignore[method-assign]
    return signer.sign(payload(data) if raw is None else raw).decode()


def s(
    method: str,
    path: str,
    cookie: str | None = None,
    *,
    name: str = "session",
    id: str,
    headers: list[tuple[str, str]] | None = None,
    **kw: Any,
) -> Req:
    h = list(headers or [])
    if cookie is not None:
        h.append(("cookie", f"{name}={cookie}"))
    return Req(method, path, headers=h, mask=(SIGNATURE,), id=id, **kw)


def check(pair: PairClients, req: Req) -> Captured:
    """``pair.compare`` without httpx's cookie jars: only the cookies ``req`` names go."""
    pair.reference.cookies.clear()
    pair.engine.cookies.clear()
    return pair.compare(req)


ALICE = {"user": "alice"}
RICH = {
    "name": "café ☕",
    "n": 1.5,
    "big": 10**20,
    "none": None,
    "list": [1, "two", False],
    "nested": {"a": {"b": True}},
}

# ---------------------------------------------------------------------------------------------
# Reading, writing, modifying, clearing (default options)
# ---------------------------------------------------------------------------------------------

LIFECYCLE = [
    s("GET", "/session", id="read without cookie: Vary, no cookie"),
    s("GET", "/session", sign(ALICE), id="read valid cookie"),
    s("GET", "/session/user", sign(ALICE), id="read one key"),
    s("GET", "/untouched/3?q=x", sign(ALICE), id="untouched: no Vary"),
    s("GET", "/untouched/3", id="untouched without cookie"),
    s("GET", "/untouched-sync/3?q=x", sign(ALICE), id="def route: no Vary"),
    s("GET", "/untouched-sync/x", sign(ALICE), id="def route: 422"),
    s("POST", "/session/user?value=bob", id="write new session"),
    s("POST", "/session/user?value=bob", sign(ALICE), id="overwrite key"),
    s("POST", "/session/other?value=x", sign(ALICE), id="add key"),
    s("POST", "/session/user?value=caf%C3%A9", id="write non-ASCII (escaped JSON)"),
    s("PUT", "/session", json={"values": RICH}, id="update with rich values"),
    s("PUT", "/session", sign(RICH), json={"values": {"n": 2}}, id="update existing"),
    s("PUT", "/session", json={"values": {}}, id="update with nothing, from empty"),
    s("PUT", "/session", json={"values": {"big": "x" * 3000}}, id="3 kB session"),
    s("PUT", "/session", json={"values": 1}, id="422 leaves the session alone"),
    s("DELETE", "/session/user", sign(ALICE), id="pop last key: clearing cookie"),
    s("DELETE", "/session/missing", sign(ALICE), id="pop missing key: not modified"),
    s("DELETE", "/session/user", sign({**ALICE, "k": 1}), id="pop one of two keys"),
    s("DELETE", "/session/user", id="pop from empty"),
    s("POST", "/clear", sign(ALICE), id="clear: null cookie, expired"),
    s("POST", "/clear", id="clear from empty: no cookie"),
    s("POST", "/clear", sign({}), id="clear a valid empty session: null cookie"),
    s("POST", "/clear", "garbage", id="clear after bad cookie: no cookie"),
    s(
        "POST",
        "/setdefault/user?value=x",
        sign(ALICE),
        id="setdefault existing: no write",
    ),
    s("POST", "/setdefault/new?value=x", sign(ALICE), id="setdefault new key"),
    s("POST", "/same/user", sign(ALICE), id="same value written again"),
    s("POST", "/same/user", id="same on empty: writes null value"),
    s("POST", "/counter", sign({"count": 4, "history": [1, 2, 3, 4]}), id="counter"),
    s("POST", "/write-then-http-error", id="HTTPException: cookie still set"),
    s("POST", "/write-then-crash", id="unhandled 500: no cookie"),
    s("POST", "/write-with-cookie", id="endpoint's own cookie first"),
    s("GET", "/read-with-vary", sign(ALICE), id="Vary merged"),
    s("GET", "/nope", sign(ALICE), id="404: not accessed"),
    s("POST", "/session", sign(ALICE), id="405"),
]

BAD_COOKIES = [
    s("GET", "/session", "garbage", id="garbage"),
    s("GET", "/session", "", id="empty value"),
    s("GET", "/session", "a.b", id="one dot"),
    s("GET", "/session", "a.b.c", id="two dots"),
    s("GET", "/session", "null", id="a clearing cookie sent back"),
    s("GET", "/session", "x" + sign(ALICE)[1:], id="tampered payload"),
    s("GET", "/session", sign(ALICE)[:-1] + "A", id="tampered signature"),
    s("GET", "/session", sign(ALICE, secret="other"), id="other secret"),
    s("POST", "/session/k?value=v", "garbage", id="write after garbage: no clearing"),
    s("GET", "/session", sign(ALICE, age=3600), id="an hour old: valid for 14 days"),
    s("GET", "/session", sign(ALICE, age=15 * 86400), id="15 days old: expired"),
    s("GET", "/session", sign(ALICE, age=-86400), id="from the future: refused"),
    s("GET", "/session", sign(raw=b"!!not base64"), id="signed non-base64: 500"),
    s("GET", "/session", sign(raw=b64encode(b"{nope")), id="signed non-JSON: 500"),
    s("GET", "/untouched-sync/1", sign(raw=b64encode(b"{nope")), id="def route, signed non-JSON: 500"),
    s("GET", "/untouched-sync/1", sign([1, 2]), id="def route, signed JSON list: 500"),
    s("GET", "/session", sign([1, 2]), id="signed JSON list: 500"),
    s("GET", "/session", sign("text"), id="signed JSON string: 500"),
    s("GET", "/session", sign(None), id="signed JSON null: 500"),
    s("GET", "/session", sign([["a", 1]]), id="signed list of pairs: accepted"),
    s("GET", "/session", sign({}), id="signed empty object"),
    s(
        "GET",
        "/session",
        sign(raw=b64encode(json.dumps({"u": "é"}, ensure_ascii=False).encode())),
        id="signed raw UTF-8 JSON",
    ),
    s("GET", "/session", f'"{sign(ALICE)}"', id="quoted cookie value"),
    s(
        "GET",
        "/session",
        headers=[("cookie", f"session=garbage; session={sign(ALICE)}")],
        id="same name twice: last wins (valid)",
    ),
    s(
        "GET",
        "/session",
        headers=[("cookie", f"session={sign(ALICE)}; session=garbage")],
        id="same name twice: last wins (garbage)",
    ),
    s(
        "GET",
        "/session",
        headers=[("cookie", f"session={sign(ALICE)}"), ("cookie", "session=x")],
        id="two Cookie headers: the later one wins",
    ),
    s(
        "GET",
        "/session",
        headers=[("cookie", "a=1"), ("cookie", f"session={sign(ALICE)}")],
        id="session in second Cookie header: read",
    ),
    s(
        "GET",
        "/session",
        headers=[("cookie", f"a=1;  session = {sign(ALICE)} ; b=2")],
        id="among other cookies, spaces",
    ),
    s(
        "GET",
        "/session",
        headers=[("cookie", f"Session={sign(ALICE)}")],
        id="name is case-sensitive",
    ),
    s("GET", "/session", sign(ALICE), name="sid", id="other cookie name ignored"),
]


@pytest.mark.parametrize("req", LIFECYCLE + BAD_COOKIES, ids=Req.label)
def test_sessions_default(default_pair: PairClients, req: Req) -> None:
    check(default_pair, req)


# ---------------------------------------------------------------------------------------------
# Every option changed: sid, max_age=None, path, strict, secure, domain, partitioned
# ---------------------------------------------------------------------------------------------

CUSTOM_REQUESTS = [
    s("POST", "/session/user?value=bob", id="write: every cookie attribute"),
    s("GET", "/session", sign(ALICE), name="sid", id="read sid"),
    s("GET", "/session", sign(ALICE), id="'session' cookie ignored"),
    s("POST", "/clear", sign(ALICE), name="sid", id="clear: attributes on null cookie"),
    s("GET", "/session", sign(ALICE, age=400 * 86400), name="sid", id="no max_age"),
    s("GET", "/session", sign(ALICE, age=-3600), name="sid", id="future accepted"),
    s("GET", "/session", "garbage", name="sid", id="garbage"),
]

# Signed when the module is collected: only ages far from max_age=60 (see also
# ``test_short_max_age_recent_cookies``, which signs when it runs).
SHORT_REQUESTS = [
    s("POST", "/session/user?value=bob", id="write: Max-Age=60, samesite=none"),
    s("GET", "/session", sign(ALICE, age=3600), id="an hour old: expired"),
    s("GET", "/session", sign(ALICE, age=-86400), id="a day ahead: refused"),
    s("POST", "/clear", sign(ALICE, age=3600), id="clear expired: no cookie"),
]


@pytest.mark.parametrize("req", CUSTOM_REQUESTS, ids=Req.label)
def test_sessions_custom_options(custom_pair: PairClients, req: Req) -> None:
    check(custom_pair, req)


@pytest.mark.parametrize("req", SHORT_REQUESTS, ids=Req.label)
def test_sessions_short_max_age(short_pair: PairClients, req: Req) -> None:
    check(short_pair, req)


def test_short_max_age_recent_cookies(short_pair: PairClients) -> None:
    valid = check(short_pair, s("GET", "/session", sign(ALICE, age=30), id="30 s old"))
    assert valid.json() == ALICE
    cleared = check(short_pair, s("POST", "/clear", sign(ALICE, age=20), id="clear"))
    assert (cleared.header("set-cookie") or "").startswith("session=null;")
    future = check(short_pair, s("GET", "/session", sign(ALICE, age=-30), id="ahead"))
    assert future.json() == {}


def test_cookie_attributes(default_pair: PairClients, custom_pair: PairClients, short_pair: PairClients) -> None:
    masked = "<MASKED>"
    alice = payload({"user": "bob"}).decode()
    written = check(default_pair, s("POST", "/session/user?value=bob", id="w"))
    assert written.header("set-cookie") == (f"session={alice}{masked}; path=/; Max-Age=1209600; httponly; samesite=lax")
    assert written.header("vary") == "Cookie"
    custom = check(custom_pair, s("POST", "/session/user?value=bob", id="c"))
    assert custom.header("set-cookie") == (
        f"sid={alice}{masked}; path=/api; httponly; samesite=strict; secure; domain=example.com; partitioned"
    )
    short = check(short_pair, s("POST", "/session/user?value=bob", id="s"))
    assert short.header("set-cookie") == (f"session={alice}{masked}; path=/; Max-Age=60; httponly; samesite=none")
    cleared = check(default_pair, s("POST", "/clear", sign(ALICE), id="x"))
    assert cleared.header("set-cookie") == (
        "session=null; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; httponly; samesite=lax"
    )
    untouched = check(default_pair, s("GET", "/untouched/1", sign(ALICE), id="u"))
    assert untouched.header("vary") is None


def test_unhandled_payload_errors(default_pair: PairClients) -> None:
    for cookie in (sign(raw=b"!!not base64"), sign([1, 2]), sign(None)):
        answer = check(default_pair, s("GET", "/session", cookie, id="bad payload"))
        assert answer.status == 500 and answer.header("set-cookie") is None
    pairs = check(default_pair, s("GET", "/session", sign([["a", 1]]), id="pairs"))
    assert pairs.json() == {"a": 1}


# ---------------------------------------------------------------------------------------------
# Written by one side, read by the other
# ---------------------------------------------------------------------------------------------


def on(pair: PairClients, side: str, req: Req) -> Captured:
    """``req`` to one server only (no masking: the cookie is needed whole)."""
    client, server = (pair.reference, pair.pair.reference) if side == "uvicorn" else (pair.engine, pair.pair.engine)
    client.cookies.clear()
    answer = capture(client, server.port, req)
    assert answer.status is not None and answer.status < 500, answer.render()
    return answer


def cookie_of(answer: Captured, name: str = "session") -> str:
    values = [v for n, v in answer.headers if n == "set-cookie"]
    ours = [v for v in values if v.startswith(name + "=")]
    assert len(ours) == 1, values
    return ours[0].split(";", 1)[0].split("=", 1)[1]


def unsign(cookie: str, max_age: int | None = 60) -> Any:
    """The session in a cookie, checked with itsdangerous (signed within ``max_age`` s)."""
    data = TimestampSigner(SECRET).unsign(cookie, max_age=max_age)
    return json.loads(b64decode(data))


def plain(method: str, path: str, cookie: str | None, name: str = "session", **kw: Any) -> Req:
    headers = [("cookie", f"{name}={cookie}")] if cookie is not None else []
    return Req(method, path, headers=headers, id=f"{method} {path}", **kw)


@pytest.mark.parametrize("writer", SIDES)
def test_cookie_written_by_one_side_read_by_both(default_pair: PairClients, writer: str) -> None:
    written = on(default_pair, writer, plain("PUT", "/session", None, json={"values": RICH}))
    cookie = cookie_of(written)
    assert unsign(cookie) == RICH
    assert cookie.split(".")[0] == payload(RICH).decode()
    seen = {reader: on(default_pair, reader, plain("GET", "/session", cookie)).json() for reader in SIDES}
    assert seen == {"uvicorn": RICH, "engine": RICH}
    check(default_pair, s("GET", "/session", cookie, id="read by both, compared"))
    transcript = compare_ws(default_pair.pair, "/ws", [recv()], headers={"cookie": f"session={cookie}"})
    assert json.loads(transcript.events[1][2]) == RICH


def test_both_sides_write_the_same_payload(default_pair: PairClients) -> None:
    req = plain("PUT", "/session", sign(ALICE), json={"values": RICH})
    cookies = {side: cookie_of(on(default_pair, side, req)) for side in SIDES}
    payloads = {side: cookie.split(".")[0] for side, cookie in cookies.items()}
    assert payloads["uvicorn"] == payloads["engine"] == payload({**ALICE, **RICH}).decode()
    for cookie in cookies.values():
        assert unsign(cookie) == {**ALICE, **RICH}


@pytest.mark.parametrize("first", SIDES)
def test_alternating_chain(default_pair: PairClients, first: str) -> None:
    """Six increments, each by the other server, on the cookie the previous one wrote."""
    order = list(SIDES) if first == "uvicorn" else list(reversed(SIDES))
    cookie = None
    for step in range(6):
        side = order[step % 2]
        answer = on(default_pair, side, plain("POST", "/counter", cookie))
        expected = {"count": step + 1, "history": list(range(1, step + 2))}
        assert answer.json() == expected, f"step {step} on {side}"
        cookie = cookie_of(answer)
        assert unsign(cookie) == expected
    final = check(default_pair, s("GET", "/session", cookie, id="after the chain"))
    assert final.json() == {"count": 6, "history": [1, 2, 3, 4, 5, 6]}


@pytest.mark.parametrize("writer", SIDES)
def test_cleared_by_the_other_side(default_pair: PairClients, writer: str) -> None:
    other = SIDES[1 - SIDES.index(writer)]
    cookie = cookie_of(on(default_pair, writer, plain("POST", "/session/k?value=v", None)))
    popped = on(default_pair, other, plain("DELETE", "/session/k", cookie))
    assert popped.json() == {"popped": "v", "session": {}}
    cleared = cookie_of(popped)
    assert cleared == "null"
    after = on(default_pair, writer, plain("GET", "/session", cleared))
    assert after.json() == {}


@pytest.mark.parametrize("writer", SIDES)
def test_custom_cookie_across_sides(custom_pair: PairClients, writer: str) -> None:
    written = on(custom_pair, writer, plain("POST", "/session/user?value=bob", None))
    cookie = cookie_of(written, "sid")
    assert unsign(cookie, max_age=None) == {"user": "bob"}
    for reader in SIDES:
        seen = on(custom_pair, reader, plain("GET", "/session", cookie, name="sid"))
        assert seen.json() == {"user": "bob"}


def test_websocket_session(default_pair: PairClients) -> None:
    compare_ws(default_pair.pair, "/ws", [recv()])
    compare_ws(default_pair.pair, "/ws", [recv()], headers={"cookie": "session=bad"})


# ---------------------------------------------------------------------------------------------
# Tier
# ---------------------------------------------------------------------------------------------

PAIRS = ["default_pair", "custom_pair", "short_pair"]


@pytest.mark.parametrize("pair_name", PAIRS)
def test_native_tier(request: pytest.FixtureRequest, pair_name: str) -> None:
    """A typed route behind SessionMiddleware: native once ``MIDDLEWARE_NATIVE`` is on."""
    pair = request.getfixturevalue(pair_name)
    pair.reference.cookies.clear()
    pair.engine.cookies.clear()
    expect_native(pair, s("GET", "/untouched/4?q=n", id="native"), request)
    expect_native(pair, s("GET", "/untouched-sync/4?q=n", sign(ALICE), id="native def route"), request)
