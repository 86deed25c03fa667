"""Each request runs in its own asyncio task and its own copy of the context, as under uvicorn,
whatever the dispatcher does to start it (on Python 3.12+ the task starts eagerly, its first
step run at once): ``asyncio.current_task()``, sniffio and anyio see the task, a context
variable set by one request reaches neither a later nor a concurrent one, and an exception
raised before the first ``await`` reaches the app's handlers (on 3.12+ these endpoints answer
within their eagerly started task's first step). The engine must serve these
endpoints by a flat plan (the path under test); ``app.state.flat_calls`` tells."""

import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from apps import request_task
from support.compare import PairClients, Req, poll

from fastrapi_compat.serve.dispatch import Dispatcher

from .conftest import pair_fixture

pair = pair_fixture(request_task.create_app)


def served_flat(pair: PairClients) -> list[bool]:
    """Whether each call so far ran under a flat plan, on the engine (then cleared); on uvicorn
    none does."""
    assert not any(pair.pair.reference_app.state.flat_calls)
    calls = list(pair.pair.engine_app.state.flat_calls)
    pair.pair.engine_app.state.flat_calls.clear()
    pair.pair.reference_app.state.flat_calls.clear()
    return calls


def test_endpoint_runs_in_its_own_task(pair: PairClients) -> None:
    for _ in range(3):  # a second request sees the default value again: its own context
        answer = pair.compare(Req("GET", "/task"))
        assert answer.json() == {
            "task": "Task",
            "default_name": True,
            "done": False,
            "listed": True,
            "sniffio": "asyncio",
            "anyio": True,
            "marker_before": "unset",
        }
    assert served_flat(pair) == [True] * 3
    # Python 3.12+: the task started eagerly (its first step, which answers, ran as the
    # dispatcher created it); 3.10 and 3.11: from the loop, as uvicorn's
    assert pair.pair.engine_app.state.eager_calls[-3:] == [sys.version_info >= (3, 12)] * 3
    assert not any(pair.pair.reference_app.state.eager_calls)


@pytest.mark.parametrize("peers", [2, 8])
def test_concurrent_requests_keep_their_own_context(pair: PairClients, peers: int) -> None:
    group = f"g{peers}"
    for side, server, _client in pair.each():

        def one(value: int, port: int = server.port, side: str = side) -> dict[str, object]:
            with httpx.Client(timeout=20) as client:  # one connection each
                url = f"http://127.0.0.1:{port}/together/{group}/v{value}?peers={peers}"
                answer = client.get(url)
                assert answer.status_code == 200, (side, answer.text)
                return dict(answer.json())

        with ThreadPoolExecutor(peers) as threads:
            answers = list(threads.map(one, range(peers)))
        assert answers == [{"before": "unset", "marker": f"v{i}", "met": True} for i in range(peers)], side
    assert served_flat(pair) == [True] * peers


@pytest.mark.parametrize("path", ["/raise", "/raise-http", "/raise-unhandled"])
def test_exception_before_the_first_await_reaches_the_handlers(pair: PairClients, path: str) -> None:
    answer = pair.compare(Req("GET", path))
    assert answer.status == {"/raise": 418, "/raise-http": 409, "/raise-unhandled": 500}[path]
    assert served_flat(pair) == [True]


def test_finished_requests_leave_no_task_behind(pair: PairClients) -> None:
    """A flat plan's task takes itself out of the dispatcher's ``tasks`` as it ends (no done
    callback): none is left once the answers are in."""
    for _ in range(5):
        pair.compare(Req("GET", "/task"))
    dispatcher = pair.pair.engine_app.state.runner
    assert type(dispatcher) is Dispatcher
    poll(lambda: set(dispatcher.tasks), lambda left: not left, "the request tasks left")
    assert served_flat(pair) == [True] * 5
