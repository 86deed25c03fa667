"""Apps built with ``from fastrapi_compat import FastAPI``; dependency overrides; late routes."""

from collections.abc import Iterator
from typing import Any

import pytest
from support.compare import PairClients, Req
from support.servers import server_pair


def _pair(factory_name: str) -> Iterator[PairClients]:
    # Imported here, not at module level: fastrapi_compat needs the built engine, and a failing
    # import should fail these tests, not the collection of the whole directory.
    from apps import compat

    with server_pair(getattr(compat, factory_name)) as servers:
        clients = PairClients(servers)
        try:
            yield clients
        finally:
            clients.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[PairClients]:
    yield from _pair("create_app")


@pytest.fixture(scope="module")
def pair_mw() -> Iterator[PairClients]:
    yield from _pair("create_app_with_middleware")


REQUESTS = [
    Req("GET", "/"),
    Req("GET", "/sync"),
    Req("GET", "/orders/1"),
    Req("GET", "/orders/2"),
    Req("GET", "/orders/x"),
    Req(
        "POST",
        "/orders",
        json={"item": "pear", "quantity": 2},
        headers={"x-user": "ada"},
    ),
    Req(
        "POST",
        "/orders",
        json={"item": "pear", "quantity": 0},
        headers={"x-user": "ada"},
        id="order 422",
    ),
    Req("POST", "/orders", json={"item": "pear", "quantity": 2}, id="order 401"),
    Req("GET", "/search?q=a&q=b&limit=3"),
    Req("GET", "/whoami", headers={"x-user": "grace"}),
    Req("GET", "/request?a=1&a=2"),
    Req("GET", "/missing"),
    Req("DELETE", "/"),
    Req("GET", "/openapi.json"),
    Req("GET", "/docs"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_compat_app(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_compat_app_with_middleware(pair_mw: PairClients, req: Req) -> None:
    answer = pair_mw.compare(req)
    assert answer.header("x-request-path") == req.path.split("?")[0]


def test_app_is_the_subclass(pair: PairClients) -> None:
    import fastapi

    from fastrapi_compat import FastAPI

    assert isinstance(pair.pair.engine_app, FastAPI)
    assert isinstance(pair.pair.engine_app, fastapi.FastAPI)


def test_dependency_overrides_are_honoured_per_request(pair: PairClients) -> None:
    from apps import compat

    def fake_user() -> str:
        return "override"

    def fake_db() -> dict[int, Any]:
        return {}

    apps = (pair.pair.reference_app, pair.pair.engine_app)
    before = pair.compare(Req("GET", "/whoami"))
    assert before.status == 401
    try:
        for app in apps:
            app.dependency_overrides[compat.current_user] = fake_user
            app.dependency_overrides[compat.get_db] = fake_db
        assert pair.compare(Req("GET", "/whoami")).json() == {"user": "override"}
        assert pair.compare(Req("GET", "/orders/1")).status == 404
    finally:
        for app in apps:
            app.dependency_overrides.clear()
    assert pair.compare(Req("GET", "/whoami")).status == 401
    assert pair.compare(Req("GET", "/orders/1")).status == 200


def test_route_added_while_serving(pair: PairClients) -> None:
    """Routes added after startup are served (the engine rebuilds its route mirror)."""
    assert pair.compare(Req("GET", "/late/5")).status == 404

    async def late(n: int) -> dict[str, int]:
        return {"late": n}

    for app in (pair.pair.reference_app, pair.pair.engine_app):
        app.add_api_route("/late/{n}", late, methods=["GET"])

    answer = pair.compare(Req("GET", "/late/5"))
    assert answer.json() == {"late": 5}
    assert pair.compare(Req("GET", "/late/x")).status == 422
