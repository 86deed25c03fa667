"""Concurrency semantics: the thread pool bound for ``def`` endpoints, unbounded ``async def``,
contextvars from dependencies."""

import http.client
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
from apps import concurrency
from support.compare import PairClients, Req

from .conftest import pair_fixture

pair = pair_fixture(concurrency.create_app)

_names = itertools.count()
CONCURRENT = 60


def burst(port: int, path: str) -> list[int]:
    """``CONCURRENT`` simultaneous requests, each on its own connection."""

    def one(_: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(one, range(CONCURRENT)))


@pytest.mark.parametrize(
    ("kind", "expected_max"),
    [("sync", 40), ("async", CONCURRENT)],
    ids=["def endpoints: 40 threads", "async endpoints: all at once"],
)
def test_endpoint_concurrency(pair: PairClients, kind: str, expected_max: int) -> None:
    name = f"{kind}{next(_names)}"
    path = f"/{kind}-gather/{name}?target={CONCURRENT}"
    for _side, server, _client in pair.each():
        assert burst(server.port, path) == [200] * CONCURRENT
    answer = pair.compare(Req("GET", f"/gauge/{name}"))
    assert answer.json() == {"now": 0, "max": expected_max, "calls": CONCURRENT}


@pytest.mark.parametrize("marker", ["a", "b"])
def test_contextvars_and_running_loop(pair: PairClients, marker: str) -> None:
    answer = pair.compare(Req("GET", f"/contextvars/{marker}"))
    assert answer.json() == {"marker": marker, "loop_running": True}
