"""Beyond uvicorn (issue 22): ``limit_request_body`` (413, read lazily, memory bounded),
``timeout_request_header`` (slowloris: 408 from a head's first byte) and
``h11_max_incomplete_event_size`` (the engine's head limit), the engine and uvicorn each in a
child process. uvicorn has none of these limits: where it is run, it shows what it does instead.

The peak memory figures of the README come from ``test_peak_memory_for_a_large_body`` with
``FASTRAPI_BODY_MIB=1024``; CI sends 64 MiB."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.process_server import ProcessServer
from websockets.sync.client import connect as ws_connect

APP = "apps.server_flags:create_app"
LIMIT = 1000
BODY_MIB = int(os.environ.get("FASTRAPI_BODY_MIB", "64"))


def exchange(port: int, data: bytes | list[bytes], pause: float = 0.0, timeout: float = 10.0) -> bytes:
    """Writes ``data`` (parts ``pause`` seconds apart), then reads until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for part in [data] if isinstance(data, bytes) else data:
            try:
                sock.sendall(part)
            except OSError:
                break  # the server answered and closed already
            time.sleep(pause)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return received
            if not chunk:
                return received
            received += chunk


def chunked(path: str, parts: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body


def with_length(path: str, body: bytes, content_type: str = "application/octet-stream") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def parse(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return lines[0], headers, body


@pytest.fixture(scope="module")
def limited() -> Iterator[ProcessServer]:
    with ProcessServer("engine", APP, limit_request_body=LIMIT, log_level="info") as server:
        yield server
    assert "Exception in ASGI application" not in server.stderr, server.stderr
    assert "ERROR" not in server.stderr, server.stderr


# -- limit_request_body ------------------------------------------------------------------------


def test_a_body_within_the_limit_is_served(limited: ProcessServer) -> None:
    status, _, body = parse(exchange(limited.port, with_length("/count", b"x" * LIMIT)))
    assert status == "HTTP/1.1 200 OK"
    assert body.endswith(b'{"bytes":1000,"messages":1}')


@pytest.mark.parametrize("path", ["/count", "/raw", "/items"])
def test_a_content_length_over_the_limit_is_refused_before_the_app(limited: ProcessServer, path: str) -> None:
    before = httpx.get(f"http://127.0.0.1:{limited.port}/received", timeout=10).json()
    status, headers, body = parse(exchange(limited.port, with_length(path, b"{" + b" " * LIMIT + b"}")))
    assert (status, body) == ("HTTP/1.1 413 Request Entity Too Large", b"Content Too Large")
    assert headers["connection"] == "close"
    assert headers["content-type"] == "text/plain; charset=utf-8" and headers["content-length"] == "17"
    assert httpx.get(f"http://127.0.0.1:{limited.port}/received", timeout=10).json() == before


def test_the_413_is_starlettes_max_body_size_answer(limited: ProcessServer) -> None:
    """Starlette 1.x's own limit, served by uvicorn, answers the same (and keeps the connection,
    where the engine closes it without reading the body)."""
    pytest.importorskip("starlette.middleware.body_limit")
    request = with_length("/count", b"x" * (LIMIT + 1))
    with ProcessServer("uvicorn", "apps.server_flags:create_limited_app") as reference:
        expected = parse(exchange(reference.port, request, timeout=2))
    got = parse(exchange(limited.port, request))
    assert got[0] == expected[0] and got[2] == expected[2]
    drop = {"date", "connection"}
    assert {k: v for k, v in got[1].items() if k not in drop} == {k: v for k, v in expected[1].items() if k not in drop}
    assert "connection" not in expected[1] and got[1]["connection"] == "close"


@pytest.mark.parametrize("path", ["/count", "/items"])
def test_a_streamed_body_is_cut_when_it_crosses_the_limit(limited: ProcessServer, path: str) -> None:
    parts = [b"[" + b" " * 298 + b" ", *([b" " * 300] * 9), b"]"]
    status, headers, body = parse(exchange(limited.port, chunked(path, parts)))
    assert (status, body) == ("HTTP/1.1 413 Request Entity Too Large", b"Content Too Large")
    assert headers["connection"] == "close"
    if path == "/count":
        seen = httpx.get(f"http://127.0.0.1:{limited.port}/received", timeout=10).json()
        assert seen[-1]["outcome"] == "disconnect" and seen[-1]["bytes"] <= LIMIT, seen


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_that_sends_its_whole_body_first_reads_the_413(limited: ProcessServer, framing: str) -> None:
    """The engine answers before reading the body, then keeps reading (and dropping) it before
    closing, so the answer is not lost to a reset."""
    size = 20 * 1024 * 1024
    content: bytes | Iterator[bytes] = b"x" * size
    if framing == "chunked":
        content = iter([b"x" * 1024 * 1024] * 20)
    response = httpx.post(f"http://127.0.0.1:{limited.port}/raw", content=content, timeout=30)
    assert (response.status_code, response.text) == (413, "Content Too Large")


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _send_body(port: int, mib: int, chunked: bool = False) -> str:
    """POSTs ``mib`` MiB to /raw, 1 MiB per write, with a Content-Length or chunked; the status
    line of the answer."""
    block = b"x" * (1024 * 1024)
    if chunked:
        head = b"POST /raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        block = b"%x\r\n%s\r\n" % (len(block), block)
    else:
        head = f"POST /raw HTTP/1.1\r\nHost: t\r\nContent-Length: {mib * len(block)}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head)
        try:
            for _ in range(mib):
                sock.sendall(block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # answered and closed early
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


def test_peak_memory_for_a_large_body(capsys: pytest.CaptureFixture[str]) -> None:
    """Peak RSS (VmHWM) of the server process for one ``BODY_MIB`` MiB body read whole by the
    app (``await request.body()``): with a 1 MiB limit the engine never holds it, whether the
    body says its length or comes chunked."""
    limit = {"limit_request_body": 1024 * 1024}
    cases = [("uvicorn", {}, False), ("engine", {}, False), ("engine", limit, False), ("engine", limit, True)]
    rows = []
    for kind, options, is_chunked in cases:
        with ProcessServer(kind, APP, **options) as server:
            exchange(server.port, with_length("/count", b"warm"))
            before = _peak_kib(server.pid)
            status = _send_body(server.port, BODY_MIB, chunked=is_chunked)
            after = _peak_kib(server.pid)
        rows.append(
            (kind, "1 MiB" if options else "none", "chunked" if is_chunked else "length", status, before, after)
        )
    with capsys.disabled():
        print(f"\npeak RSS (VmHWM) for a {BODY_MIB} MiB body, MiB: server, limit, framing, status, before, peak")
        for kind, limited, framing, status, before, after in rows:
            print(f"  {kind:8} {limited:6} {framing:8} {status:40} {before / 1024:8.1f} {after / 1024:8.1f}")
    assert [row[3] for row in rows] == ["HTTP/1.1 200 OK"] * 2 + ["HTTP/1.1 413 Request Entity Too Large"] * 2
    for *_, framing, _, before, after in rows[2:]:
        assert after - before < 16 * 1024, f"the limited server grew by more than 16 MiB ({framing})"


# -- timeout_request_header --------------------------------------------------------------------


@pytest.fixture(scope="module")
def head_timed() -> Iterator[ProcessServer]:
    with ProcessServer("engine", APP, timeout_request_header=0.5, timeout_keep_alive=2.0) as server:
        yield server


def test_a_slow_head_is_answered_408(head_timed: ProcessServer) -> None:
    status, headers, body = parse(exchange(head_timed.port, b"GET /plain HTTP/1.1\r\nHost: t\r\n"))
    assert (status, body) == ("HTTP/1.1 408 Request Timeout", b"Request Timeout")
    assert headers["connection"] == "close" and headers["server"] == "uvicorn" and "date" in headers


def test_a_trickled_head_is_timed_from_its_first_byte(head_timed: ProcessServer) -> None:
    """A byte every 0.1 s never lets the head finish: slowloris gets its 408."""
    parts = [bytes([b]) for b in b"GET /plain HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100]
    answer = exchange(head_timed.port, parts, pause=0.1)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer


def test_an_idle_connection_closes_silently_after_the_keep_alive_timeout(head_timed: ProcessServer) -> None:
    assert exchange(head_timed.port, b"") == b""


def test_a_slow_body_and_the_next_request_are_not_cut(head_timed: ProcessServer) -> None:
    """The head clock does not run while a request is in flight, nor between requests (there
    the keep-alive timeout does): a body sent over 1.5 s, then a pause of 1 s, then a request."""
    head = b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n"
    with socket.create_connection(("127.0.0.1", head_timed.port), timeout=10) as sock:
        sock.sendall(head)
        for part in (b"ab", b"cd", b"ef"):
            time.sleep(0.5)
            sock.sendall(part)
        first = sock.recv(65536)
        time.sleep(1.0)
        sock.sendall(b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
        second = sock.recv(65536)
    # (a body this small is read whole before the app runs: one message)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b'{"bytes":6,"messages":1}'), first
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and second.endswith(b"plain"), second


@pytest.mark.parametrize("kind", ["uvicorn", "engine"])
def test_without_the_option(kind: str) -> None:
    """Without it the engine keeps its keep-alive timeout from the end of the previous response
    (or the connection's start) to the end of the next head, and closes silently; uvicorn stops
    that clock at the first byte, and waits for the rest of the head without limit."""
    with ProcessServer(kind, APP, timeout_keep_alive=1) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /plain HTTP/1.1\r\nHost: t\r\n")
            sock.settimeout(3.0)
            try:
                answer: bytes | None = sock.recv(65536)
            except TimeoutError:
                answer = None  # still waiting for the head
    assert answer == (b"" if kind == "engine" else None)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("uvicorn", {}),
        ("engine", {}),
        ("engine", {"timeout_request_header": 0.5}),
    ],
    ids=["uvicorn", "engine", "engine-timeout-request-header"],
)
def test_a_silent_websocket_outlives_the_keep_alive_timeout(kind: str, options: dict[str, float]) -> None:
    """Neither timeout times a connection once it switched protocols: a websocket silent for
    three times the keep-alive timeout (and the head timeout) still echoes."""
    with ProcessServer(kind, APP, timeout_keep_alive=0.5, ws_ping_interval=None, **options) as server:
        with ws_connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=10) as ws:
            ws.send("first")
            assert ws.recv(timeout=10) == "first"
            time.sleep(1.5)  # the silence under test, not a wait for readiness
            ws.send("after the silence")
            assert ws.recv(timeout=10) == "after the silence"


# -- h11_max_incomplete_event_size -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["uvicorn", "engine"])
def test_h11_buffer_size_limits_the_head(kind: str) -> None:
    """uvicorn's h11 answers 400 once more than this much of a head is buffered; the engine
    takes it as its head limit and answers 431, as for ``limit_request_headers``. Both count
    what waits incomplete, so the head is sent in parts."""
    options = {"h11_max_incomplete_event_size": 10_000, "http": "h11"}
    head = b"GET /plain HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 12_000 + b"\r\n\r\n"
    parts = [head[i : i + 1000] for i in range(0, len(head), 1000)]
    with ProcessServer(kind, APP, **options) as server:
        small = exchange(server.port, b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        big = exchange(server.port, parts, pause=0.02)
    assert small.startswith(b"HTTP/1.1 200 OK\r\n")
    expected = (
        b"HTTP/1.1 400 Bad Request\r\n" if kind == "uvicorn" else b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    )
    assert big.startswith(expected), big[:100]
