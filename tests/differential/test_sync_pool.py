"""``def`` routes whose whole plan the engine runs on its thread pool (``FlatPlan.offload``),
against uvicorn + stock FastAPI: answers, errors for the app's handlers, responses that go back
to the loop (streaming, background tasks), contextvars, ``anyio.from_thread``, overrides."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from apps import sync_pool
from support.compare import PairClients, Req
from support.native_middleware import expect_native
from support.servers import engine_is_uvicorn

from .conftest import pair_fixture

pair = pair_fixture(sync_pool.create_app)
overridden_pair = pair_fixture(sync_pool.create_app_with_overrides)

REQUESTS = [
    Req("GET", "/plain"),
    Req("GET", "/items/3?q=x&limit=5"),
    Req("GET", "/items/3"),
    Req("GET", "/items/x?limit=0", id="422: path and query"),
    Req("GET", "/items/3?limit=abc", id="422: query"),
    Req("GET", "/many?tag=a&tag=b&tag=c", id="list query"),
    Req("GET", "/many?tag=%C3%A9t%C3%A9+x", id="escaped query"),
    Req("GET", "/deps?page=2"),
    Req("GET", "/deps?page=zero", id="422 in a dependency"),
    Req("GET", "/deps", headers={"token": "deny"}, id="HTTPException in a dependency"),
    Req("GET", "/deps", headers={"token": "teapot"}, id="handled exception in a dependency"),
    Req("GET", "/cookie", headers={"cookie": "session_id=abc"}),
    Req("GET", "/model/4", id="response_model filters"),
    Req("GET", "/model/x", id="422 with a response model"),
    Req("GET", "/annotated/5", id="return annotation as model"),
    Req("GET", "/exclude-unset"),
    Req("GET", "/invalid-response", id="ResponseValidationError: 500"),
    Req("GET", "/created"),
    Req("GET", "/no-content"),
    Req("GET", "/html"),
    Req("GET", "/response", id="a Response returned"),
    Req("GET", "/http-error"),
    Req("GET", "/teapot", id="async handler by class"),
    Req("GET", "/kettle", id="def handler by class"),
    Req("GET", "/unhandled", id="unhandled: 500"),
    Req("GET", "/stream", id="streaming response (sent from the loop)"),
    Req("GET", "/context/abc", id="contextvar set in a def dependency"),
    Req("GET", "/thread", id="no running loop in the thread"),
    Req("GET", "/from-thread", id="anyio.from_thread back into the loop"),
    Req("HEAD", "/plain"),
    Req("GET", "/factory", id="default_factory: called per request, not at compile time"),
    Req("GET", "/factory?value=7&limit=2", id="default_factory not called when given"),
    Req("GET", "/factory-async", id="default_factory, async route"),
    Req("GET", "/factory", id="default_factory, again"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_sync_pool(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_background_task_runs_after_the_response(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/background?name=first"))
    assert answer.json() == {"scheduled": "first"}
    pair.poll_until(Req("GET", "/log"), lambda a: a.json() == {"log": ["first"]}, "the background task")


@pytest.mark.parametrize(
    "req",
    [Req("GET", "/plain"), Req("GET", "/deps?page=3"), Req("GET", "/items/x", id="422"), Req("GET", "/unhandled")],
    ids=Req.label,
)
def test_native_tier(pair: PairClients, request: pytest.FixtureRequest, req: Req) -> None:
    expect_native(pair, req, request)


@pytest.mark.skipif(engine_is_uvicorn(), reason="the engine's own pool")
def test_runs_on_the_engine_pool(pair: PairClients) -> None:
    """The requests really ran on the pool (FastAPI's own handler would use anyio's)."""
    server = pair.pair.engine

    def name(_: int) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request("GET", "/thread-name")
            return str(json.loads(connection.getresponse().read())["name"])
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as threads:
        names = set(threads.map(name, range(32)))
    assert names and all(n.startswith("fastrapi-compat worker") for n in names), names


@pytest.mark.parametrize(
    "req",
    [Req("GET", "/deps?page=2"), Req("GET", "/deps", headers={"token": "deny"}, id="override ignores the header")],
    ids=Req.label,
)
def test_dependency_overrides(overridden_pair: PairClients, req: Req) -> None:
    answer = overridden_pair.compare(req)
    assert answer.json()["token"] == "overridden"
