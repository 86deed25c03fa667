"""Raw HTTP/1.1 exchanges with requests a server should refuse: write the bytes, read back what
the server says as the status lines of its responses and how the connection ended, without
trusting the server to answer well (``exchange``).

An exchange ends when the server closes the connection (``closed``; a reset counts as a close:
which of the two a client sees depends on timing), switches protocols (``switched``, after a
101), or says nothing more for ``QUIET`` seconds after complete responses or ``SILENT``
seconds before one (``open``).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

QUIET = 0.3  # after complete responses: nothing more is coming
SILENT = 2.0  # before a complete response: the server is waiting for more
LIMIT = 10.0  # at most, whatever the server does


@dataclass(frozen=True)
class Outcome:
    statuses: tuple[str, ...]
    end: str

    def __str__(self) -> str:
        return " | ".join([*self.statuses, self.end])


def responses(data: bytes, head: bool = False) -> tuple[list[str], str]:
    """The status lines of the responses in ``data`` and where they end: ``complete``,
    ``partial``, ``switched`` (after a 101) or ``until-close`` (a body without a length)."""
    statuses: list[str] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return statuses, "partial"
        status, *lines = data[pos:end].split(b"\r\n")
        statuses.append(status.decode("latin-1"))
        fields = {}
        for line in lines:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        parts = status.split(b" ")
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        pos = end + 4
        if code == 101:
            return statuses, "switched"
        if 100 <= code < 200 or code in (204, 304) or head:
            continue
        if fields.get(b"transfer-encoding") == b"chunked":
            while True:
                size_end = data.find(b"\r\n", pos)
                if size_end < 0:
                    return statuses, "partial"
                size = int(data[pos:size_end].split(b";")[0], 16)
                pos = size_end + 2
                if size == 0:
                    trailers = data.find(b"\r\n", pos)
                    if trailers < 0:
                        return statuses, "partial"
                    pos = trailers + 2 if trailers == pos else data.find(b"\r\n\r\n", pos) + 4
                    break
                if len(data) < pos + size + 2:
                    return statuses, "partial"
                pos += size + 2
        elif b"content-length" in fields:
            pos += int(fields[b"content-length"])
            if pos > len(data):
                return statuses, "partial"
        else:
            return statuses, "until-close"
    return statuses, "complete"


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server answered and closed before taking it all


def exchange(port: int, data: bytes, head: bool = False) -> Outcome:
    """Writes ``data`` on a new connection to ``port`` (127.0.0.1) and reads the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=SILENT) as sock:
        sender = threading.Thread(target=_send, args=(sock, data), daemon=True)
        sender.start()
        received = b""
        deadline = time.monotonic() + LIMIT
        while True:
            statuses, state = responses(received, head)
            if state == "switched":
                end = "switched"
                break
            sock.settimeout(QUIET if statuses and state == "complete" else SILENT)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                end = "open"
                break
            except ConnectionResetError:
                end = "closed"
                break
            if not chunk:
                end = "closed"
                break
            received += chunk
            if time.monotonic() > deadline:
                end = "open"
                break
        try:
            sock.shutdown(socket.SHUT_RDWR)  # a sender still blocked gives up
        except OSError:
            pass
        sender.join(LIMIT)
    return Outcome(tuple(responses(received, head)[0]), end)
