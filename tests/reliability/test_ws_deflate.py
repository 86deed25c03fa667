"""permessage-deflate (RFC 7692, issue 26) against stock uvicorn, side by side on raw sockets:
the response's ``Sec-WebSocket-Extensions`` for each offer (or the 400 for one that does not
parse), the frames the server sends back byte for byte (compressed as uvicorn compresses
them), fragmented and interleaved compressed messages, a decompression bomb beyond
``ws_max_size``, RSV1 where it does not belong, and ``ws_per_message_deflate=False``."""

from __future__ import annotations

import contextlib
import random
import re
import socket
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from apps import ws_limits
from support.process_server import ProcessServer
from support.rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawWebSocket, Received, frame
from support.servers import UvicornThread, engine_server

from .test_websockets import CASES, REASON_DIFFERENCES, app_ended, get

MiB = 1024 * 1024
RSV1 = 0x40
TAIL = b"\x00\x00\xff\xff"


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


@contextlib.contextmanager
def recorded(port: int) -> Iterator[None]:
    """Returns once the app has recorded the end of the websocket opened inside, so that no
    late record lands in a later test's."""
    before = len(get(port, "/ended"))
    yield
    assert len(app_ended(port, before + 1)) == before + 1


# -- negotiation ------------------------------------------------------------------------------

OFFERS = {
    "no offer": None,
    "bare": "permessage-deflate",
    "client window, no value (browsers, websockets)": "permessage-deflate; client_max_window_bits",
    "smaller windows": "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
    "larger windows": "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
    "no context takeover": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "client no context takeover": "permessage-deflate; client_no_context_takeover",
    "server window of 8 bits (declined)": "permessage-deflate; server_max_window_bits=8",
    "a declined offer, then a quoted one": (
        'permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits="9"'
    ),
    "client window of 8 bits": "permessage-deflate; client_max_window_bits=8",
    "another extension first": "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=11",
    "two offers": "permessage-deflate; client_no_context_takeover, permessage-deflate",
    "unknown parameter": "permessage-deflate; unknown=1",
    "window out of range": "permessage-deflate; client_max_window_bits=16",
    "repeated parameter": "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "value where none belongs": "permessage-deflate; client_no_context_takeover=yes",
    "unknown extension only": "foo; bar=baz",
    "empty list elements and spaces": " , permessage-deflate ;client_max_window_bits = 11 ,, ",
    "name in other case": "PerMessage-Deflate",
    "two header lines": (
        "permessage-deflate; server_max_window_bits=8\r\nSec-WebSocket-Extensions: permessage-deflate; "
        "client_max_window_bits"
    ),
    # not parsable: 400
    "dangling semicolon": "permessage-deflate;",
    "empty": "",
    "quoted value not a token": 'permessage-deflate; client_max_window_bits="1 1"',
    "two tokens": "permessage-deflate; server_max_window_bits=1 0",
    "a malformed second line": "permessage-deflate\r\nSec-WebSocket-Extensions: ;",
}


def handshake(port: int, offer: str | None) -> tuple[str, str | None]:
    """``("101", the response's Sec-WebSocket-Extensions)``, or a refusal's status and body."""
    try:
        with recorded(port), RawWebSocket(port, extensions=offer) as ws:
            return "101", ws.headers.get("sec-websocket-extensions")
    except ConnectionError as exc:
        status = re.search(r"HTTP/1\.1 (\d{3})", str(exc))
        assert status, exc
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + f"Sec-WebSocket-Extensions: {offer}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after a refusal
            answer += chunk
    return status.group(1), answer.partition(b"\r\n\r\n")[2].decode()


@pytest.mark.parametrize("name", list(OFFERS))
def test_negotiation_as_uvicorn(ports: dict[str, int], name: str) -> None:
    expected = handshake(ports["uvicorn"], OFFERS[name])
    assert handshake(ports["engine"], OFFERS[name]) == expected


def test_negotiation_examples(ports: dict[str, int]) -> None:
    """What the comparisons above compare (so that a uvicorn that changed would show)."""
    engine = ports["engine"]
    assert handshake(engine, None) == ("101", None)
    assert handshake(engine, "permessage-deflate; client_max_window_bits") == (
        "101",
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
    )
    assert handshake(engine, OFFERS["no context takeover"]) == (
        "101",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
    )
    assert handshake(engine, OFFERS["server window of 8 bits (declined)"]) == ("101", None)
    assert handshake(engine, "permessage-deflate;") == (
        "400",
        "Failed to open a WebSocket connection: invalid Sec-WebSocket-Extensions header: expected token at 19 in "
        "permessage-deflate;.\n",
    )


# -- compressed round trips, byte for byte ----------------------------------------------------


class Client:
    """The client's half of permessage-deflate, with zlib, for what the handshake agreed."""

    def __init__(self, agreed: str) -> None:
        params = dict(p.strip().partition("=")[::2] for p in agreed.split(";")[1:])
        self.server_bits = int(params.get("server_max_window_bits", "15"))
        self.client_bits = int(params.get("client_max_window_bits", "15"))
        self.server_reset = "server_no_context_takeover" in params
        self.client_reset = "client_no_context_takeover" in params
        self.inflater = zlib.decompressobj(wbits=-self.server_bits)
        self.deflater = zlib.compressobj(wbits=-max(self.client_bits, 9))

    def compress(self, data: bytes) -> bytes:
        if self.client_reset:
            self.deflater = zlib.compressobj(wbits=-max(self.client_bits, 9))
        compressed = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        assert compressed.endswith(TAIL)
        return compressed[:-4]

    def inflate(self, payload: bytes) -> bytes:
        if self.server_reset:
            self.inflater = zlib.decompressobj(wbits=-self.server_bits)
        return self.inflater.decompress(payload + TAIL)


def _text(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = ["websocket", "deflate", "frame", "caf\u00e9", "\u2603", "window", "zlib", "uvicorn"]
    return " ".join(rng.choice(words) for _ in range(size // 6)).encode()[:size].decode(errors="ignore").encode()


MESSAGES: list[tuple[int, bytes]] = [
    (OP_TEXT, b"hello"),
    (OP_TEXT, b"hello"),  # context takeover: the second one is shorter
    (OP_TEXT, b""),
    (OP_BINARY, bytes(range(256)) * 4),
    (OP_TEXT, _text(100_000, 1)),
    (OP_BINARY, random.Random(2).randbytes(70_000)),  # incompressible: larger compressed
    (OP_TEXT, _text(3 * MiB, 3)),
    (OP_BINARY, b"\x00" * (2 * MiB)),
]


def round_trip(
    port: int, offer: str | None, messages: list[tuple[int, bytes]], *, pieces: int = 1, compress: bool = True
) -> tuple[str | None, list[Received]]:
    """Each message sent (compressed when agreed and ``compress``, in ``pieces`` frames with a
    ping after the first), the server's echo received; its frames, checked to inflate back."""
    received: list[Received] = []
    with recorded(port), RawWebSocket(port, extensions=offer, timeout=20) as ws:
        agreed = ws.headers.get("sec-websocket-extensions")
        client = Client(agreed) if agreed else None
        for opcode, message in messages:
            payload = client.compress(message) if client and compress else message
            rsv = RSV1 if client and compress else 0
            cuts = [len(payload) * i // pieces for i in range(pieces + 1)]
            parts = [payload[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                ws.send(frame(OP_CONT if i else opcode, part, fin=last, rsv=0 if i else rsv))
                if i == 0 and not last:
                    ws.send(frame(OP_PING, b"between"))
            frames = ws.frames(20, stop_at=(OP_TEXT, OP_BINARY))
            received += frames
            (echo,) = [f for f in frames if f.opcode in (OP_TEXT, OP_BINARY)]
            assert echo.opcode == opcode
            assert bool(echo.first & RSV1) == bool(client)
            assert (client.inflate(echo.payload) if client else echo.payload) == message
    return agreed, received


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate",
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        None,
    ],
)
def test_round_trips_byte_for_byte(ports: dict[str, int], offer: str | None) -> None:
    """Text and binary, small and large, compressible or not: the echo's frames are the bytes
    uvicorn sends (same compression, same context kept across messages)."""
    expected = round_trip(ports["uvicorn"], offer, MESSAGES)
    got = round_trip(ports["engine"], offer, MESSAGES)
    assert got[0] == expected[0]
    assert [(f.first, f.payload) for f in got[1]] == [(f.first, f.payload) for f in expected[1]]


@pytest.mark.parametrize("pieces", [2, 5])
def test_fragmented_compressed_messages(ports: dict[str, int], pieces: int) -> None:
    """A compressed message in several frames (RSV1 on the first only), a ping in between."""
    messages = [(OP_TEXT, _text(50_000, 4)), (OP_BINARY, b"abc" * 1000), (OP_TEXT, b"caf\xc3\xa9")]
    offer = "permessage-deflate; client_max_window_bits"
    expected = round_trip(ports["uvicorn"], offer, messages, pieces=pieces)
    got = round_trip(ports["engine"], offer, messages, pieces=pieces)
    assert [(f.first, f.payload) for f in got[1]] == [(f.first, f.payload) for f in expected[1]]
    assert any(f.opcode == 10 for f in got[1])  # the pong


def test_uncompressed_messages_on_a_deflate_websocket(ports: dict[str, int]) -> None:
    """RSV1 is per message: the client may send plain ones; the server still compresses."""
    offer = "permessage-deflate"
    expected = round_trip(ports["uvicorn"], offer, MESSAGES[:5], compress=False)
    got = round_trip(ports["engine"], offer, MESSAGES[:5], compress=False)
    assert [(f.first, f.payload) for f in got[1]] == [(f.first, f.payload) for f in expected[1]]


def test_the_websockets_client_round_trips() -> None:
    """A browser-like client library with its default offer: messages round-trip compressed."""
    from websockets.sync.client import connect

    messages: list[str | bytes] = ["hello", "caf\u00e9 \u2603" * 1000, b"\x00\x01" * 50_000, ""]
    with both() as started:
        for name, port in started.items():
            with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10, max_size=None) as ws:
                (extension,) = ws.protocol.extensions
                assert extension.name == "permessage-deflate", name
                for message in messages:
                    ws.send(message)
                    assert ws.recv(timeout=10) == message, name


# -- failures ---------------------------------------------------------------------------------


def failed(port: int, data: bytes, offer: str | None = "permessage-deflate") -> tuple[tuple[int | None, str], Any]:
    """The close frame the server sent (then EOF) and what the app was told."""
    httpx.delete(f"http://127.0.0.1:{port}/state", timeout=5)
    with RawWebSocket(port, extensions=offer) as ws:
        with contextlib.suppress(OSError):
            ws.send(data)
        frames = ws.frames(10)
        assert frames and frames[-1].opcode == OP_CLOSE, frames
        ws.frames(2)
        assert ws.eof
    (told,) = app_ended(port)
    return frames[-1].close, told


def compressed(data: bytes, wbits: int = 15) -> bytes:
    deflater = zlib.compressobj(wbits=-wbits)
    return (deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]


BOMB = compressed(b"\x00" * (16 * MiB + 1))
HALF = compressed(b"a" * 600)
FAILURES = {
    "bomb beyond 16 MiB": frame(OP_BINARY, BOMB, rsv=RSV1),
    "compressed text not utf-8": frame(OP_TEXT, compressed(b"\xff\xfe"), rsv=RSV1),
    "not deflate data": frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=RSV1),
    "rsv1 on a continuation": (frame(OP_BINARY, HALF[:5], fin=False, rsv=RSV1) + frame(OP_CONT, HALF[5:], rsv=RSV1)),
    "rsv1 on a ping": frame(OP_PING, b"x", rsv=RSV1),
    "rsv2 on a compressed frame": frame(OP_TEXT, compressed(b"hi"), rsv=RSV1 | 0x20),
    "interleaved compressed text": (
        frame(OP_TEXT, HALF[:5], fin=False, rsv=RSV1) + frame(OP_TEXT, compressed(b"b"), rsv=RSV1)
    ),
    "compressed continuation alone": frame(OP_CONT, compressed(b"x"), rsv=RSV1),
    "compressed frame over the size on the wire": frame(OP_BINARY, b"", rsv=RSV1, length=16 * MiB + 10)[:14],
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_compressed_frame_failures_as_uvicorn(ports: dict[str, int], case: str) -> None:
    expected = failed(ports["uvicorn"], FAILURES[case])
    assert failed(ports["engine"], FAILURES[case]) == expected


def test_bomb_examples(ports: dict[str, int]) -> None:
    """A 17 KB frame that inflates beyond 16 MiB is closed 1009 without being inflated whole."""
    assert len(BOMB) < 20_000
    closing, told = failed(ports["engine"], FAILURES["bomb beyond 16 MiB"])
    assert closing == (1009, "frame exceeds limit of 16777216 bytes")
    assert told == {"code": 1009, "reason": "frame exceeds limit of 16777216 bytes"}


def test_bomb_over_fragments_and_max_size() -> None:
    """``ws_max_size`` bounds the inflated message, counted over its fragments."""
    deflater = zlib.compressobj(wbits=-15)
    first = deflater.compress(b"a" * 600) + deflater.flush(zlib.Z_SYNC_FLUSH)
    second = (deflater.compress(b"b" * 600) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]
    with both(ws_max_size=1000) as started:
        seen = {}
        for name, port in started.items():
            seen[name] = failed(port, frame(OP_TEXT, first, fin=False, rsv=RSV1) + frame(OP_CONT, second))
            with recorded(port), RawWebSocket(port, extensions="permessage-deflate") as ws:
                ws.send(frame(OP_TEXT, compressed(b"a" * 1000), rsv=RSV1))
                (echo,) = ws.frames(5, stop_at=(OP_TEXT,))
                assert zlib.decompressobj(wbits=-12).decompress(echo.payload + TAIL) == b"a" * 1000
                ws.send(frame(OP_TEXT, compressed(b"a" * 1001), rsv=RSV1))
                seen[name, "one byte over"] = ws.frames(5)[-1].close
        assert seen["engine"] == seen["uvicorn"]
        assert seen["engine"][0] == (1009, "frame after reading 600 bytes exceeds limit of 1000 bytes")
        assert (
            seen["engine", "one byte over"]
            == seen["uvicorn", "one byte over"]
            == (
                1009,
                "frame exceeds limit of 1000 bytes",
            )
        )


def test_rsv1_without_negotiation(ports: dict[str, int]) -> None:
    """A client that offered nothing and sends a compressed frame: 1002, as uvicorn."""
    data = frame(OP_TEXT, compressed(b"hello"), rsv=RSV1)
    expected = failed(ports["uvicorn"], data, offer=None)
    assert (
        failed(ports["engine"], data, offer=None)
        == expected
        == (
            (1002, "reserved bits must be 0"),
            {"code": 1002, "reason": "reserved bits must be 0"},
        )
    )


@pytest.mark.parametrize("case", list(CASES))
def test_protocol_errors_with_deflate_negotiated(ports: dict[str, int], case: str) -> None:
    """Issue 26's protocol errors on a websocket that agreed permessage-deflate (plain frames:
    the extension passes them through) get uvicorn's close codes, as without it."""
    expected = failed(ports["uvicorn"], CASES[case])
    got = failed(ports["engine"], CASES[case])
    assert got[0][0] == expected[0][0] and got[1]["code"] == expected[1]["code"]
    if case not in REASON_DIFFERENCES:
        assert got == expected


# -- switched off -----------------------------------------------------------------------------


def test_per_message_deflate_false() -> None:
    """``ws_per_message_deflate=False``: offers are ignored (no header, no 400 for a malformed
    one, as uvicorn), messages go uncompressed, and RSV1 is a protocol error."""
    with both(ws_per_message_deflate=False) as started:
        seen: dict[str, Any] = {}
        for name, port in started.items():
            seen[name] = [handshake(port, offer) for offer in OFFERS.values()]
            agreed, frames = round_trip(port, "permessage-deflate; client_max_window_bits", MESSAGES[:4])
            assert agreed is None
            assert not any(f.first & RSV1 for f in frames)
            seen[name, "rsv1"] = failed(port, frame(OP_TEXT, compressed(b"hello"), rsv=RSV1))
        assert seen["engine"] == seen["uvicorn"] == [("101", None)] * len(OFFERS)
        assert seen["engine", "rsv1"] == seen["uvicorn", "rsv1"]
        assert seen["engine", "rsv1"][0] == (1002, "reserved bits must be 0")


# -- memory -----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["incompressible", "compressible"])
def test_memory_stays_bounded_for_a_compressing_peer_that_does_not_read(payload: str) -> None:
    """Compressed 1 MiB messages to the echo from a peer that never reads: incompressible ones
    (the echo, compressed back, fills the socket: reading stops) and ones that inflate 1000
    times (the echo stays small, reading goes on: each inflated message must be let go). The
    server's memory stays within 50 MiB of idle either way."""
    data = random.Random(6).randbytes(MiB) if payload == "incompressible" else b"m" * MiB
    # no context takeover: each message compresses on its own, so one frame serves for all
    message = frame(OP_BINARY, compressed(data), rsv=RSV1)
    offer = "permessage-deflate; client_no_context_takeover"
    growth, sent_by = {}, {}
    for kind in ("uvicorn", "engine"):
        with ProcessServer(kind, "apps.ws_limits:create_app") as server:
            idle = peak = server.rss()
            with RawWebSocket(server.port, "/echo", rcvbuf=65536, timeout=2, extensions=offer) as ws:
                assert ws.headers.get("sec-websocket-extensions", "").startswith("permessage-deflate")
                sent = 0
                with contextlib.suppress(TimeoutError):
                    while sent < 300:
                        ws.send(message)
                        sent += 1
                        peak = max(peak, server.rss())
                for _ in range(10):
                    time.sleep(0.1)
                    peak = max(peak, server.rss())
            growth[kind], sent_by[kind] = peak - idle, sent
    if payload == "incompressible":
        assert sent_by["engine"] < 100, sent_by
    assert growth["engine"] < 50, (growth, sent_by)
