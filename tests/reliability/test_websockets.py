"""Websockets with peers that break the protocol, do not read, or do not answer pings (issue 26),
against stock uvicorn and the engine side by side: the close code and reason sent before the
TCP close, what the app is told, the app's sends waiting for a peer that does not read, and the
server's memory while it does not."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from apps import ws_limits
from support.logs import engine_errors
from support.process_server import ProcessServer
from support.rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawWebSocket, close_payload, frame
from support.servers import UvicornThread, engine_server

MiB = 1024 * 1024


@contextlib.contextmanager
def both(**options: Any) -> Iterator[dict[str, int]]:
    """uvicorn and the engine, each on a fresh app, with the same uvicorn options."""
    with (
        UvicornThread(ws_limits.create_app(), **options) as reference,
        engine_server(ws_limits.create_app(), **options) as engine,
    ):
        yield {"uvicorn": reference.port, "engine": engine.port}


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    with both() as started:
        yield started


def get(port: int, path: str) -> Any:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).json()


def app_ended(port: int, count: int = 1) -> list[dict[str, Any]]:
    """How the app's websockets ended, once ``count`` have."""
    deadline = time.monotonic() + 5
    while len(ended := get(port, "/ended")) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return ended


# -- protocol errors --------------------------------------------------------------------------

CASES = {
    "text not utf-8": frame(OP_TEXT, b"\xff\xfe"),
    "unmasked frame": frame(OP_TEXT, b"hi", mask=False),
    "rsv1 set": frame(OP_TEXT, b"hi", rsv=0x40),
    "opcode 3": frame(3, b"hi"),
    "ping over 125 bytes": frame(OP_PING, b"x" * 126),
    "fragmented ping": frame(OP_PING, b"x", fin=False),
    "1-byte close": frame(OP_CLOSE, b"\x03"),
    "orphan continuation": frame(OP_CONT, b"hi"),
    "interleaved text": frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"),
    "length 2^63-1": frame(OP_BINARY, b"", length=2**63 - 1)[:14],
    "message over 16 MiB": frame(OP_BINARY, b"x" * (16 * MiB + 1)),
    "close code 999": frame(OP_CLOSE, close_payload(999)),
    "close reason not utf-8": frame(OP_CLOSE, close_payload(1000, b"\xff")),
}

#: Same code; the reason is worded by the websocket library (tungstenite here, websockets there).
REASON_DIFFERENCES = {
    "close code 999": "tungstenite answers an invalid code itself, with 'Protocol violation'",
    "close reason not utf-8": "websockets gives Python's decode error as the reason, the engine none",
}


def failed_with(port: int, data: bytes) -> tuple[tuple[int | None, str], dict[str, Any]]:
    """The close frame the server sent (the last frame, then EOF) and what the app was told."""
    get(port, "/ended") and httpx.delete(f"http://127.0.0.1:{port}/state", timeout=5)
    with RawWebSocket(port) as ws:
        with contextlib.suppress(OSError):
            ws.send(data)
        frames = ws.frames(5)
        assert frames and frames[-1].opcode == OP_CLOSE, frames
        ws.frames(2)  # the server closes the connection after its close frame
        assert ws.eof
    (told,) = app_ended(port)
    return frames[-1].close, told


@pytest.mark.parametrize("case", list(CASES))
def test_protocol_error_closed_with_its_code(ports: dict[str, int], case: str) -> None:
    with engine_errors() as errors:
        expected, expected_told = failed_with(ports["uvicorn"], CASES[case])
        got, told = failed_with(ports["engine"], CASES[case])
    assert got[0] == expected[0], (got, expected)
    assert told["code"] == expected_told["code"] == expected[0]
    if case not in REASON_DIFFERENCES:
        assert got == expected
        assert told == expected_told
    assert not errors, [r.getMessage() for r in errors]
    # the server is still up, and a good websocket still works
    with RawWebSocket(ports["engine"]) as ws:
        ws.send(frame(OP_TEXT, b"still here"))
        assert ws.frames(5, until_close=False)[:1] and ws.frames(0.01) == []


def test_max_size_is_configurable() -> None:
    with both(ws_max_size=1000) as started:
        for port in started.values():
            with RawWebSocket(port) as ws:
                ws.send(frame(OP_TEXT, b"a" * 1000))
                (echo,) = ws.frames(5, until_close=False)
                assert echo.payload == b"a" * 1000
                ws.send(frame(OP_TEXT, b"a" * 1001))
                (closing,) = ws.frames(5)
                assert closing.close == (1009, "frame with 1001 bytes exceeds limit of 1000 bytes"), port


# -- keepalive --------------------------------------------------------------------------------


def test_unanswered_ping_closes_1011() -> None:
    with both(ws_ping_interval=0.3, ws_ping_timeout=0.3) as started:
        seen = {}
        for name, port in started.items():
            with RawWebSocket(port) as ws:
                frames = ws.frames(5)
                ws.frames(2)
                assert ws.eof, name
            seen[name] = ([f.opcode for f in frames], frames[-1].close, app_ended(port)[0]["code"])
        assert seen["engine"] == seen["uvicorn"] == ([OP_PING, OP_CLOSE], (1011, "keepalive ping timeout"), 1005)


def test_answered_pings_keep_it_open() -> None:
    with both(ws_ping_interval=0.2, ws_ping_timeout=0.5) as started:
        for name, port in started.items():
            with RawWebSocket(port) as ws:
                frames = ws.frames(1.5, answer_pings=True)
                opcodes = {f.opcode for f in frames}
                assert opcodes == {OP_PING} and len(frames) >= 4, (name, frames)
                assert not ws.eof


def test_no_pings_when_the_interval_is_zero() -> None:
    with both(ws_ping_interval=0) as started:
        for port in started.values():
            with RawWebSocket(port) as ws:
                assert ws.frames(0.8) == []


# -- a peer that does not read ----------------------------------------------------------------


def test_send_waits_while_the_peer_does_not_read(ports: dict[str, int]) -> None:
    """The app's ``send`` waits (as on uvicorn) rather than queueing without bound; when the peer
    goes away, the waiting send fails with the disconnect."""
    counts = {}
    for name, port in ports.items():
        httpx.delete(f"http://127.0.0.1:{port}/state", timeout=5)
        ws = RawWebSocket(port, "/flood?count=200", rcvbuf=65536)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            time.sleep(0.1)
        counts[name] = get(port, "/sent")["count"]
        assert counts[name] < 40, (name, counts)
        ws.close()
        deadline = time.monotonic() + 10
        while not (sent := get(port, "/sent"))["error"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sent["error"] == "WebSocketDisconnect", (name, sent)


@pytest.mark.parametrize("path", ["/echo", "/flood?count=400"])
def test_memory_stays_bounded_for_a_peer_that_does_not_read(path: str) -> None:
    """1 MiB messages to an echo (or from a sender) whose peer never reads: the server's memory
    stays within 50 MiB of idle (it grew without bound, 885 MB for 800 messages, before)."""
    message = frame(OP_BINARY, b"m" * MiB)
    growth = {}
    for kind in ("uvicorn", "engine"):
        with ProcessServer(kind, "apps.ws_limits:create_app") as server:
            idle = peak = server.rss()
            with RawWebSocket(server.port, path, rcvbuf=65536, timeout=2) as ws:
                sent = 0
                with contextlib.suppress(TimeoutError):
                    while path == "/echo" and sent < 400:
                        ws.send(message)
                        sent += 1
                        peak = max(peak, server.rss())
                for _ in range(10):
                    time.sleep(0.1)
                    peak = max(peak, server.rss())
                if path == "/echo":
                    assert sent < 100, f"{kind} kept reading: {sent} MiB taken in"
            growth[kind] = peak - idle
    assert growth["engine"] < 50, growth
