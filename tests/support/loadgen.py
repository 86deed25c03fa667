"""A load generator run as a subprocess (so it does not share the server's GIL).

``python loadgen.py URL CONNECTIONS REQUESTS`` opens CONNECTIONS keep-alive connections to
127.0.0.1, holds them all open at once (a barrier after each client's first
request), sends REQUESTS requests on each, checks every answer against the body its request
implies, and prints one JSON object: {"ok": n, "errors": [...], "ports": {client: [ports]},
"seconds": t}. A client's ports are its connection's local port plus the ``request.client.port``
the server reported: one value per client means one connection, correctly reported. A client
stops at its first transport error rather than reconnecting, so a server that drops
keep-alive connections shows up as errors.
"""

import asyncio
import json
import sys
import time
import urllib.parse
from typing import Any

import h11

OVERALL_TIMEOUT = 45.0


class _BrokenBarrier(RuntimeError):
    pass


class _Barrier:
    """``asyncio.Barrier`` (Python 3.11+) as far as this generator uses it, for Python 3.10."""

    def __init__(self, parties: int) -> None:
        self._parties = parties
        self._arrived = 0
        self._broken = False
        self._event = asyncio.Event()

    async def wait(self) -> None:
        self._arrived += 1
        if self._arrived >= self._parties:
            self._event.set()
        await self._event.wait()
        if self._broken:
            raise _BrokenBarrier

    async def abort(self) -> None:
        self._broken = True
        self._event.set()


Barrier: Any = getattr(asyncio, "Barrier", _Barrier)
BrokenBarrierError: Any = getattr(asyncio, "BrokenBarrierError", _BrokenBarrier)


def expected(client: int, seq: int) -> tuple[str, str, Any, Any]:
    """The request for (client, seq) and the JSON the app (``apps.load``) must answer with."""
    kind = seq % 4
    if kind == 0:
        tag = f"t{client}-{seq}"
        want = {"client": client, "seq": seq, "tag": tag, "sum": client * 1000 + seq}
        return ("GET", f"/async/{client}/{seq}?tag={tag}", None, want)
    if kind == 1:
        return (
            "GET",
            f"/sync/{client}/{seq}",
            None,
            {"client": client, "seq": seq, "kind": "sync"},
        )
    if kind == 2:
        payload = {"client": client, "seq": seq, "text": "\u00e9" * (seq % 7)}
        return ("POST", "/echo", payload, payload)
    return ("GET", f"/conn/{client}/{seq}", None, None)


class Connection:
    """One keep-alive HTTP/1.1 connection: asyncio streams for I/O, h11 for the protocol.

    (httpx.AsyncClient costs ~2.5 ms of CPU per request, which made the load generator, not
    the server, the bottleneck; h11 is the parser httpx itself uses, without the layers.)
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.h11 = h11.Connection(h11.CLIENT)
        self.local_port: int | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.local_port = self.writer.get_extra_info("sockname")[1]

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        headers = [("host", f"{self.host}:{self.port}"), ("user-agent", "diff-loadgen")]
        if body is not None:
            headers += [
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ]
        data = self.h11.send(h11.Request(method=method, target=path, headers=headers))
        if body is not None:
            data += self.h11.send(h11.Data(data=body))
        data += self.h11.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        status = 0
        chunks: list[bytes] = []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                received = await self.reader.read(65536)
                if not received:
                    raise ConnectionError("server closed the connection")
                self.h11.receive_data(received)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("server closed the connection")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


async def run_client(
    host: str,
    port: int,
    client: int,
    requests: int,
    barrier: Any,
    errors: list[str],
    ports: dict[int, set[int | None]],
) -> int:
    ok = 0
    connection = Connection(host, port)
    try:
        await connection.open()
    except OSError as exc:
        errors.append(f"client {client}: connect failed: {exc!r}")
        await barrier.abort()
        return 0
    try:
        for seq in range(requests):
            method, path, payload, want = expected(client, seq)
            body = None if payload is None else json.dumps(payload).encode()
            try:
                status, answer = await connection.request(method, path, body)
            except (OSError, ConnectionError, h11.ProtocolError) as exc:
                errors.append(f"client {client} seq {seq}: {type(exc).__name__}: {exc}")
                break  # the connection is gone; a new one would hide keep-alive failures
            if status != 200:
                errors.append(f"client {client} seq {seq}: status {status} {answer[:200]!r}")
            else:
                data = json.loads(answer)
                if want is None:
                    ports.setdefault(client, set()).add(data.pop("port", None))
                    want = {"client": client, "seq": seq}
                if data != want:
                    errors.append(f"client {client} seq {seq}: got {data!r}, want {want!r}")
                else:
                    ports.setdefault(client, set()).add(connection.local_port)
                    ok += 1
            if seq == 0:
                await barrier.wait()  # every connection is open before anyone goes on
    except BrokenBarrierError:
        errors.append(f"client {client}: another client failed to connect")
    finally:
        await connection.close()
    return ok


async def run(url: str, connections: int, requests: int) -> dict[str, Any]:
    barrier = Barrier(connections)
    errors: list[str] = []
    ports: dict[int, set[int | None]] = {}
    started = time.monotonic()
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname == "127.0.0.1" and parsed.port is not None, url
    tasks = [run_client(parsed.hostname, parsed.port, c, requests, barrier, errors, ports) for c in range(connections)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks), OVERALL_TIMEOUT)
    except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11
        errors.append(f"load did not finish within {OVERALL_TIMEOUT}s")
        results = []
    return {
        "ok": sum(results),
        "errors": errors,
        "ports": {str(c): sorted(p, key=str) for c, p in ports.items()},
        "seconds": time.monotonic() - started,
    }


def main() -> None:
    url, connections, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(run(url, connections, requests))))


if __name__ == "__main__":
    main()
