"""A websocket client on a raw socket, to send what a well-behaved client library never would
(bad frames, no pongs, no reads) and see exactly what the server sends back."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Collection
from dataclasses import dataclass

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0, length: int | None = None
) -> bytes:
    """One frame; ``length`` overrides the length field (the payload is then not checked)."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if mask else 0
    if size < 126:
        head = bytes([first, bit | size])
    elif size < 1 << 16:
        head = bytes([first, bit | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass(frozen=True)
class Received:
    opcode: int
    payload: bytes
    #: The frame's first byte: FIN, RSV1-3, opcode.
    first: int = 0

    @property
    def close(self) -> tuple[int | None, str]:
        """A close frame's code and reason."""
        if len(self.payload) < 2:
            return None, ""
        return struct.unpack("!H", self.payload[:2])[0], self.payload[2:].decode(errors="replace")


class RawWebSocket:
    """An open websocket on 127.0.0.1:``port``; nothing is read or answered unless asked."""

    def __init__(
        self,
        port: int,
        path: str = "/echo",
        *,
        rcvbuf: int | None = None,
        timeout: float = 5.0,
        extensions: str | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        offer = "" if extensions is None else f"Sec-WebSocket-Extensions: {extensions}\r\n"
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                self.sock.close()
                raise ConnectionError("closed during the handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            self.sock.close()
            raise ConnectionError(f"handshake refused: {status!r}")
        #: The handshake response's headers (names in lower case).
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.decode("latin-1").partition(":") for line in head.split(b"\r\n")[1:] if line)
        }
        self._buffer = b""
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frames(
        self,
        duration: float,
        *,
        answer_pings: bool = False,
        until_close: bool = True,
        stop_at: Collection[int] = (),
    ) -> list[Received]:
        """Frames received within ``duration`` seconds (or until the server closes, or until a
        frame with an opcode in ``stop_at``)."""
        received: list[Received] = []
        deadline = time.monotonic() + duration
        while not self.eof and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self._buffer += chunk
            while (parsed := self._parse()) is not None:
                received.append(parsed)
                if answer_pings and parsed.opcode == OP_PING:
                    self.send(frame(OP_PONG, parsed.payload))
                if (until_close and parsed.opcode == OP_CLOSE) or parsed.opcode in stop_at:
                    return received
        return received

    def _parse(self) -> Received | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        size, offset = buffer[1] & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                return None
            size, offset = struct.unpack("!H", buffer[2:4])[0], 4
        elif size == 127:
            if len(buffer) < 10:
                return None
            size, offset = struct.unpack("!Q", buffer[2:10])[0], 10
        if len(buffer) < offset + size:
            return None
        self._buffer = buffer[offset + size :]
        return Received(buffer[0] & 0x0F, buffer[offset : offset + size], buffer[0])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
