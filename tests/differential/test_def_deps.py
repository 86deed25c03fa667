"""``async def`` endpoints with plain ``def`` dependencies, against uvicorn + stock FastAPI: the
engine solves a run of them in one thread-pool hop; the answers, errors, the order they run in,
caching, contextvars, the thread they run on and ``yield`` dependencies' exit order must be
FastAPI's."""

from __future__ import annotations

import itertools

import pytest
from apps import def_deps
from support.compare import PairClients, Req

from .conftest import pair_fixture

pair = pair_fixture(def_deps.create_app)
_keys = itertools.count()

REQUESTS = [
    Req("GET", "/user"),
    Req("GET", "/user?user=ann"),
    Req("GET", "/user?user=forbidden", id="HTTPException in a def dependency"),
    Req("GET", "/user?user=crash", id="unhandled error in a def dependency: 500"),
    Req("GET", "/order?user=bo&limit=3", headers={"x-tenant": "acme"}),
    Req("GET", "/order?limit=0", id="422 in a def dependency"),
    Req("GET", "/order?user=forbidden", id="HTTPException before an async dependency"),
    Req("GET", "/thread"),
    Req("GET", "/lead-param?page=2&limit=3", id="def dependencies, then the endpoint's own parameter"),
    Req("GET", "/lead-param?page=x", id="422 in the endpoint's own parameter after def dependencies"),
    Req("GET", "/lead-param?page=x&limit=0", id="422 in def dependencies and the endpoint: both, in order"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_def_dependencies(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_order_cache_and_contextvars(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/order?user=bo&limit=3", headers={"x-tenant": "acme"}))
    assert answer.json()["events"] == [
        "db on_loop=False",
        "user bo tenant=none scratch=unset",
        "flags 3 scratch=unset",
        "tenant acme",
        "counted tenant=acme",
        "counted tenant=acme",
    ]
    assert answer.json()["counts"] == [5, 6]


def test_def_dependencies_never_run_on_the_loop(pair: PairClients) -> None:
    assert pair.compare(Req("GET", "/thread")).json() == {"other_thread": True}
    assert pair.compare(Req("GET", "/user")).json()["events"][0] == "db on_loop=False"


def test_yield_dependencies_beside_def_ones_exit_in_order(pair: PairClients) -> None:
    key = f"yield-{next(_keys)}"
    answer = pair.compare(Req("GET", "/yield?user=cy", headers={"key": key}))
    assert answer.json()["events"][:3] == ["db on_loop=False", "user cy tenant=none scratch=unset", "audit enter"]
    pair.poll_until(
        Req("GET", f"/events/{key}"),
        lambda got: got.status == 200 and "sync yield exit" in got.json(),
        "sync yield exit",
    )
    final = pair.compare(Req("GET", f"/events/{key}"))
    assert final.json() == [
        "sync yield enter",
        "async yield enter",
        "endpoint",
        "async yield exit",
        "sync yield exit",
    ]
