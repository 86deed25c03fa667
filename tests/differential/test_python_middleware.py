"""Python middleware around native routes (issue 21): a pure-ASGI class,
``@app.middleware("http")``, CORS between them (run in Rust there) and ``BaseHTTPMiddleware``, against uvicorn + stock
FastAPI. Each answer is compared, and so is what each middleware saw (``GET /seen``): the
scope as the router and route left it, the messages, the exceptions. The routes must be
answered by the native tier, under those middleware."""

from __future__ import annotations

import socket
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
    Req("GET", "/gone", id="HTTPException answered by the app's status handler (a def)"),
    Req("GET", "/sync-teapot", id="the app's def exception handler, in the thread pool"),
    Req("GET", "/stream", id="streaming through BaseHTTPMiddleware"),
    Req("GET", "/plain", headers={"origin": GOOD}, id="CORS between Python middleware"),
    Req(
        "OPTIONS",
        "/plain",
        headers={"origin": GOOD, "access-control-request-method": "GET"},
        id="preflight answered by CORS",
    ),
    Req("GET", "/background", headers={"x-mw": "raise-after"}, id="dispatch fails after call_next: no background"),
    Req("GET", "/background", headers={"x-mw": "discard"}, id="dispatch answers its own: background still runs"),
    Req("GET", "/stream", headers={"x-mw": "rebuild"}, id="dispatch reads the stream and answers a copy"),
    Req("POST", "/items", json={"name": "b"}, headers={"x-mw": "rebuild"}, id="body read thrice, answer rebuilt"),
    Req("GET", "/teapot", headers={"x-mw": "rebuild"}, id="handled exception through a rebuilding dispatch"),
    Req("GET", "/boom", headers={"x-mw": "discard"}, id="unhandled exception never reaches dispatch's return"),
    Req("GET", "/late-boom", id="a background task fails after the answer"),
    Req("GET", "/nope", id="404"),
    Req("POST", "/plain", id="405"),
]


#: What lands after the answer (a yield dependency's exit, a background task, an exception it
#: raises reaching the outer middleware), by request label: waited for on each server before
#: the records are compared.
AFTER_THE_ANSWER: dict[str, dict[str, Any]] = {
    "def endpoint, yield dependency": {"by": "session", "event": "close"},
    "dispatch answers its own: background still runs": {"by": "background", "event": "ran"},
    "a background task fails after the answer": {"by": "recorder", "raised": "RuntimeError"},
}


def _seen(pair: PairClients) -> Any:
    return pair.compare(Req("GET", "/seen", id="what the middleware saw")).json()


def _settle(pair: PairClients, label: str) -> None:
    # The outermost recorder writes its entry once the app returned, which may be after the
    # client has the whole answer: every request waits for it (on a busy machine the next
    # request could come first, on either server).
    expected = AFTER_THE_ANSWER.get(label, {"by": "recorder"})
    pair.poll_until(
        Req("GET", "/seen"),
        lambda answer: any(expected.items() <= entry.items() for entry in answer.json()),
        f"{expected} after {label!r}",
    )


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_same_answer_and_same_view_from_each_middleware(stack: PairClients, req: Req) -> None:
    stack.compare(Req("DELETE", "/seen", id="forget"))
    stack.compare(req)
    _settle(stack, req.label())
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
    Req("GET", "/gone"),
    Req("GET", "/sync-teapot"),
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
    assert route.under == "under 4 Python middleware: Recorder, BaseHTTPMiddleware, Behave, BodyPeek"
    assert [(m.name, m.native) for m in compiled.middleware] == [
        ("Recorder", False),
        ("BaseHTTPMiddleware", False),
        ("CORSMiddleware", True),
        ("Behave", False),
        ("BodyPeek", False),
    ]
    # CORS runs in Rust in the app's own stack, between its Python middleware; not around it
    assert compiled.stack is None
    reasons = {m.name: m.reason for m in compiled.middleware}
    assert reasons["CORSMiddleware"] == "runs in Rust, inside BaseHTTPMiddleware"


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


def test_a_connection_whose_app_raised_after_the_answer_is_closed(stack: PairClients) -> None:
    """uvicorn closes the transport when the app raises after its response started (here a
    background task, once the answer is out): nothing more is served on that connection."""
    stack.compare(Req("DELETE", "/seen", id="forget"))
    sockets = {}
    for side, server, _ in stack.each():
        sock = sockets[side] = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"GET /late-boom HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = b""
        while b"answered first" not in answer:
            chunk = sock.recv(65536)
            assert chunk, (side, answer)
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK"), (side, answer)
    _settle(stack, "a background task fails after the answer")  # it raised, on both servers
    for side, sock in sockets.items():
        with sock:
            try:
                sock.sendall(b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\n")
                second = sock.recv(65536)
            except OSError:  # a reset: closed too
                second = b""
        assert second == b"", (side, second[:80])


def test_a_handled_exception_after_the_answer_started(stack: PairClients) -> None:
    """The app's handler exists but the answer has started: "Caught handled exception, but
    response already started." reaches every middleware, as on stock, and the connection is
    closed."""
    stack.compare(Req("DELETE", "/seen", id="forget"))
    for side, server, _ in stack.each():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /stream-fails HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"first" in answer, (side, answer)
    stack.poll_until(
        Req("GET", "/seen"),
        lambda answer: any(entry.get("by") == "recorder" and entry.get("raised") for entry in answer.json()),
        "the recorder's note",
    )
    record = _seen(stack)  # compared between the two servers
    # The BaseHTTPMiddleware below it ends its answer once the stream fails, then raises.
    assert [entry["raised"] for entry in record if entry["by"] == "recorder"] == [None, "RuntimeError"], record
