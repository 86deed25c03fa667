"""The load generators of ``fastrapi-compat bench``: wrk (a Lua script cycling through the
operation's requests) when it is installed, else a small asyncio client of our own (h11).

Both send the same raw HTTP/1.1 requests over keep-alive connections to 127.0.0.1 for a fixed
time and return a :class:`LoadResult`: requests completed, seconds, the 99th percentile of
latency, answers that were not 2xx, and socket errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Request headers a generated request is sent without: the load generator frames the request
#: itself (Host, Content-Length) and keeps the connection open.
_FRAMING_HEADERS = frozenset({b"host", b"content-length", b"connection", b"transfer-encoding"})


@dataclass(frozen=True)
class RawRequest:
    """One request, everything but its ``Host`` line (the port differs between the servers)."""

    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def encode(self, port: int) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1".encode("latin-1"), f"Host: 127.0.0.1:{port}".encode()]
        lines += [name + b": " + value for name, value in self.headers if name.lower() not in _FRAMING_HEADERS]
        if self.body or self.method not in ("GET", "HEAD", "OPTIONS"):
            lines.append(b"Content-Length: %d" % len(self.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p99_ms: float
    non_2xx: int
    errors: int
    #: Status code -> count of the answers that were not 2xx.
    statuses: tuple[tuple[int, int], ...] = ()

    @property
    def requests_per_sec(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class LoadError(RuntimeError):
    """The load generator failed; ``str()`` is one line."""


def allowed_cores() -> list[int]:
    """The cores this process may run on (its affinity, not the machine's core count)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def pin_to(cores: Sequence[int]) -> None:
    """Run the calling process on ``cores`` (nothing when empty or not Linux)."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cores))


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------

# Loads the requests of one operation from a file (each one's length is an argument), hands them
# out in turn, counts the answers that are not 2xx per thread and prints one JSON line at the end.
_WRK_SCRIPT = r"""
local requests, next_index = {}, 1
local threads = {}
statuses = {}  -- a global: done() reads each thread's with thread:get

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local file = assert(io.open(args[1], "rb"))
    local data = file:read("*a")
    file:close()
    local offset = 1
    for i = 2, #args do
        local length = tonumber(args[i])
        table.insert(requests, data:sub(offset, offset + length - 1))
        offset = offset + length
    end
    next_index = math.random(#requests)
end

function request()
    local r = requests[next_index]
    next_index = next_index % #requests + 1
    return r
end

function response(status, headers, body)
    if status < 200 or status > 299 then
        statuses[status] = (statuses[status] or 0) + 1
    end
end

function done(summary, latency, requests)
    local counts = {}
    for _, thread in ipairs(threads) do
        local s = thread:get("statuses")
        for code, n in pairs(s) do
            counts[#counts + 1] = string.format('"%d": %d', code, n)
        end
    end
    local e = summary.errors
    io.write(string.format(
        'FASTRAPI-BENCH {"requests": %d, "us": %d, "p99_us": %d, "errors": %d, "statuses": {%s}}\n',
        summary.requests, summary.duration, latency:percentile(99),
        e.connect + e.read + e.write + e.timeout, table.concat(counts, ", ")))
end
"""


def wrk_version() -> str | None:
    """``wrk 4.1.0`` (what ``wrk --version`` says first), or None when wrk is not installed."""
    path = shutil.which("wrk")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = (out.stdout or out.stderr).split()
    return " ".join(words[:2]) if words else "wrk"


class Wrk:
    """Runs wrk (one thread) on ``cores``; durations are whole seconds, at least one."""

    name = "wrk"

    def __init__(self, cores: Sequence[int], connections: int, workdir: str) -> None:
        self.cores = list(cores)
        self.connections = connections
        self.workdir = workdir
        self.script = os.path.join(workdir, "bench.lua")
        with open(self.script, "w", encoding="utf-8") as handle:
            handle.write(_WRK_SCRIPT)
        self._files: dict[tuple[int, int], tuple[str, list[int]]] = {}

    @staticmethod
    def slot_seconds(seconds: float) -> float:
        return float(max(1, round(seconds)))

    def run(self, key: int, requests: Sequence[RawRequest], port: int, seconds: float) -> LoadResult:
        path, lengths = self._file(key, requests, port)
        argv = [
            "wrk", "-t1", f"-c{self.connections}", f"-d{int(self.slot_seconds(seconds))}s", "--timeout", "10s",
            "-s", self.script, f"http://127.0.0.1:{port}/", "--", path, *map(str, lengths),
        ]  # fmt: skip
        try:
            out = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=seconds + 30,
                check=False,
                preexec_fn=(lambda: pin_to(self.cores)) if self.cores else None,
            )
        except subprocess.TimeoutExpired:
            raise LoadError("wrk did not finish in time") from None
        match = re.search(r"^FASTRAPI-BENCH (\{.*\})$", out.stdout, re.MULTILINE)
        if out.returncode != 0 or match is None:
            text = " ".join((out.stderr or out.stdout).split())[:300]
            raise LoadError(f"wrk failed (exit {out.returncode}): {text}")
        data: dict[str, Any] = json.loads(match.group(1))
        statuses = tuple(sorted((int(code), int(n)) for code, n in data["statuses"].items()))
        return LoadResult(
            requests=int(data["requests"]),
            seconds=int(data["us"]) / 1e6,
            p99_ms=int(data["p99_us"]) / 1e3,
            non_2xx=sum(n for _, n in statuses),
            errors=int(data["errors"]),
            statuses=statuses,
        )

    def _file(self, key: int, requests: Sequence[RawRequest], port: int) -> tuple[str, list[int]]:
        if (key, port) not in self._files:
            encoded = [r.encode(port) for r in requests]
            fd, path = tempfile.mkstemp(prefix=f"op{key}-", suffix=".bin", dir=self.workdir)
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"".join(encoded))
            self._files[(key, port)] = (path, [len(e) for e in encoded])
        return self._files[(key, port)]


# ---------------------------------------------------------------------------------------------
# The Python client
# ---------------------------------------------------------------------------------------------


class PythonClient:
    """asyncio connections in this process (pinned to ``cores`` while it runs), h11 parsing
    the answers; slower than wrk, so a fast server is measured lower than it is."""

    name = "python"

    def __init__(self, cores: Sequence[int], connections: int) -> None:
        self.cores = list(cores)
        self.connections = connections

    @staticmethod
    def slot_seconds(seconds: float) -> float:
        return seconds

    def run(self, key: int, requests: Sequence[RawRequest], port: int, seconds: float) -> LoadResult:
        del key
        before = allowed_cores()
        pin_to(self.cores)
        try:
            return asyncio.run(_load(list(requests), port, seconds, self.connections))
        finally:
            pin_to(before)


@dataclass
class _Tally:
    latencies: list[float]
    statuses: dict[int, int]
    errors: int = 0


async def _load(requests: list[RawRequest], port: int, seconds: float, connections: int) -> LoadResult:
    encoded = [r.encode(port) for r in requests]
    heads = [r.method == "HEAD" for r in requests]
    tally = _Tally([], {})
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_connection(i, encoded, heads, port, deadline, tally) for i in range(connections)))
    elapsed = time.perf_counter() - start
    latencies = sorted(tally.latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3 if latencies else 0.0
    statuses = tuple(sorted((code, n) for code, n in tally.statuses.items() if not 200 <= code <= 299))
    return LoadResult(len(latencies), elapsed, p99, sum(n for _, n in statuses), tally.errors, statuses)


async def _connection(
    index: int, encoded: list[bytes], heads: list[bool], port: int, deadline: float, tally: _Tally
) -> None:
    import h11

    next_request = index % len(encoded)
    while time.perf_counter() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, asyncio.TimeoutError):
            tally.errors += 1
            return
        conn = h11.Connection(h11.CLIENT)
        try:
            while time.perf_counter() < deadline:
                i = next_request
                next_request = (next_request + 1) % len(encoded)
                sent = time.perf_counter()
                writer.write(encoded[i])
                conn.send(h11.Request(method="HEAD" if heads[i] else "GET", target="/", headers=[("host", "x")]))
                conn.send(h11.EndOfMessage())
                status = await asyncio.wait_for(_answer(reader, conn), 10)
                tally.latencies.append(time.perf_counter() - sent)
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break  # the server closes this connection: open another one
                conn.start_next_cycle()
        except (OSError, asyncio.TimeoutError, h11.ProtocolError):
            tally.errors += 1
        finally:
            writer.close()


async def _answer(reader: asyncio.StreamReader, conn: Any) -> int:
    """Read one whole answer; its status code."""
    import h11

    status = 0
    closed = False
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if closed:
                raise OSError("connection closed mid-answer")
            data = await reader.read(65536)
            closed = not data
            conn.receive_data(data)  # b"": the end of the connection (ends a close-delimited body)
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.EndOfMessage):
            return status
        elif isinstance(event, h11.ConnectionClosed):
            raise OSError("connection closed")
