"""A bounded HTTP/1.1 keep-alive load for the tests that stop, kill or recycle servers under
traffic (``tests/reliability/test_drain.py``): ``clients`` threads, each on its own connection,
send ``GET /work/{rid}`` (``apps.drain``; or ``path``) one after another until stopped, and record what
became of every request they sent.

Like urllib3 and other careful clients, a thread checks before reusing a connection that the
server has not closed it (a closed one is replaced, nothing was sent on it); a refused connect
is retried. So every recorded request was written to a connection the server had accepted and
not yet closed, and "failed" means precisely: the connection was reset, or ended, before the
whole response came (RFC 9112 lets a client retry such a request only when it is idempotent:
these are counted, not retried).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import select
import socket
import threading
import time

REQUEST_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Sent:
    rid: int
    #: The pid that answered earlier requests on this connection (None: its first request).
    conn_pid: int | None
    #: "ok", "reset" (ECONNRESET/EPIPE), "eof" (closed before any byte of the answer),
    #: "partial" (closed inside it) or "timeout".
    outcome: str
    status: int = 0
    pid: int | None = None
    #: The answer said ``connection: close``.
    closing: bool = False


class Load:
    def __init__(self, port: int, clients: int = 4, path: str = "/work/{rid}", spread: list[int] | None = None) -> None:
        """``spread``: worker pids the clients' first connections are spread over (client
        ``i`` reconnects until ``spread[i % len(spread)]`` answers; one accept queue need not
        spread a few connections over the workers)."""
        self.port = port
        self.path = path
        self.spread = spread
        self.clients = clients
        self.sent: list[Sent] = []
        self.refused = 0
        self.replaced = 0  # connections found closed by the server before reuse
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def answered(self) -> int:
        return sum(1 for s in self.sent if s.outcome == "ok")

    def pids(self) -> set[int]:
        return {s.pid for s in self.sent if s.pid is not None}

    def failed(self) -> list[Sent]:
        return [s for s in self.sent if s.outcome != "ok"]

    def wait_for(self, done: object, what: str, timeout: float = 60.0) -> None:
        """Polls ``done()`` (a callable) until true; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {len(self.sent)} sent, {self.answered()} answered")
            time.sleep(0.01)

    def _client(self, index: int) -> None:
        sock: socket.socket | None = None
        conn_pid: int | None = None
        if self.spread:
            sock, conn_pid = self._connect_to(self.spread[index % len(self.spread)])
        while not self._stop.is_set():
            if sock is not None and _closed_by_peer(sock):
                sock.close()
                sock, conn_pid = None, None
                self.replaced += 1
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=REQUEST_TIMEOUT)
                except OSError:
                    self.refused += 1
                    time.sleep(0.01)  # a retry's pause: the server is not listening (yet/any more)
                    continue
            rid = next(self._ids)
            sent = _exchange(sock, self.path.format(rid=rid), rid, conn_pid)
            self.sent.append(sent)
            if sent.outcome != "ok" or sent.closing:
                sock.close()
                sock, conn_pid = None, None
            else:
                conn_pid = sent.pid
        if sock is not None:
            sock.close()

    def _connect_to(self, pid: int) -> tuple[socket.socket | None, int | None]:
        """A connection that worker ``pid`` answered (bounded tries; else none)."""
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=REQUEST_TIMEOUT)
            sent = _exchange(sock, self.path.format(rid=0), 0, None)
            if sent.outcome == "ok" and sent.pid == pid and not sent.closing:
                return sock, pid
            sock.close()
        return None, None


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the server has closed the (idle) connection: readable, and nothing to read."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _exchange(sock: socket.socket, path: str, rid: int, conn_pid: int | None) -> Sent:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    data = b""
    try:
        sock.sendall(request)
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return Sent(rid, conn_pid, "partial" if data else "eof")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(fields.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return Sent(rid, conn_pid, "partial")
            body += chunk
    except (ConnectionResetError, BrokenPipeError):
        return Sent(rid, conn_pid, "reset")
    except TimeoutError:
        return Sent(rid, conn_pid, "timeout")
    pid = json.loads(body).get("pid") if status == 200 else None
    closing = fields.get("connection", "").lower() == "close"
    return Sent(rid, conn_pid, "ok", status, pid, closing)
