"""Depends (yield sync/async, both scopes, cache, classes, security), BackgroundTasks, Request."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest
from apps import dependencies
from support.compare import Captured, PairClients, Req

from .conftest import pair_fixture

pair = pair_fixture(dependencies.create_app)

_keys = itertools.count()


def fresh_key(name: str) -> str:
    return f"{name}-{next(_keys)}"


def events_after(pair: PairClients, key: str, last_event: str) -> Captured:
    """Poll each server's event log for ``key`` until ``last_event`` is in it, then compare."""
    pair.poll_until(
        Req("GET", f"/events/{key}"),
        lambda answer: answer.status == 200 and last_event in answer.json(),
        f"{last_event!r} in {key} events",
    )
    return pair.compare(Req("GET", f"/events/{key}"))


def test_yield_dependencies_exit_after_response(pair: PairClients) -> None:
    key = fresh_key("yield")
    answer = pair.compare(Req("GET", "/yield", headers={"x-key": key}))
    assert answer.json()["events_so_far"] == [
        "sync enter",
        "async enter after sync-resource",
        "endpoint",
    ]
    final = events_after(pair, key, "sync exit")
    assert final.json() == [
        "sync enter",
        "async enter after sync-resource",
        "endpoint",
        "async exit",
        "sync exit",
    ]


def test_yield_with_sync_endpoint(pair: PairClients) -> None:
    key = fresh_key("sync")
    pair.compare(Req("GET", "/yield-sync-endpoint", headers={"x-key": key}))
    final = events_after(pair, key, "sync exit")
    assert final.json() == ["sync enter", "sync endpoint", "sync exit"]


def test_yield_function_scope(pair: PairClients) -> None:
    key = fresh_key("function")
    pair.compare(Req("GET", "/yield-function-scope", headers={"x-key": key}))
    final = pair.compare(Req("GET", f"/events/{key}"))
    # scope="function": the exit ran before the response was sent, so no polling is needed.
    assert final.json() == ["function enter", "endpoint", "function exit"]


def test_yield_dependency_sees_http_exception(pair: PairClients) -> None:
    key = fresh_key("error")
    answer = pair.compare(Req("GET", "/yield-http-error", headers={"x-key": key}))
    assert answer.status == 409
    final = events_after(pair, key, "sync exit")
    assert final.json() == [
        "sync enter",
        "endpoint raising",
        "sync saw HTTPException 409",
        "sync exit",
    ]


def test_dependency_cache(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/cache"))
    assert answer.json() == {"a_is_b": True, "c_is_new": True}


REQUESTS = [
    Req("GET", "/class-dep"),
    Req("GET", "/class-dep?skip=5&limit=20"),
    Req("GET", "/class-dep?limit=51", id="class dep 422"),
    Req("GET", "/guarded", headers={"x-token": "secret"}),
    Req("GET", "/guarded", headers={"x-token": "wrong"}),
    Req("GET", "/guarded", id="guard missing header"),
    Req("GET", "/bearer", headers={"authorization": "Bearer abc.def"}),
    Req("GET", "/bearer", id="bearer missing"),
    Req(
        "GET",
        "/bearer",
        headers={"authorization": "Basic abc"},
        id="bearer wrong scheme",
    ),
    Req("GET", "/bearer", headers={"authorization": "Bearer"}, id="bearer no token"),
    Req(
        "GET",
        "/basic",
        headers={"authorization": "Basic " + base64.b64encode(b"ada:lovelace").decode()},
    ),
    Req(
        "GET",
        "/basic",
        headers={"authorization": "Basic " + base64.b64encode(b"ada:l\xc3\xb6vel").decode()},
        id="basic non-ascii password",
    ),
    Req("GET", "/basic", id="basic missing"),
    Req(
        "GET",
        "/basic",
        headers={"authorization": "Basic !!notbase64"},
        id="basic invalid",
    ),
    Req("GET", "/api-key", headers={"x-api-key": "k1"}),
    Req("GET", "/api-key", id="api key missing"),
    Req("GET", "/oauth2", headers={"authorization": "Bearer tok"}),
    Req("GET", "/oauth2", id="oauth2 missing"),
    Req(
        "GET",
        "/request-info/thing?a=1&a=2&b=%C3%A9",
        headers={"x-custom": "v"},
        id="request info",
    ),
    Req("POST", "/request-info/thing", id="request info 405"),
    Req("GET", "/request-sync"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_dependencies(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_request_object(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/request-info/thing?x=1", headers={"x-custom": "v"}))
    info: dict[str, Any] = answer.json()
    assert info["client_host"] == "127.0.0.1"
    assert info["url"] == "http://127.0.0.1:<PORT>/request-info/thing?x=1"
    assert info["url_for"] == "http://127.0.0.1:<PORT>/request-info/other"
    assert ["x-custom", "v"] in info["headers"]
    assert ["host", "127.0.0.1:<PORT>"] in info["headers"]
    assert info["http_version"] == "1.1"


def test_background_tasks(pair: PairClients) -> None:
    key = fresh_key("background")
    answer = pair.compare(Req("POST", "/background/hello", headers={"x-key": key}))
    assert answer.json() == {"scheduled": "hello"}
    final = events_after(pair, key, "async task: hello")
    assert final.json() == ["task: from dependency", "task: hello", "async task: hello"]
