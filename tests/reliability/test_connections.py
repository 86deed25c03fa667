"""Peers that hold connections (issue 22): a head trickled a byte at a time (slowloris), 2,000
idle connections, accepts that fail for want of file descriptors. The engine and uvicorn each
in a child process, with the file descriptor limit (RLIMIT_NOFILE) each test needs."""

from __future__ import annotations

import resource
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hostile import exchange
from support.process_server import ProcessServer

APP = "apps.hostile:create_app"
GOOD = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
ANSWERED = "HTTP/1.1 200 OK | open"
IDLE = 2000


@pytest.fixture(params=["uvicorn", "engine"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _trickle(port: int, head: bytes, seconds: float) -> tuple[int, bool]:
    """Sends ``head`` a byte every 20 ms for at most ``seconds``: how many bytes went out, and
    whether the server closed the connection meanwhile."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        deadline = time.monotonic() + seconds
        for sent in range(len(head)):
            if time.monotonic() > deadline:
                return sent, False
            try:
                sock.sendall(head[sent : sent + 1])
            except OSError:
                return sent, True
            readable, _, _ = select.select([sock], [], [], 0.02)
            if readable:
                try:
                    if not sock.recv(65536):
                        return sent + 1, True
                except ConnectionResetError:
                    return sent + 1, True
        return len(head), False


def test_a_trickled_head_is_cut_off_within_the_header_timeout() -> None:
    """The engine's header timeout (``--timeout-keep-alive``) runs until a head is whole; a
    client that sends a byte every 20 ms is cut off within it, far before its 1 KB head is
    sent. uvicorn resets its timeout on every byte: the same client holds the connection."""
    head = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000 + b"\r\n\r\n"
    with ProcessServer("engine", APP, timeout_keep_alive=1) as engine:
        sent, closed = _trickle(engine.port, head, seconds=15)
        assert closed and sent < len(head) // 2, (sent, closed)
        assert str(exchange(engine.port, GOOD)) == ANSWERED
    with ProcessServer("uvicorn", APP, timeout_keep_alive=1) as uvicorn:
        sent, closed = _trickle(uvicorn.port, head, seconds=3)
        assert not closed, sent  # beyond uvicorn: it has no header timeout


@pytest.fixture
def many_files() -> Iterator[None]:
    """This process may open ``IDLE`` sockets and more (within its hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_two_thousand_idle_connections_do_not_stop_new_clients(kind: str, many_files: None) -> None:
    with ProcessServer(kind, APP, nofile=IDLE + 512, timeout_keep_alive=60) as server:
        idle = []
        try:
            for _ in range(IDLE):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            for _ in range(5):
                assert str(exchange(server.port, GOOD)) == ANSWERED
            # the idle ones are still served
            for sock in (idle[0], idle[-1]):
                sock.sendall(GOOD)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        finally:
            for sock in idle:
                sock.close()
        assert server.alive()


def _eventually(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_running_out_of_file_descriptors_pauses_accepting_without_stopping_it(kind: str, tmp_path: Path) -> None:
    """With 64 file descriptors, 100 clients are more than the server can accept: accepting
    fails (EMFILE), the engine logs it once and pauses (uvicorn's loop, uvloop's libuv, sheds
    connections instead); once the clients are gone, both answer again."""
    log = tmp_path / "server.log"
    with ProcessServer(kind, APP, nofile=64, timeout_keep_alive=60, log=log) as server:
        clients = []
        try:
            for _ in range(100):
                clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            if kind == "engine":
                assert _eventually(lambda: "Too many open files" in server.logged(), 10), server.logged()
        finally:
            for sock in clients:
                sock.close()
        assert _eventually(lambda: str(exchange(server.port, GOOD)) == ANSWERED, 15), server.logged()
        assert server.alive()
    if kind == "engine":
        told = [line for line in log.read_text().splitlines() if "Accepting a connection failed" in line]
        assert told and "[Errno 24] Too many open files; retrying" in told[0], told
