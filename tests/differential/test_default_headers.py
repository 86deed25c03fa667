"""The headers the server puts on every response (issue 22): ``date``, ``server: uvicorn`` and
``--header NAME:VALUE``, with ``--no-server-header`` / ``--no-date-header``, compared byte for
byte with uvicorn's (the date's value masked): on an app's response, on an answer the server
makes itself (400 for ambiguous framing) and on a websocket handshake."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from apps import server_flags
from support.servers import UvicornThread, engine_server

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no server header": {"server_header": False},
    "no date header": {"date_header": False},
    "neither": {"server_header": False, "date_header": False},
    "custom headers": {"headers": [("X-Frame-Options", "DENY"), ("x-spaced", " kept")]},
    "custom server": {"headers": [("Server", "edge"), ("X-A", "1")]},
    "custom headers, no server header": {"server_header": False, "headers": [("X-A", "1")]},
}

PLAIN = b"GET /plain HTTP/1.1\r\nHost: test\r\n\r\n"
AMBIGUOUS = b"POST /count HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
DATE = re.compile(rb"^date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")


def head_lines(port: int, request: bytes) -> list[bytes]:
    """The status line and header lines of the first response, the date's value masked."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    masked = []
    for line in lines:
        if line.startswith(b"date: "):
            assert DATE.match(line), line
            line = b"date: <now>"
        masked.append(line)
    return masked


@pytest.fixture(params=list(CONFIGS), scope="module")
def ports(request: pytest.FixtureRequest) -> Any:
    options = CONFIGS[request.param]
    with (
        UvicornThread(server_flags.create_app(), **options) as reference,
        engine_server(server_flags.create_app(), **options) as engine,
    ):
        yield reference.port, engine.port


@pytest.mark.parametrize("request_bytes", [PLAIN, AMBIGUOUS], ids=["app response", "server's 400"])
def test_same_head_as_uvicorn(ports: tuple[int, int], request_bytes: bytes) -> None:
    reference, engine = ports
    assert head_lines(engine, request_bytes) == head_lines(reference, request_bytes)


def test_same_defaults_on_the_websocket_handshake(ports: tuple[int, int]) -> None:
    """The 101's own headers are ordered and cased differently by uvicorn's websockets library;
    the server's defaults are the same lines, in the same order."""
    reference, engine = ports

    def defaults(lines: list[bytes]) -> list[bytes]:
        names = (b"date:", b"server:", b"x-")
        return [line for line in lines[1:] if line.lower().startswith(names)]

    expected, got = head_lines(reference, HANDSHAKE), head_lines(engine, HANDSHAKE)
    assert got[0] == expected[0] == b"HTTP/1.1 101 Switching Protocols"
    assert defaults(got) == defaults(expected)
