"""Hostile request framing (issue 25): the shapes request smuggling uses behind a proxy, and
bodies framed wrongly by the client, sent on the wire to uvicorn and the engine. Each must be
answered as uvicorn answers it (400 ``Invalid HTTP request received.``, the connection closed),
never served, never a 500 from the app, and never logged as a server error."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from apps import wire
from support.compare import PairClients
from support.logs import ENGINE_THREAD, engine_errors
from support.wire import Wire, compare_wire

from .conftest import pair_fixture

pair = pair_fixture(wire.create_app)

H = b"Host: {HOST}\r\n"


def post(*headers: bytes, body: bytes = b"") -> bytes:
    return b"POST /echo/x HTTP/1.1\r\n" + H + b"".join(headers) + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked\r\n"

CASES = [
    Wire([post(CHUNKED, b"Content-Length: 3\r\n", body=b"3\r\nabc\r\n0\r\n\r\n")], "chunked and content-length"),
    Wire([post(b"Content-Length: 3\r\n", CHUNKED, body=b"3\r\nabc\r\n0\r\n\r\n")], "content-length then chunked"),
    Wire([post(b"Transfer-Encoding: chunked, chunked\r\n", body=b"3\r\nabc\r\n0\r\n\r\n")], "chunked twice"),
    Wire([post(CHUNKED, CHUNKED, body=b"3\r\nabc\r\n0\r\n\r\n")], "two transfer-encoding headers"),
    Wire([post(b"Content-Length: 3\r\n", b"Content-Length: 3\r\n", body=b"abc")], "two equal content-lengths"),
    Wire([post(b"Content-Length: 3\r\n", b"content-length: 3\r\n", body=b"abc")], "two content-lengths, two casings"),
    Wire([post(b"Content-Length: 3, 3\r\n", body=b"abc")], "one content-length line of two equal values"),
    Wire(
        [post(CHUNKED, b"Content-Length: 3, 3\r\n", body=b"3\r\nabc\r\n0\r\n\r\n")], "chunked and a content-length list"
    ),
    Wire([b"GET /hello HTTP/1.1\nHost: {HOST}\r\n\r\n"], "request line ending in a bare LF"),
    Wire([b"GET /hello HTTP/1.1\r\nHost: {HOST}\nX: y\r\n\r\n"], "header line ending in a bare LF"),
    Wire([b"GET /hello HTTP/1.1\r\nHost: {HOST}\r\n\n"], "head ending in a bare LF"),
    Wire([b"GET /hello HTTP/1.1\nHost: {HOST}\n\n"], "head of bare LFs only"),
    Wire([b"\nGET /hello HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"], "bare LF before the request line"),
    Wire([post(b"Content-Length: 4\r\nConnection: close\r\n", body=b"\n\n\n\n")], "bare LFs in a body"),
    Wire([post(CHUNKED, body=b"zz\r\nabc\r\n0\r\n\r\n")], "chunk size zz"),
    Wire([post(CHUNKED, body=b"-1\r\nabc\r\n0\r\n\r\n")], "chunk size -1"),
    Wire([post(CHUNKED, body=b"0x16\r\nabc\r\n0\r\n\r\n")], "chunk size 0x16"),
    Wire([post(CHUNKED, body=b"10000000000000000\r\nabc\r\n0\r\n\r\n")], "chunk size 2^64"),
    Wire([post(CHUNKED, body=b"000000000000000003\r\nabc\r\n0\r\n\r\n")], "chunk size of 18 digits"),
    Wire([post(CHUNKED, body=b"\r\nabc\r\n0\r\n\r\n")], "empty chunk size line"),
    Wire([post(CHUNKED, body=b"3\r\nabcdef\r\n0\r\n\r\n")], "chunk longer than its size"),
    Wire([post(CHUNKED, body=b"3\r\nabc0\r\n\r\n")], "chunk without its CRLF"),
    Wire([post(CHUNKED, body=b"3\nabc\n0\n\n")], "chunked body with bare LF"),
    Wire([post(CHUNKED, body=b"3;a\nb\r\nabc\r\n0\r\n\r\n")], "bare LF in a chunk extension"),
    Wire([post(CHUNKED, body=b"0\r\nGET /hello HTTP/1.1\r\n\r\n")], "request line smuggled in the trailers"),
]

#: None left: what hyper's parser takes within the RFCs and uvicorn refuses (``Content-Length``
#: beside ``Transfer-Encoding``, equal ``Content-Length`` lines, bare LF line ends) is seen in
#: the head's raw bytes before hyper parses them (``native/head.rs``).
KNOWN_DIFFERENCES: dict[str, str] = {}


def _cases() -> list[object]:
    return [
        pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[case.label()]))
        if case.label() in KNOWN_DIFFERENCES
        else case
        for case in CASES
    ]


@pytest.mark.parametrize("wire_case", _cases(), ids=Wire.label)
def test_answered_as_uvicorn_answers(pair: PairClients, wire_case: Wire) -> None:
    with engine_errors() as errors:
        events = compare_wire(pair.pair, wire_case)
    assert not any(event[0] == "response" and event[2] >= 500 for event in events), events
    assert not errors, [r.getMessage() for r in errors]


def _raw(port: int, data: bytes, quiet: float = 1.0) -> bytes:
    """What the server sends back until it closes or says nothing for ``quiet`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while True:
            sock.settimeout(quiet if received else 10)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return received
            if not chunk:
                return received
            received += chunk


def test_a_huge_chunk_extension_is_refused(pair: PairClients) -> None:
    """Better than uvicorn on purpose: hyper caps chunk extensions (a 100 KB one is a
    resource attack, RFC 9112 7.1.1 lets a server limit them) and the engine answers 400;
    httptools reads past it and serves the request."""
    huge = post(CHUNKED, body=b"3;" + b"e" * 100_000 + b"\r\nabc\r\n0\r\n\r\n").replace(b"{HOST}", b"x")
    with engine_errors() as errors:
        answer = _raw(pair.pair.engine.port, huge)
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"Invalid HTTP request received."), answer
    assert not errors, [r.getMessage() for r in errors]
    assert _raw(pair.pair.reference.port, huge).startswith(b"HTTP/1.1 200 ")


HANDSHAKE = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


def test_websocket_version_other_than_13_gets_426_naming_13(pair: PairClients) -> None:
    """RFC 6455 4.4 (uvicorn answers 400 without naming the version it speaks)."""
    answer = _raw(pair.pair.engine.port, HANDSHAKE + KEY + b"Sec-WebSocket-Version: 99\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 426 "), answer
    assert b"\r\nsec-websocket-version: 13" in head, answer
    assert _raw(pair.pair.reference.port, HANDSHAKE + KEY + b"Sec-WebSocket-Version: 99\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )


@pytest.mark.parametrize(
    "key",
    [b"", b"Sec-WebSocket-Key: not base64!\r\n", b"Sec-WebSocket-Key: c2hvcnQ=\r\n"],
    ids=["missing", "not base64", "short"],
)
def test_websocket_key_missing_or_malformed_gets_400(pair: PairClients, key: bytes) -> None:
    for server in (pair.pair.engine, pair.pair.reference):
        answer = _raw(server.port, HANDSHAKE + key + b"Sec-WebSocket-Version: 13\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), (server, answer)


PIPELINED_BAD = {
    "chunked twice": b"POST /echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    "content-length and chunked": b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    "two equal content-lengths": b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    "a content-length list": b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx",
    "a header line ending in a bare LF": b"GET /hello HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
    "obs-fold": b"GET /hello HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    "a bad chunk size": b"POST /echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("bad", list(PIPELINED_BAD), ids=str)
def test_a_malformed_request_inside_a_pipeline_ends_it(pair: PairClients, bad: str) -> None:
    """Two good requests (one with a body), a bad one, one more: the two are answered, the bad
    one gets 400 and the connection closes, nothing after it is served. (uvicorn answers only
    the 400: it parses the whole pipeline before its app answers the first request.)"""
    good = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
    pipeline = good + post + PIPELINED_BAD[bad] + good
    answer = _raw(pair.pair.engine.port, pipeline)
    assert answer.count(b'{"hello":"world"}') == 1 and answer.count(b'"body_length":4') == 1, answer
    assert answer.count(b"HTTP/1.1 ") == 3, answer
    assert answer.count(b"HTTP/1.1 400 ") == 1 and answer.endswith(b"Invalid HTTP request received."), answer
    reference = _raw(pair.pair.reference.port, pipeline)
    assert reference.count(b"HTTP/1.1 400 ") == 1 and b'"world"' not in reference.split(b"HTTP/1.1 400 ")[1]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /hello HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",  # refused by the engine's head guard
        b"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",  # by hyper itself
    ],
    ids=["bare LF", "no colon"],
)
def test_an_invalid_head_is_logged_as_uvicorn_logs_it(
    pair: PairClients, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    def warned() -> bool:
        return any(
            (r.name.startswith("fastrapi") or r.threadName == ENGINE_THREAD)  # uvicorn.error, from the engine
            and r.levelno == logging.WARNING
            and r.getMessage() == INVALID
            for r in caplog.records
        )

    with caplog.at_level(logging.INFO):
        assert _raw(pair.pair.engine.port, head).startswith(b"HTTP/1.1 400 ")
        deadline = time.monotonic() + 10
        while not warned() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert warned(), [r.getMessage() for r in caplog.records]


INVALID = "Invalid HTTP request received."
