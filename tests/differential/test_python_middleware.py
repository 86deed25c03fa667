"""Python middleware around native routes (issue 21): a pure-ASGI class,
``@app.middleware("http")``, CORS in Python and ``BaseHTTPMiddleware``, against uvicorn + stock
FastAPI. Each answer is compared, and so is what each middleware saw (``GET /seen``): the
scope as the router and route left it, the messages, the exceptions. The routes must be
answered by the native tier, under those middleware."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from apps import python_middleware
from support.compare import PairClients, Req
from support.native_middleware import engine_stats, expect_native

from fastrapi_compat.plan.compiler import compile_app

from .conftest import pair_fixture

stack = pair_fixture(python_middleware.create_app)
rewrite = pair_fixture(python_middleware.create_rewrite_app)

GOOD = "https://good.example"

REQUESTS = [
    Req("GET", "/items/3?q=x", id="path, query, Depends reading request.state"),
    Req("GET", "/items/nope", id="422 from a path parameter"),
    Req("GET", "/sync/4", id="def endpoint, yield dependency"),
    Req("POST", "/items", json={"name": "a", "price": 2.5}, id="body read by the middleware and the endpoint"),
    Req("POST", "/items", content=b"{bad", headers={"content-type": "application/json"}, id="malformed JSON"),
    Req("GET", "/http-error", id="HTTPException with headers"),
    Req("GET", "/teapot", id="the app's exception handler"),
    Req("GET", "/boom", id="unhandled: 500 from ServerErrorMiddleware"),
    Req("GET", "/stream", id="streaming through BaseHTTPMiddleware"),
    Req("GET", "/plain", headers={"origin": GOOD}, id="CORS in Python"),
    Req(
        "OPTIONS",
        "/plain",
        headers={"origin": GOOD, "access-control-request-method": "GET"},
        id="preflight answered by CORS",
    ),
    Req("GET", "/nope", id="404"),
    Req("POST", "/plain", id="405"),
]


def _seen(pair: PairClients) -> Any:
    return pair.compare(Req("GET", "/seen", id="what the middleware saw")).json()


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_same_answer_and_same_view_from_each_middleware(stack: PairClients, req: Req) -> None:
    stack.compare(Req("DELETE", "/seen", id="forget"))
    stack.compare(req)
    record = _seen(stack)  # compared between the two servers
    assert any(entry["by"] == "recorder" for entry in record), record


def test_background_task_runs_after_the_answer(stack: PairClients) -> None:
    stack.compare(Req("DELETE", "/seen", id="forget"))
    stack.compare(Req("GET", "/background"))
    stack.poll_until(
        Req("GET", "/seen"),
        lambda answer: any(entry.get("by") == "background" for entry in answer.json()),
        "the background task",
    )


PROBES = [
    Req("GET", "/items/3?q=x"),
    Req("GET", "/sync/4"),
    Req("POST", "/items", json={"name": "a"}),
    Req("GET", "/teapot"),
    Req("GET", "/stream"),
    Req("GET", "/plain", headers={"origin": GOOD}),
]


@pytest.mark.parametrize("req", PROBES, ids=Req.label)
def test_native_under_the_python_middleware(request: pytest.FixtureRequest, stack: PairClients, req: Req) -> None:
    expect_native(stack, req, request)


def test_explain_names_the_middleware_around_native_routes() -> None:
    compiled = compile_app(python_middleware.create_app())
    route = {r.path: r for r in compiled.routes}["/items/{item_id}"]
    assert route.tier == "native"
    assert route.under == "under 3 Python middleware: Recorder, BaseHTTPMiddleware, BodyPeek"
    assert [(m.name, m.native) for m in compiled.middleware] == [
        ("Recorder", False),
        ("BaseHTTPMiddleware", False),
        ("CORSMiddleware", False),
        ("BodyPeek", False),
    ]
    assert compiled.stack is None  # nothing runs in Rust: CORS is between Python middleware


def test_a_middleware_that_changes_the_path_gets_the_router(rewrite: PairClients) -> None:
    """The engine matched ``/plain`` natively; the middleware sends the request to
    ``/items/7``: the router serves it (a plan run for the engine's match would answer
    ``plain``)."""
    before = Counter(engine_stats(rewrite))
    answer = rewrite.compare(Req("GET", "/plain", headers={"x-rewrite": "/items/7"}))
    assert answer.json() == {"item_id": 7, "q": None, "who": "nobody/3"}
    moved = Counter(engine_stats(rewrite))
    moved.subtract(before)
    assert moved["http"] == 1 and moved["native"] == 0, dict(moved)
    expect_native(rewrite, Req("GET", "/plain"))
