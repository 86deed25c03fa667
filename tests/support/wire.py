"""Raw HTTP/1.1 exchanges, for what httpx will not send: unnormalised targets, HTTP/1.0,
pipelining, ``Expect: 100-continue``, malformed requests.

``exchange`` writes bytes to a fresh connection and parses everything the server sends back
(h11, as a client) until the server closes or goes quiet; ``compare_wire`` does it on both
servers and compares the transcripts. ``{HOST}`` in the request becomes ``127.0.0.1:<port>``
of the server at hand; ``date`` and ``server`` headers are dropped and the port is replaced
by ``<PORT>`` as in ``compare``.
"""

import difflib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h11

from support.compare import IGNORED_HEADERS, _replace_port

QUIET_TIMEOUT = 1.0  # after a complete response (or when silence is expected): nothing more is coming
FIRST_RESPONSE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Wire:
    """One raw exchange.

    ``parts`` are written in order; with ``wait_for_continue`` the parts after the first go
    only once an interim (1xx) response arrived. ``methods`` are the request methods, in
    order, when any is HEAD (the parser must know a HEAD response has no body).
    ``expect_silence``: the server is expected to say nothing (e.g. it is still waiting for
    the rest of a body), so waiting stops after ``QUIET_TIMEOUT``.
    """

    parts: Sequence[bytes]
    id: str
    wait_for_continue: bool = False
    methods: Sequence[str] = ()
    expect_silence: bool = False

    def label(self) -> str:
        return self.id


def _headers(headers: Any, port: int) -> list[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for name, value in headers:
        key = bytes(name).decode("latin-1").lower()
        if key in IGNORED_HEADERS:
            continue
        groups.setdefault(key, []).append(_replace_port(bytes(value), port).decode("latin-1"))
    return [(name, value) for name, values in sorted(groups.items()) for value in values]


def exchange(port: int, wire: Wire) -> list[tuple[Any, ...]]:
    events: list[tuple[Any, ...]] = []
    host = f"127.0.0.1:{port}".encode()
    parts = [part.replace(b"{HOST}", host) for part in wire.parts]
    methods = list(wire.methods)
    conn = h11.Connection(h11.CLIENT)
    # h11 as a client parses a response only after "sending" a request; feed it one per
    # response cycle, with the real method (nothing from it is written to the socket).
    _placeholder_request(conn, methods)
    body = bytearray()
    first_timeout = QUIET_TIMEOUT if wire.expect_silence else FIRST_RESPONSE_TIMEOUT
    with socket.create_connection(("127.0.0.1", port), timeout=first_timeout) as sock:
        sock.sendall(parts[0])
        pending = list(parts[1:])
        if pending and not wire.wait_for_continue:
            for part in pending:
                sock.sendall(part)
            pending = []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                events.append(("unparseable response", str(exc)))
                break
            if event is h11.NEED_DATA:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    events.append(("server quiet, connection left open",))
                    break
                except ConnectionResetError:
                    events.append(("connection reset",))
                    break
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                events.append(
                    (
                        "interim",
                        event.status_code,
                        event.reason.decode("latin-1"),
                        _headers(event.headers, port),
                    )
                )
                if pending:
                    for part in pending:
                        sock.sendall(part)
                    pending = []
            elif isinstance(event, h11.Response):
                events.append(
                    (
                        "response",
                        event.http_version.decode(),
                        event.status_code,
                        event.reason.decode("latin-1"),
                        _headers(event.headers, port),
                    )
                )
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                events.append(("body", _replace_port(bytes(body), port)))
                body = bytearray()
                sock.settimeout(QUIET_TIMEOUT)
                if conn.their_state is h11.DONE and conn.our_state is h11.DONE:
                    conn.start_next_cycle()
                    _placeholder_request(conn, methods)
            elif isinstance(event, h11.ConnectionClosed):
                events.append(("closed",))
                break
    return events


def _placeholder_request(conn: h11.Connection, methods: list[str]) -> None:
    method = methods.pop(0) if methods else "GET"
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())


def compare_wire(pair: Any, wire: Wire) -> list[tuple[Any, ...]]:
    reference = exchange(pair.reference.port, wire)
    engine = exchange(pair.engine.port, wire)
    if reference != engine:
        diff = difflib.unified_diff(
            [repr(e) for e in reference],
            [repr(e) for e in engine],
            "uvicorn",
            "engine",
            lineterm="",
            n=2,
        )
        raise AssertionError(f"{wire.label()}: engine differs from uvicorn\n" + "\n".join(diff))
    return reference
