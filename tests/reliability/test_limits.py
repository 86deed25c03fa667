"""uvicorn's limits (issue 22), uvicorn and the engine each in a child process:
``limit_concurrency`` (503 without the app beyond it, by uvicorn's rule: the open connections,
this one included, or the requests in flight at the limit) and ``limit_max_requests`` (the
server stops by itself after that many requests, the last one answered)."""

from __future__ import annotations

import signal
import socket
import time

import pytest
from support.process_server import ProcessServer

APP = "apps.shutdown:create_app"


@pytest.fixture(params=["uvicorn", "engine"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def request_on(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return lines[0], headers, body


def test_concurrency_limit_answers_503(kind: str) -> None:
    with ProcessServer(kind, APP, limit_concurrency=3) as server:
        connect = lambda: socket.create_connection(("127.0.0.1", server.port), timeout=10)  # noqa: E731
        with connect() as a, connect() as b:
            assert request_on(a)[0] == "HTTP/1.1 200 OK"
            assert request_on(b)[0] == "HTTP/1.1 200 OK"
            with connect() as c:
                status, headers, body = request_on(c)
                assert (status, body) == ("HTTP/1.1 503 Service Unavailable", b"Service Unavailable")
                picked = {k: headers[k] for k in ("content-type", "content-length", "connection")}
                assert picked == {
                    "content-type": "text/plain; charset=utf-8",
                    "content-length": "19",
                    "connection": "close",
                }
        # The others are closed: room again, once the server has seen them go (the engine
        # counts a connection until its task ends, which may come after the next connect).
        deadline = time.monotonic() + 5
        while True:
            with connect() as d:
                status = request_on(d)[0]
            if status == "HTTP/1.1 200 OK" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == "HTTP/1.1 200 OK"
        server.signal(signal.SIGINT)
        assert server.wait(15) is not None
    assert "Exceeded concurrency limit." in server.stderr


def test_max_requests_stops_the_server(kind: str) -> None:
    with ProcessServer(kind, APP, limit_max_requests=3, log_level="info") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            for _ in range(3):
                status, _, body = request_on(sock)
                assert (status, body) == ("HTTP/1.1 200 OK", b'{"hello":"world"}')
        exited = server.wait(10)
        assert exited is not None, "still serving after limit_max_requests"
    assert "Maximum request limit of 3 exceeded. Terminating process." in server.stderr


def _status_for_header_of(port: int, size: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode()


def test_request_head_limit_answers_431() -> None:
    """Beyond uvicorn (which takes any head with httptools): ``limit_request_headers``."""
    with ProcessServer("engine", APP, limit_request_headers=16384) as server:
        assert _status_for_header_of(server.port, 10_000) == "HTTP/1.1 200 OK"
        assert _status_for_header_of(server.port, 20_000) == "HTTP/1.1 431 Request Header Fields Too Large"
        assert _status_for_header_of(server.port, 10_000) == "HTTP/1.1 200 OK"  # still serving
    with ProcessServer("uvicorn", APP) as server:
        assert _status_for_header_of(server.port, 20_000) == "HTTP/1.1 200 OK"
