"""No lost wake-up between the engine's I/O thread and the loop thread (issue 24).

The loop thread is woken through the engine's wake fd by the first request pushed after it
took the last batch (``native/inbox.rs``: one byte per batch, not per request). A request that
slipped between a take and the re-arming would wait for the next request to be noticed: here
every request is the last one for a while (after an idle moment, after a burst, pipelined,
with a streamed body), so such a request would never be answered and its read would time out
(bounded: ``READ_TIMEOUT``; a hang fails, nothing is timed). A guard for any change of the
wake protocol.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from support.servers import engine_server

pytestmark = pytest.mark.timeout(240)

READ_TIMEOUT = 20.0
BURST = 24


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"message": "Hello, World!"}

    @app.get("/sync")
    def sync() -> dict[str, str]:
        return {"message": "sync"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return app


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with engine_server(create_app()) as server:
        yield server.port


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """HTTP/1.1 responses (with ``content-length``) read off one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:"))
        while len(self.buffer) < length:
            self.fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), body

    def fill(self) -> None:
        chunk = self.sock.recv(65536)  # socket.timeout after READ_TIMEOUT: a lost wake-up
        assert chunk, "the server closed the connection"
        self.buffer += chunk


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode()


def post(body: bytes) -> bytes:
    return b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


PLAIN = (200, b'{"message":"Hello, World!"}')


def test_a_lone_request_after_idle_is_answered_every_time(port: int) -> None:
    with connect(port) as sock:
        reader = Reader(sock)
        for i in range(400):
            sock.sendall(get("/plain" if i % 4 else "/sync"))
            status, body = reader.response()
            assert (status, body) == (PLAIN if i % 4 else (200, b'{"message":"sync"}'))


def test_a_lone_request_after_a_burst_is_answered(port: int) -> None:
    socks = [connect(port) for _ in range(BURST)]
    try:
        readers = [Reader(sock) for sock in socks]
        for _ in range(40):
            for sock in socks:  # every connection at once: drained in batches
                sock.sendall(get("/plain"))
            for reader in readers:
                assert reader.response() == PLAIN
            for i in (0, 7):  # then one request alone, right after the batch
                socks[i].sendall(get("/plain"))
                assert readers[i].response() == PLAIN
            socks[3].sendall(get("/plain") * 3)  # pipelined, the last one alone at the end
            assert [readers[3].response() for _ in range(3)] == [PLAIN] * 3
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("size", [10, 300_000])
def test_a_body_read_after_idle_is_answered(port: int, size: int) -> None:
    """A large body is streamed to the app: its chunks reach the loop as events of their own."""
    with connect(port) as sock:
        reader = Reader(sock)
        for _ in range(30):
            sock.sendall(post(b"x" * size))
            status, body = reader.response()
            assert (status, body) == (200, b'{"size":%d}' % size)


def test_requests_racing_the_drain_are_all_answered(port: int) -> None:
    """Connections that each send their next request as soon as their answer comes: requests
    keep arriving while the loop takes and handles its batches."""
    socks = [connect(port) for _ in range(8)]
    try:
        readers = [Reader(sock) for sock in socks]
        for sock in socks:
            sock.sendall(get("/plain"))
        for _ in range(150):
            for sock, reader in zip(socks, readers):
                assert reader.response() == PLAIN
                sock.sendall(get("/plain"))
        answers: list[Any] = [reader.response() for reader in readers]
        assert answers == [PLAIN] * len(socks)
    finally:
        for sock in socks:
            sock.close()
