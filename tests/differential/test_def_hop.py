"""``def`` dependencies of ``async def`` endpoints hop to the engine's pool
(``execute.hop.to_thread``) where FastAPI uses anyio's: against uvicorn + stock FastAPI, the
answers for errors (their headers too), contextvars an earlier dependency set, ``anyio.from_thread``
inside them, caching and ``use_cache=False``, trees mixing ``async`` and ``def`` functions, and
a dependency blocked on its thread while the loop serves other requests."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from apps import def_hop
from support.compare import Captured, PairClients, Req, assert_same, capture, make_client, poll
from support.native_middleware import expect_native

from .conftest import pair_fixture

pair = pair_fixture(def_hop.create_app)
_keys = itertools.count()

REQUESTS = [
    Req("GET", "/context", headers={"x-request-id": "abc"}, id="contextvar set by an async dependency"),
    Req("GET", "/context", id="contextvar default"),
    Req("GET", "/guarded"),
    Req("GET", "/guarded", headers={"token": "deny"}, id="HTTPException with headers"),
    Req("GET", "/guarded", headers={"token": "teapot"}, id="HTTPException with a structured detail"),
    Req("GET", "/guarded", headers={"token": "crash"}, id="unhandled error: 500"),
    Req("GET", "/guarded", headers={"token": "stop"}, id="StopIteration: 500"),
    Req("GET", "/guarded", headers={"token": "custom"}, id="the app's exception handler"),
    Req("GET", "/from-thread", id="anyio.from_thread in a def dependency"),
    Req("GET", "/cache", id="cache and use_cache=False"),
    Req("GET", "/mixed", headers={"x-request-id": "m1"}, id="async and def sub-dependencies"),
    Req("GET", "/sleep?ms=30", id="a sleeping dependency"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_def_dependency_hops(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_what_the_dependencies_saw(pair: PairClients) -> None:
    context = pair.compare(Req("GET", "/context", headers={"x-request-id": "abc"})).json()
    assert context["events"] == ["async set abc", "def read abc local=unset on_loop=False", "def again abc local=unset"]
    assert context["local"] == "unset"
    assert pair.compare(Req("GET", "/cache")).json() == {"values": [1, 1, 2, 3], "n": 3}
    got = pair.compare(Req("GET", "/from-thread")).json()["got"]
    assert got == {"run": {"value": 7, "on_loop": True}, "run_sync": 42, "on_loop": False}
    mixed = pair.compare(Req("GET", "/mixed", headers={"x-request-id": "m1"})).json()
    assert mixed["events"] == [
        "async set m1",
        "async leaf",
        "def on async a on_loop=False id=m1",
        "def leaf on_loop=False",
        "async on def d",
        "def leaf on_loop=False",
        "def on both ad da d",
    ]


@pytest.mark.parametrize("req", [Req("GET", "/context"), Req("GET", "/mixed")], ids=Req.label)
def test_native_tier(pair: PairClients, request: pytest.FixtureRequest, req: Req) -> None:
    expect_native(pair, req, request)


def _blocked_then_released(server: Any, key: str) -> Captured:
    """``/blocked`` holds its worker thread until ``/release``, sent once the dependency waits:
    that answer (and the polls before it) come from the loop meanwhile."""
    answers: list[Captured] = []
    blocked = make_client(server)
    waiter = threading.Thread(
        target=lambda: answers.append(capture(blocked, server.port, Req("GET", f"/blocked?key={key}")))
    )
    waiter.start()
    client = make_client(server)
    try:
        poll(
            lambda: capture(client, server.port, Req("GET", f"/waiting/{key}")),
            lambda answer: answer.status == 200 and answer.json() == {"waiting": True},
            "the dependency blocked on its thread",
        )
        assert capture(client, server.port, Req("GET", f"/release/{key}")).json() == {"released": True}
    finally:
        if not answers:
            client.get(f"/release/{key}")  # never leave the thread blocked
        waiter.join(30)
        client.close()
        blocked.close()
    assert len(answers) == 1
    return answers[0]


def test_a_blocked_dependency_leaves_the_loop_serving(pair: PairClients) -> None:
    key = f"gate-{next(_keys)}"
    reference = _blocked_then_released(pair.pair.reference, key)
    engine = _blocked_then_released(pair.pair.engine, key)
    assert_same("/blocked", reference, engine)
    assert reference.json() == {"released": True}
