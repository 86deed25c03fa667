"""Stopping under traffic (issue 22), uvicorn and the engine each in a child process: idle
keep-alive connections closed after ``timeout_keep_alive`` and at once on shutdown, a head only
partly sent not holding shutdown, requests in flight finishing, an endless response cut after
the graceful timeout, and a second SIGINT stopping at once."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.process_server import ProcessServer

KINDS = ["uvicorn", "engine"]
APP = "apps.shutdown:create_app"


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def get_on(sock: socket.socket, path: str = "/hello") -> bytes:
    """One keep-alive request on ``sock``; returns its whole response."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (``None``: still open after ``seconds``)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def test_idle_keep_alive_connection_closed_after_the_timeout(kind: str) -> None:
    with ProcessServer(kind, APP, timeout_keep_alive=0.5) as server:
        with connect(server.port) as sock:
            assert b" 200 " in get_on(sock)
            waited = closed_within(sock, 10)
        assert waited is not None and 0.3 < waited < 3, waited


def test_default_keep_alive_timeout_is_5_seconds(kind: str) -> None:
    with ProcessServer(kind, APP) as server:
        with connect(server.port) as sock:
            assert b" 200 " in get_on(sock)
            waited = closed_within(sock, 15)
        assert waited is not None and 4 < waited < 8, waited


def test_idle_and_half_sent_connections_do_not_hold_shutdown(kind: str) -> None:
    with ProcessServer(kind, APP, timeout_keep_alive=60) as server:
        with connect(server.port) as idle, connect(server.port) as half:
            assert b" 200 " in get_on(idle)
            half.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half")
            time.sleep(0.2)  # the server has read the partial head
            server.signal(signal.SIGINT)
            exited = server.wait(15)
            assert exited is not None and exited < 3, (exited, server.stderr)
            assert closed_within(idle, 1) is not None
            assert closed_within(half, 1) is not None


def test_requests_in_flight_finish(kind: str) -> None:
    with ProcessServer(kind, APP) as server:
        answers: list[Any] = []

        def slow() -> None:
            answers.append(httpx.get(f"http://127.0.0.1:{server.port}/slow", timeout=10))

        threads = [threading.Thread(target=slow) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.4)  # all three are inside the endpoint (it takes 1 s)
        server.signal(signal.SIGTERM)
        for thread in threads:
            thread.join(15)
        exited = server.wait(15)
        assert [(a.status_code, a.json()) for a in answers] == [(200, {"slow": "done"})] * 3
        assert exited is not None and "lifespan shutdown ran" in server.stderr, server.stderr
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{server.port}/hello", timeout=2)


def streaming(port: int) -> Iterator[bytes]:
    """An endless response being read, in a background thread; yields once it has started."""
    started = threading.Event()

    def read() -> None:
        try:
            with httpx.stream("GET", f"http://127.0.0.1:{port}/stream", timeout=30) as response:
                for _ in response.iter_bytes():
                    started.set()
        except httpx.HTTPError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(10)
    yield b""
    reader.join(15)


def test_graceful_timeout_cuts_an_endless_response(kind: str) -> None:
    with ProcessServer(kind, APP, timeout_graceful_shutdown=1) as server:
        reading = streaming(server.port)
        next(reading)
        server.signal(signal.SIGINT)
        exited = server.wait(15)
        assert exited is not None and 0.8 < exited < 5, (exited, server.stderr)
        assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in server.stderr
        assert "lifespan shutdown ran" in server.stderr
        next(reading, None)


def test_second_sigint_stops_at_once(kind: str) -> None:
    with ProcessServer(kind, APP, timeout_graceful_shutdown=60) as server:
        reading = streaming(server.port)
        next(reading)
        server.signal(signal.SIGINT)
        time.sleep(0.5)
        server.signal(signal.SIGINT)
        exited = server.wait(15)
        assert exited is not None and exited < 4, (exited, server.stderr)
        assert "lifespan shutdown ran" not in server.stderr  # skipped on a forced exit, as uvicorn does
        next(reading, None)
