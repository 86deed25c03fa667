"""Lifespan state in request.state, and lifespan startup/shutdown around the server's life."""

import socket
import threading
from typing import Any

import httpx
import pytest
from apps import lifespan
from support.compare import PairClients, Req, poll
from support.servers import UvicornThread, engine_server

from .conftest import pair_fixture

pair = pair_fixture(lifespan.create_app)

REQUESTS = [
    Req("GET", "/state"),
    Req("GET", "/missing-state"),
    Req("GET", "/events", id="startup ran before serving"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_lifespan(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_state_from_lifespan(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/state"))
    assert answer.json() == {
        "greeting": "hello from lifespan",
        "items": ["a", "b"],
        "app_started": True,
    }


def test_state_objects_are_shared_between_requests(pair: PairClients) -> None:
    first = pair.compare(Req("GET", "/count")).json()["n"]
    second = pair.compare(Req("GET", "/count")).json()["n"]
    assert second == first + 1


def test_startup_and_shutdown_run_once() -> None:
    results = []
    for start in (UvicornThread, engine_server):
        events: list[str] = []
        with start(lifespan.create_app(events)):
            assert events == ["startup"]
        results.append(events)
    assert results[0] == results[1] == ["startup", "shutdown"]


def test_startup_failure_is_reported() -> None:
    """A lifespan that fails must stop the server from starting, on both sides.

    The engine's exact exception type is its own (one clear line, per DESIGN.md); it must be
    an ordinary ``Exception`` (not ``SystemExit``) and the ``with`` body must not run.
    """
    for start in (UvicornThread, engine_server):
        entered = False
        with pytest.raises(Exception), start(lifespan.create_failing_app()):  # noqa: B017
            entered = True
        assert not entered


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("start", [UvicornThread, engine_server], ids=["uvicorn", "engine"])
def test_graceful_shutdown_finishes_in_flight_request(start: Any) -> None:
    """Leaving the ``with`` block stops accepting connections, lets the request in flight
    finish with its full answer, and only then runs lifespan shutdown."""
    events: list[str] = []
    started, release = threading.Event(), threading.Event()
    answers: list[tuple[int, bytes]] = []
    server = start(lifespan.create_slow_app(events, started, release))
    server.__enter__()
    exited = threading.Event()

    def request() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            response = http.get("/slow")
            answers.append((response.status_code, response.content))

    def shut_down() -> None:
        server.__exit__(None, None, None)
        exited.set()

    client = threading.Thread(target=request)
    stopper = threading.Thread(target=shut_down)
    try:
        client.start()
        assert started.wait(10), "the slow request never reached the app"
        stopper.start()
        poll(lambda: _refuses_connections(server.port), bool, "listener closed")
        assert not exited.is_set(), "shutdown finished while a request was in flight"
        assert "shutdown" not in events
    finally:
        release.set()
        client.join(30)
        stopper.join(30)
    assert exited.is_set()
    assert answers == [(200, b'{"slow":"done"}')]
    assert events == ["startup", "slow answered", "shutdown"]
