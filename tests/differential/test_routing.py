"""Routing: order, routers, mounts, redirect_slashes in both directions, 404/405 and HEAD."""

from __future__ import annotations

import pytest
from apps import routing
from support.compare import PairClients, Req

from .conftest import pair_fixture

pair = pair_fixture(routing.create_app)
pair_no_redirect = pair_fixture(routing.create_app_no_redirect)

REQUESTS = [
    Req("GET", "/users/me", id="static route before param route"),
    Req("GET", "/users/42"),
    Req("GET", "/users/", id="empty param 404 or redirect"),
    Req("GET", "/slash/"),
    Req("GET", "/slash", id="redirect adds slash"),
    Req("GET", "/slash?a=1&b=%20", id="redirect adds slash keeps query"),
    Req("GET", "/noslash"),
    Req("GET", "/noslash/", id="redirect removes slash"),
    Req("GET", "/noslash/?x=y", id="redirect removes slash keeps query"),
    Req("POST", "/noslash/", id="POST to slash variant of GET route"),
    Req("POST", "/post-only", id="POST redirect adds slash"),
    Req("GET", "/post-only/", id="405 on slash route"),
    Req("GET", "/post-only", id="GET to POST route without slash"),
    Req("GET", "/methods"),
    Req("PUT", "/methods"),
    Req("DELETE", "/methods", id="405 two routes same path"),
    Req("GET", "/multi"),
    Req("POST", "/multi"),
    Req("DELETE", "/multi"),
    Req("PATCH", "/multi", id="405 api_route methods"),
    Req("HEAD", "/multi", id="HEAD not in api_route methods"),
    Req("GET", "/with-head"),
    Req("HEAD", "/with-head", id="HEAD explicit"),
    Req("HEAD", "/users/me", id="HEAD on GET-only FastAPI route"),
    Req("OPTIONS", "/options"),
    Req("OPTIONS", "/users/me", id="OPTIONS 405"),
    Req("PATCH", "/patch/3"),
    Req("PURGE", "/users/me", id="unknown method"),
    Req("GET", "/starlette"),
    Req("HEAD", "/starlette", id="HEAD on starlette GET Route"),
    Req("POST", "/starlette", id="405 starlette route"),
    Req("GET", "/api/v1/things"),
    Req("GET", "/api/v1/things/7"),
    Req("GET", "/api/v1/things/x"),
    Req("GET", "/api/v1/"),
    Req("GET", "/api/v1", id="router root without slash"),
    Req("GET", "/api/v1/nested/deep/a/b/c/d"),
    Req("GET", "/api/v1/nested/deep/a/", id="empty path convertor nested"),
    Req("GET", "/sub/hello", id="mounted sub app"),
    Req("GET", "/sub/hello/", id="mounted sub app redirect"),
    Req("GET", "/sub/nope", id="mounted sub app 404"),
    Req("GET", "/sub", id="mount without trailing slash"),
    Req("GET", "/raw/any/path", id="mounted raw asgi"),
    Req("POST", "/raw", id="mounted raw asgi root"),
    Req("GET", "/nope", id="404"),
    Req("GET", "/nope/", id="404 with slash"),
    Req("POST", "/nope", id="404 POST"),
    Req("GET", "/", id="404 root"),
    Req("GET", "/USERS/me", id="case sensitive"),
    Req("GET", "/users/me%2F", id="encoded trailing slash"),
    Req("GET", "/users/%20", id="space param"),
    Req("GET", "/users/me;x=1", id="matrix param"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_routing(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_routing_without_redirect_slashes(pair_no_redirect: PairClients, req: Req) -> None:
    pair_no_redirect.compare(req)


def test_redirect_adds_slash(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/slash?a=1"))
    assert answer.status == 307
    assert answer.header("location") == "http://127.0.0.1:<PORT>/slash/?a=1"


def test_redirect_removes_slash(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/noslash/"))
    assert answer.status == 307
    assert answer.header("location") == "http://127.0.0.1:<PORT>/noslash"


def test_no_redirect_when_disabled(pair_no_redirect: PairClients) -> None:
    assert pair_no_redirect.compare(Req("GET", "/slash")).status == 404
    assert pair_no_redirect.compare(Req("GET", "/noslash/")).status == 404


def test_405_lists_allowed_methods(pair: PairClients) -> None:
    answer = pair.compare(Req("PATCH", "/multi"))
    assert answer.status == 405
    assert answer.header("allow") == "DELETE, GET, POST"


def test_head_has_headers_but_no_body(pair: PairClients) -> None:
    get = pair.compare(Req("GET", "/with-head"))
    head = pair.compare(Req("HEAD", "/with-head"))
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-length") == get.header("content-length") == str(len(get.body))
