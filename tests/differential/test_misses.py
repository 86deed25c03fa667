"""Requests no route takes (issue 21): 404, 405 and ``redirect_slashes``, answered natively,
byte for byte as uvicorn + stock FastAPI answer them, with the app's own handlers, CORS in
Rust, a Python middleware around them, a server ``root_path`` and ``redirect_slashes=False``."""

from __future__ import annotations

import pytest
from apps import misses
from support.compare import PairClients, Req
from support.native_middleware import expect_native

from fastrapi_compat.plan.compiler import compile_app

from .conftest import pair_fixture

plain = pair_fixture(misses.create_app)
handlers = pair_fixture(misses.create_app_with_handlers)
under = pair_fixture(misses.create_app_under)
no_redirect = pair_fixture(misses.create_app_no_redirect)
rooted = pair_fixture(misses.create_app_with_handlers, root_path="/prefix")

ORIGIN = {"origin": misses.ORIGIN}

MISSES = [
    Req("GET", "/nope", id="404"),
    Req("POST", "/nope/deeper?x=1", id="404 POST with a query"),
    Req("GET", "/", id="404 root"),
    Req("GET", "/nope", headers=ORIGIN, id="404 with CORS"),
    Req("DELETE", "/items/3", id="405 of the first path match"),
    Req("PATCH", "/multi", id="405 api_route methods"),
    Req("HEAD", "/multi", id="405 HEAD not listed"),
    Req("POST", "/starlette", id="405 Starlette route"),
    Req("DELETE", "/items/3", headers=ORIGIN, id="405 with CORS"),
    Req("GET", "/api/v1/things/", id="405 included router's route"),
    Req("GET", "/slash", id="redirect adds the slash"),
    Req("GET", "/slash?a=1&b=%20", id="redirect keeps the query"),
    Req("GET", "/noslash/", id="redirect removes the slash, any method"),
    Req("GET", "/noslash///", id="redirect removes every trailing slash"),
    Req("POST", "/api/v1/things", id="redirect into an included router"),
    Req("GET", "/items/x", id="422, not a miss"),
]


@pytest.mark.parametrize("req", MISSES, ids=Req.label)
def test_fastapi_handlers(request: pytest.FixtureRequest, plain: PairClients, req: Req) -> None:
    expect_native(plain, req, request)


@pytest.mark.parametrize("req", MISSES, ids=Req.label)
def test_the_apps_handlers_and_cors(request: pytest.FixtureRequest, handlers: PairClients, req: Req) -> None:
    expect_native(handlers, req, request)


@pytest.mark.parametrize("req", MISSES, ids=Req.label)
def test_under_a_python_middleware(request: pytest.FixtureRequest, under: PairClients, req: Req) -> None:
    expect_native(under, req, request)


@pytest.mark.parametrize("req", MISSES, ids=Req.label)
def test_without_redirect_slashes(request: pytest.FixtureRequest, no_redirect: PairClients, req: Req) -> None:
    expect_native(no_redirect, req, request)


@pytest.mark.parametrize("req", MISSES, ids=Req.label)
def test_under_a_root_path(request: pytest.FixtureRequest, rooted: PairClients, req: Req) -> None:
    expect_native(rooted, req, request)  # the client asks without the prefix (a proxy stripped it)


def test_the_answers_are_the_routers(handlers: PairClients, rooted: PairClients) -> None:
    """What the answers are, beyond being equal on both servers."""
    missing = handlers.compare(Req("GET", "/nope"))
    assert missing.status == 404 and missing.json()["missing"] == "/nope"
    assert missing.json()["route"] == "None"  # the router matched nothing: no route in the scope
    not_allowed = handlers.compare(Req("PATCH", "/multi"))
    assert not_allowed.status == 405 and not_allowed.header("allow") == "DELETE, GET, POST"
    assert not_allowed.body == b"405 Method Not Allowed multi {}"
    moved = handlers.compare(Req("GET", "/slash?a=1"))
    assert moved.status == 307 and moved.header("location") == "http://127.0.0.1:<PORT>/slash/?a=1"
    moved = rooted.compare(Req("GET", "/noslash/"))
    assert moved.status == 307 and moved.header("location") == "http://127.0.0.1:<PORT>/prefix/noslash"


def test_explain_says_misses_are_native() -> None:
    compiled = compile_app(misses.create_app_with_handlers())
    assert compiled.misses is not None and compiled.misses_reason == ""
    assert compiled.as_json()["misses"] == {"tier": "native", "reason": ""}


def test_a_router_default_of_its_own_keeps_misses_on_the_asgi_tier() -> None:
    app = misses.create_app()

    async def default(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        raise AssertionError

    app.router.default = default  # type: ignore[method-assign]
    compiled = compile_app(app)
    assert compiled.misses is None
    assert compiled.misses_reason == "the router has a default app of its own"
