"""Path, query, header and cookie parameters, percent-encoding and unicode, repeated keys."""

from __future__ import annotations

import pytest
from apps import params
from support.compare import PairClients, Req

from .conftest import pair_fixture

pair = pair_fixture(params.create_app)

UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"

PATH_REQUESTS = [
    Req("GET", "/items/42"),
    Req("GET", "/items/42", params={"q": "hello", "short": "yes"}),
    Req("GET", "/items/42", params={"short": "maybe"}, id="bad bool"),
    Req("GET", "/items/abc", id="int path param 422"),
    Req("GET", "/items/-7"),
    Req("GET", "/items/4.0", id="float text for int"),
    Req("GET", "/items/", id="empty path param"),
    Req("GET", "/floats/3.25"),
    Req("GET", "/floats/1e3"),
    Req("GET", "/floats/nan"),
    Req("GET", "/floats/inf", id="inf float"),
    Req("GET", "/floats/x"),
    Req("GET", "/names/caf%C3%A9", id="percent-encoded unicode"),
    Req("GET", "/names/café", id="raw unicode (httpx encodes)"),
    Req("GET", "/names/%E2%9C%93%20ok", id="check mark and space"),
    Req("GET", "/names/a%2Fb", id="encoded slash in str param"),
    Req("GET", "/names/a+b", id="plus in path"),
    Req("GET", "/names/%25", id="encoded percent"),
    Req("GET", "/names/%7Ename", id="encoded tilde"),
    Req("GET", "/names/semi;colon"),
    Req("GET", "/files/a/b/c.txt"),
    Req("GET", "/files/a%2Fb/c", id="encoded slash in path param"),
    Req("GET", "/files/", id="empty path convertor"),
    Req("GET", "/files/%E6%97%A5%E6%9C%AC/%F0%9F%90%8D.py", id="unicode path convertor"),
    Req("GET", f"/uuids/{UUID}"),
    Req("GET", f"/uuids/{UUID.upper()}", id="upper-case uuid"),
    Req("GET", "/uuids/not-a-uuid"),
    Req("GET", "/conv-int/12"),
    Req("GET", "/conv-int/x12", id="int convertor no match"),
    Req("GET", "/conv-int/-1", id="int convertor negative"),
    Req("GET", "/colors/red"),
    Req("GET", "/colors/blue", id="enum 422"),
    Req("GET", "/bounded/5"),
    Req("GET", "/bounded/0"),
    Req("GET", "/bounded/11"),
    Req("GET", "/users/1/posts/abc"),
    Req("GET", "/users/x/posts/abc", id="first of two params invalid"),
    Req("GET", "/echo-path/a%20b/%C3%A9/%2F/x", id="scope path vs raw_path"),
    Req("GET", "/echo-path/dots/../up", id="dot segments"),
    Req("GET", "/echo-path//double//slashes", id="double slashes"),
]

QUERY_REQUESTS = [
    Req("GET", "/search?q=hi"),
    Req("GET", "/search?q=hello&page=2&page-size=5&exact=1"),
    Req("GET", "/search?q=hello&size=5", id="alias ignores python name"),
    Req("GET", "/search", id="missing required query"),
    Req("GET", "/search?q=h", id="too short"),
    Req("GET", "/search?q=hello-world-long", id="too long"),
    Req("GET", "/search?q=ok&page=one", id="bad int"),
    Req("GET", "/search?q=ok&exact=on"),
    Req("GET", "/search?q=ok&exact=FALSE"),
    Req("GET", "/search?q=caf%C3%A9", id="unicode query"),
    Req("GET", "/search?q=a+b", id="plus as space"),
    Req("GET", "/search?q=a%2Bb", id="encoded plus"),
    Req("GET", "/search?q=%ZZ", id="invalid percent escape"),
    Req("GET", "/search?q=%C3", id="truncated utf-8"),
    Req("GET", "/tags?tag=a&tag=b&tag=c", id="repeated keys to list"),
    Req("GET", "/tags", id="list default"),
    Req("GET", "/tags?tag=", id="empty list value"),
    Req("GET", "/tags?n=1&n=2&n=x", id="list of ints invalid"),
    Req("GET", "/tags?n=1&tag=z&n=3"),
    Req("GET", "/last?v=1&v=2&v=3", id="repeated key to scalar"),
    Req("GET", "/last?v", id="key without value"),
    Req("GET", "/last?v=", id="empty value"),
    Req("GET", "/last?=x&v=y", id="empty key"),
    Req("GET", "/last?v=1;w=2", id="semicolon"),
    Req("GET", "/filters?limit=5&tags=a&tags=b", id="query model"),
    Req("GET", "/filters?limit=0", id="query model invalid"),
    Req("GET", "/filters?offset=x&limit=500", id="query model two errors"),
    Req("GET", "/raw-query?a=1&b=2&a=3&c&d=%20&e=%E2%82%AC&f=a+b", id="raw query echo"),
    Req("GET", "/raw-query", id="no query string"),
    Req("GET", "/raw-query?", id="empty query string"),
    Req("GET", "/raw-query?x=%2F%3F%26%3D%23", id="encoded reserved chars"),
]

HEADER_REQUESTS = [
    Req("GET", "/headers"),
    Req("GET", "/headers", headers={"user-agent": "custom/1.0", "x-token": "tok"}),
    Req(
        "GET",
        "/headers",
        headers=[("x-tag", "a"), ("x-tag", "b"), ("X-Tag", "c")],
        id="repeated header to list",
    ),
    Req(
        "GET",
        "/headers",
        headers={"x_token": "underscore"},
        id="underscore not converted for x_token",
    ),
    Req(
        "GET",
        "/headers",
        headers={"strange_header": "kept"},
        id="convert_underscores False",
    ),
    Req(
        "GET",
        "/headers",
        headers={"strange-header": "dash"},
        id="convert_underscores False with dash",
    ),
    Req("GET", "/headers", headers={"x-custom-alias": "aliased"}, id="header alias"),
    Req("GET", "/headers", headers={"X-TOKEN": "UPPER"}, id="header name case"),
    Req(
        "GET",
        "/headers",
        headers={"x-token": "caf\u00e9".encode("utf-8")},
        id="non-ascii header bytes",
    ),
    Req("GET", "/required-header", id="missing required header"),
    Req("GET", "/required-header", headers={"x-api-key": "k"}),
    Req("GET", "/required-header", headers={"x-api-key": ""}, id="empty header value"),
    Req("GET", "/int-header", headers={"x-count": "7"}),
    Req("GET", "/int-header", headers={"x-count": "seven"}),
]

COOKIE_REQUESTS = [
    Req("GET", "/cookies"),
    Req("GET", "/cookies", headers={"cookie": "session=abc; ui-theme=dark; visits=3"}),
    Req(
        "GET",
        "/cookies",
        headers={"cookie": "theme=ignored"},
        id="cookie alias ignores python name",
    ),
    Req("GET", "/cookies", headers={"cookie": "visits=many"}, id="cookie 422"),
    Req(
        "GET",
        "/cookies",
        headers={"cookie": 'session="quoted value"'},
        id="quoted cookie",
    ),
    Req("GET", "/cookies", headers={"cookie": "session=a%20b"}, id="percent in cookie"),
    Req(
        "GET",
        "/cookies",
        headers={"cookie": "session=1; session=2"},
        id="repeated cookie",
    ),
    Req(
        "GET",
        "/cookies",
        headers={"cookie": "garbage;;; =x; session"},
        id="malformed cookie header",
    ),
    Req(
        "GET",
        "/cookies",
        headers=[("cookie", "session=s1"), ("cookie", "visits=2")],
        id="two cookie headers",
    ),
    Req("GET", "/required-cookie", id="missing required cookie"),
    Req("GET", "/required-cookie", headers={"cookie": "token=t"}),
    Req("GET", "/mixed/red?limit=3", headers={"x-trace": "tr", "cookie": "sid=s"}),
    Req("GET", "/mixed/blue?limit=0", id="four errors at once"),
]


@pytest.mark.parametrize("req", PATH_REQUESTS, ids=Req.label)
def test_path_params(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", QUERY_REQUESTS, ids=Req.label)
def test_query_params(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", HEADER_REQUESTS, ids=Req.label)
def test_header_params(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", COOKIE_REQUESTS, ids=Req.label)
def test_cookie_params(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_validation_error_shape(pair: PairClients) -> None:
    """The 422 is FastAPI's: a ``detail`` list naming the location of each bad field."""
    answer = pair.compare(Req("GET", "/mixed/blue?limit=0"))
    assert answer.status == 422
    locations = [tuple(error["loc"]) for error in answer.json()["detail"]]
    assert ("path", "kind") in locations
    assert ("query", "limit") in locations
    assert ("header", "x-trace") in locations
    assert ("cookie", "sid") in locations


def test_repeated_query_keys_keep_order(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/tags?tag=b&tag=a&tag=b"))
    assert answer.json()["tag"] == ["b", "a", "b"]


def test_encoded_slash_does_not_match_str_param(pair: PairClients) -> None:
    # Uvicorn decodes %2F into scope["path"], so a {name} param no longer matches.
    answer = pair.compare(Req("GET", "/names/a%2Fb"))
    assert answer.status == 404
