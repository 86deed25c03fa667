"""Flat plans answer as the installed FastAPI's own handler does, on whichever generation of
request handling it has (``plan/flat_helpers.py``): run with the installed release, stock
uvicorn against the engine. With an older release installed (e.g. 0.128) this is where the
legacy generation's differences are checked: defaults validated, a body without a content
type parsed, an empty body as ``None``, response models serialized to Python first."""

from __future__ import annotations

import pytest
from apps import flat_generations
from support.compare import PairClients, Req

from fastrapi_compat.plan import internals
from fastrapi_compat.plan.compiler import compile_app

from .conftest import pair_fixture

pair = pair_fixture(flat_generations.create_app)

ITEM = {"name": "pen", "price": 2}

REQUESTS = [
    Req("GET", "/defaults"),
    Req("GET", "/defaults?ratio=2&count=4&flag=yes&name=x"),
    Req("GET", "/defaults?ratio=x", id="bad float"),
    Req("GET", "/defaults-sync"),
    Req("GET", "/defaults-sync?ratio=3&words=b&words=c"),
    Req("GET", "/lists"),
    Req("GET", "/lists?n=1&n=2", headers=[("x-tag", "a"), ("x-tag", "b")]),
    Req("GET", "/lists?n=1&n=x", id="bad list item"),
    Req("GET", "/headers", headers={"user-agent": "ua/1", "x-count": "4"}),
    Req("GET", "/headers", headers={"x-count": "four"}, id="bad header"),
    Req("POST", "/item", json=ITEM),
    Req("POST", "/item", json={"name": "pen"}, id="missing field"),
    Req("POST", "/item", id="empty body"),
    Req("POST", "/item", content=b"null", headers={"content-type": "application/json"}, id="null body"),
    Req("POST", "/item", content=b'{"name": "pen", "price": 1}', id="no content type"),
    Req(
        "POST", "/item", content=b'{"name": "pen", "price": 1}', headers={"content-type": "text/plain"}, id="text body"
    ),
    Req("POST", "/item", content=b"{bad", headers={"content-type": "application/json"}, id="bad json"),
    Req("POST", "/item", content=b"[1]", headers={"content-type": "application/vnd.x+json"}, id="list body"),
    Req("POST", "/item-optional"),
    Req("POST", "/item-optional", json=ITEM),
    Req("POST", "/embedded", json={"item": ITEM, "count": 2}),
    Req("POST", "/embedded", json={"count": 2}, id="embedded missing"),
    Req("POST", "/embedded", id="embedded empty body"),
    Req("POST", "/embedded", json=[1], id="embedded list body"),
    Req("POST", "/out", json=ITEM),
    Req("POST", "/out", json={**ITEM, "note": "ü"}),
    Req("POST", "/out-none", json=ITEM),
    Req("GET", "/out-sync"),
    Req("GET", "/out-sync?price=1.5"),
    Req("GET", "/out-invalid"),
    Req("GET", "/paging"),
    Req("GET", "/paging?limit=5&offset=2"),
    Req("GET", "/paging?limit=0", id="paging invalid"),
    Req("GET", "/deps"),
    Req("GET", "/deps?scale=3&step=2"),
    Req("GET", "/deps?scale=x&step=y", id="deps errors"),
    Req("GET", "/deps-sync?scale=1"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: r.id or f"{r.method} {r.path}")
def test_same_answer(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_every_route_has_a_flat_plan() -> None:
    """The routes above are all shapes flat plans take, on any release that has them, but for
    the query parameter model of ``/paging`` on 0.157.0-0.159.1, whose ``request_params_to_args``
    takes the route's parameter names (``FlatHelpers.param_names``): FastAPI's handler there."""
    if internals.FLAT is None:
        pytest.skip(f"no flat plans on this fastapi: {internals.FLAT_UNSUPPORTED}")
    compiled = compile_app(flat_generations.create_app())
    flat = {plan.route_like.path: plan.flat is not None for plan in compiled.plans if plan.route is not None}
    assert flat
    assert flat == {path: not (internals.FLAT.param_names and path == "/paging") for path in flat}
