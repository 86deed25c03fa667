"""WebSockets: handshake (subprotocol, extra headers), echo, closes, denials, disconnects."""

import itertools
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from apps import ws
from support.compare import (
    PairClients,
    Req,
    WsStep,
    close,
    compare_ws,
    recv,
    recv_close,
    send,
)

from .conftest import pair_fixture

pair = pair_fixture(ws.create_app)

_keys = itertools.count()


@dataclass(frozen=True)
class Scenario:
    path: str
    script: Sequence[WsStep]
    subprotocols: Sequence[str] | None = None
    headers: dict[str, str] | None = None


SCENARIOS = {
    "echo text and binary": Scenario(
        path="/ws/echo",
        script=[
            recv(),
            send("hi"),
            recv(),
            send(b"\x01\x02\x03"),
            recv(),
            send("caf\u00e9 \u2603"),
            recv(),
            close(),
        ],
    ),
    "subprotocol chosen": Scenario(path="/ws/echo", subprotocols=["chat.v1", "chat.v2"], script=[recv(), close()]),
    "subprotocol none acceptable": Scenario(path="/ws/echo", subprotocols=["other"], script=[recv(), close()]),
    "server close with code and reason": Scenario(path="/ws/echo", script=[recv(), send("close"), recv_close()]),
    "server close with unicode reason": Scenario(path="/ws/echo", script=[recv(), send("close-unicode"), recv_close()]),
    "server close default code": Scenario(path="/ws/echo", script=[recv(), send("close-default"), recv_close()]),
    "client close with code": Scenario(path="/ws/echo", script=[recv(), close(4100, "client leaving")]),
    "large binary echo": Scenario(
        path="/ws/echo",
        script=[recv(), send(bytes(range(256)) * 4096), recv(), close()],
    ),
    "json text and binary": Scenario(
        path="/ws/json",
        script=[
            send('{"b": 1, "a": [true, null]}'),
            recv(),
            send(b'{"x": 2}'),
            recv(),
            recv_close(),
        ],
    ),
    "invalid json": Scenario(path="/ws/json", script=[send("{not json"), recv_close()]),
    "params": Scenario(
        path="/ws/params/7?token=abc",
        headers={"x-client": "tests", "cookie": "session=s1"},
        script=[recv(), recv_close()],
    ),
    "params validation error": Scenario(path="/ws/params/seven", script=[recv()]),
    "params missing query": Scenario(path="/ws/params/7", script=[recv()]),
    "auth ok": Scenario(
        path="/ws/auth",
        headers={"authorization": "Bearer ok"},
        script=[recv(), recv_close()],
    ),
    "auth denied by dependency": Scenario(path="/ws/auth", script=[recv()]),
    "deny by closing before accept": Scenario(path="/ws/deny", script=[recv()]),
    "deny by WebSocketException": Scenario(path="/ws/deny-exception", script=[recv()]),
    "denial response json": Scenario(path="/ws/deny-response", script=[recv()]),
    "denial response plain": Scenario(path="/ws/deny-plain", script=[recv()]),
    "error before accept": Scenario(path="/ws/error-before-accept", script=[recv()]),
    "error after accept": Scenario(path="/ws/error-after-accept", script=[recv(), recv_close()]),
    "return without close": Scenario(path="/ws/return-without-close", script=[recv(), recv_close()]),
    "no such websocket route": Scenario(path="/ws/nope", script=[recv()]),
    "websocket to http route": Scenario(path="/http-route", script=[recv()]),
    "many messages": Scenario(path="/ws/many", script=[send("50"), *[recv() for _ in range(51)], recv_close()]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_websocket(pair: PairClients, name: str) -> None:
    scenario = SCENARIOS[name]
    compare_ws(
        pair.pair,
        scenario.path,
        scenario.script,
        subprotocols=scenario.subprotocols,
        headers=scenario.headers,
    )


def test_handshake_details(pair: PairClients) -> None:
    transcript = compare_ws(pair.pair, "/ws/echo", [recv(), close()], subprotocols=["chat.v1", "chat.v2"])
    kind, subprotocol, headers = transcript.events[0]
    assert kind == "open"
    assert subprotocol == "chat.v2"
    assert ("x-extra", "accepted") in headers
    assert ("set-cookie", "ws=1") in headers
    assert transcript.events[1] == (
        "recv",
        "str",
        "hello; offered=['chat.v1', 'chat.v2']",
    )


def test_server_close_code_and_reason(pair: PairClients) -> None:
    transcript = compare_ws(pair.pair, "/ws/echo", [recv(), send("close"), recv_close()])
    assert transcript.events[-1][:3] == ("closed by server", 4001, "bye now")


def test_denial_before_accept_is_403(pair: PairClients) -> None:
    transcript = compare_ws(pair.pair, "/ws/deny", [recv()])
    assert transcript.events[0][:2] == ("denied", 403)


def test_denial_response(pair: PairClients) -> None:
    transcript = compare_ws(pair.pair, "/ws/deny-response", [recv()])
    kind, status, _reason, headers, body = transcript.events[0]
    assert (kind, status, body) == ("denied", 401, b'{"detail":"go away"}')
    assert ("www-authenticate", "Token") in headers


def test_client_disconnect_is_seen_by_the_app(pair: PairClients) -> None:
    key = f"k{next(_keys)}"
    compare_ws(
        pair.pair,
        f"/ws/disconnect/{key}",
        [send("one"), recv(), send("two"), recv(), close(4321, "gone")],
    )
    pair.poll_until(
        Req("GET", f"/ws/disconnects/{key}"),
        lambda answer: answer.status == 200 and answer.json() is not None,
        f"disconnect record {key}",
    )
    answer = pair.compare(Req("GET", f"/ws/disconnects/{key}"))
    assert answer.json() == {"code": 4321, "reason": "gone", "received": ["one", "two"]}


@pytest.mark.xfail(
    strict=True,
    reason="the engine reports 1006 (abnormal closure, as the ASGI spec, wsproto and Starlette's "
    "TestClient do); uvicorn's default websockets implementation reports 1005",
)
def test_abrupt_client_disconnect(pair: PairClients) -> None:
    """The client drops the TCP connection without a close frame: the app sees an abnormal code."""
    from websockets.sync.client import connect

    key = f"abrupt{next(_keys)}"
    for _side, server, _client in pair.each():
        with connect(f"ws://127.0.0.1:{server.port}/ws/disconnect/{key}", compression=None) as connection:
            connection.send("only")
            assert connection.recv(timeout=10) == "got 1"
            connection.socket.shutdown(socket.SHUT_RDWR)  # no closing handshake
    pair.poll_until(
        Req("GET", f"/ws/disconnects/{key}"),
        lambda answer: answer.status == 200 and answer.json() is not None,
        f"disconnect record {key}",
    )
    answer = pair.compare(Req("GET", f"/ws/disconnects/{key}"))
    record = answer.json()
    assert record["received"] == ["only"]
    assert record["code"] in (1005, 1006)  # uvicorn reports 1005 (no status received)
