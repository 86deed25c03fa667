"""Routes whose own ``app`` wraps the handler (issue 21): a route class's ``get_route_handler``,
per-route ``max_body_size`` (413 before and while the body is read), a wrapped Starlette
``Route``: served natively (the mirror stands for the router, the route's ``app`` runs), and
answered byte for byte as uvicorn + stock FastAPI answer."""

from __future__ import annotations

import pytest
from apps import route_apps
from support.compare import PairClients, Req
from support.native_middleware import expect_native

from fastrapi_compat.plan.compiler import compile_app

from .conftest import pair_fixture

pair = pair_fixture(route_apps.create_app)

REQUESTS = [
    Req("GET", "/timed/3", id="route class's own handler"),
    Req("GET", "/timed/x", id="422 through the route class"),
    Req("POST", "/timed", json={"name": "a"}, id="body through the route class"),
    Req("POST", "/limited", json={"name": "short"}, id="under the body limit"),
    Req("POST", "/limited", json={"name": "far too long for it"}, id="413 by Content-Length"),
    Req(
        "POST",
        "/limited",
        content=lambda: iter([b'{"name": "chunked ', b"and far too long", b'"}']),
        headers={"content-type": "application/json"},
        id="413 while reading a chunked body",
    ),
    Req("POST", "/r/limited", content=b"0123456789", id="included router's limited route"),
    Req("POST", "/r/limited", content=b"0123456789abcdefXYZ", id="413 in an included router"),
    Req("GET", "/wrapped", id="a wrapped Starlette route"),
]


if not route_apps.BODY_LIMITS:  # FastAPI < 0.163 has no per-route max_body_size
    REQUESTS = [req for req in REQUESTS if "limited" not in req.path]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_native_and_the_same(request: pytest.FixtureRequest, pair: PairClients, req: Req) -> None:
    expect_native(pair, req, request)


def test_explain() -> None:
    compiled = compile_app(route_apps.create_app())
    tiers = {(r.path, r.tier) for r in compiled.routes}
    assert {("/timed/{item_id}", "native"), ("/wrapped", "native")} <= tiers
    plans = {plan.endpoint.__name__: plan for plan in compiled.plans if plan.endpoint is not None}
    # the route class's handler runs inside FastAPI's request_response; no flat plan stands in for it
    assert plans["timed_item"].kind == "fastapi" and plans["timed_item"].flat is None
    # a body limit (or any wrapper) around request_response: the route's own app runs
    assert plans["page"].kind == "route_app"
    if route_apps.BODY_LIMITS:
        assert ("/limited", "native") in tiers
        assert plans["limited"].kind == plans["limited_in_router"].kind == "route_app"
        assert plans["limited"].flat is None
