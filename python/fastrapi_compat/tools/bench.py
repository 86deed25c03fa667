"""``fastrapi-compat bench MODULE:APP``: the user's own app, stock uvicorn against the engine.

Per operation of the app's OpenAPI schema, valid requests are generated as ``check`` generates
them (schemathesis, ``mode="positive"``), or read from ``--requests FILE``. Both servers run at
once, each in its own process on a listening socket bound here to 127.0.0.1 port 0 (``--fd``),
pinned to the same core(s); the load generator (:mod:`fastrapi_compat.tools.bench_load`) runs
on another core when there is one. Each round measures every operation on both servers, one
after the other, the order alternating between rounds and operations so that neither server
always runs first (the machine's state drifts). The result is requests/s (all requests over all
measured seconds) and the p99 latency (median of the rounds' p99s) per operation and server,
the answers that were not 2xx, and the compiler's tier and reason for each operation's route.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from fastrapi_compat.tools.bench_load import (
    LoadError,
    LoadResult,
    PythonClient,
    RawRequest,
    Wrk,
    allowed_cores,
    wrk_version,
)

SERVERS = ("uvicorn", "engine")
STARTUP_TIMEOUT = 60.0


class BenchError(Exception):
    """Something that stops the benchmark; ``str()`` is one line."""


@dataclass(frozen=True)
class BenchOptions:
    target: str
    app_dir: str = "."
    factory: bool = False
    duration: float = 10.0
    rounds: int = 2
    connections: int = 16
    client: str = "auto"
    requests_file: str | None = None
    max_examples: int = 10
    seed: int = 0
    tier: str = "auto"
    pin: bool = True


@dataclass(frozen=True)
class BenchOperation:
    label: str
    requests: tuple[RawRequest, ...]
    tier: str = "?"
    reason: str = ""


@dataclass
class Measured:
    """One operation on one server, over every round."""

    results: list[LoadResult] = field(default_factory=list)

    @property
    def requests_per_sec(self) -> float:
        seconds = sum(r.seconds for r in self.results)
        return sum(r.requests for r in self.results) / seconds if seconds else 0.0

    @property
    def p99_ms(self) -> float:
        values = sorted(r.p99_ms for r in self.results)
        return values[len(values) // 2] if values else 0.0

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    @property
    def non_2xx(self) -> int:
        return sum(r.non_2xx for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for result in self.results:
            for code, n in result.statuses:
                counts[code] = counts.get(code, 0) + n
        return counts


@dataclass
class BenchReport:
    options: BenchOptions
    operations: list[BenchOperation]
    measured: dict[tuple[str, str], Measured]
    generator: str
    servers: dict[str, str]
    placement: str
    slot_seconds: float
    skipped: list[str] = field(default_factory=list)

    def get(self, server: str, label: str) -> Measured:
        return self.measured.setdefault((server, label), Measured())


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def operations_from_schema(app: Any, *, max_examples: int, seed: int) -> tuple[list[BenchOperation], list[str]]:
    """Valid requests per operation, generated from ``app``'s OpenAPI schema as ``check``
    generates them; the operations that got none, with why, as the second item."""
    import httpx

    from fastrapi_compat.tools.check import CheckError, generate, schema_of

    try:
        schema = schema_of(app)
        generated = generate(schema, "http://127.0.0.1", max_examples=max_examples, seed=seed, mode="positive")
    except CheckError as exc:
        raise BenchError(str(exc)) from exc
    operations, skipped = [], []
    for op in generated:
        requests = tuple(
            RawRequest(
                wire.method.upper(),
                httpx.URL(wire.url).raw_path.decode("ascii", "replace"),
                wire.headers,
                wire.body,
            )
            for wire in op.requests
        )
        if requests:
            operations.append(BenchOperation(op.label, requests))
        else:
            skipped.append(f"{op.label}: no request generated{f' ({op.error})' if op.error else ''}")
    return operations, skipped


def operations_from_file(path: str) -> list[BenchOperation]:
    """``--requests FILE``: one JSON object a line, ``{"method", "path"}`` and optionally
    ``"headers"`` (an object), ``"body"`` (text) and ``"operation"`` (the label the request is
    counted under; by default the method and the path without its query)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise BenchError(f"cannot read --requests {path!r}: {exc.strerror or exc}.") from None
    grouped: dict[str, list[RawRequest]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--requests {path!r} line {number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise BenchError(f"{where}: not JSON ({exc}).") from None
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("method"), str)
            or not isinstance(item.get("path"), str)
        ):
            raise BenchError(f'{where}: needs "method" and "path" strings.')
        target = item["path"]
        if not target.startswith("/") or any(c in target for c in " \r\n"):
            raise BenchError(f"{where}: path {target!r} must start with / and hold no space or line break.")
        headers = item.get("headers", {})
        body = item.get("body", "")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise BenchError(f'{where}: "headers" must be an object of strings.')
        if not isinstance(body, str):
            raise BenchError(f'{where}: "body" must be a string.')
        method = item["method"].upper()
        label = item.get("operation") or f"{method} {target.split('?', 1)[0]}"
        grouped.setdefault(str(label), []).append(
            RawRequest(
                method,
                target,
                tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
                body.encode("utf-8"),
            )
        )
    if not grouped:
        raise BenchError(f"--requests {path!r} holds no request.")
    return [BenchOperation(label, tuple(requests)) for label, requests in grouped.items()]


def with_tiers(operations: list[BenchOperation], app: Any) -> list[BenchOperation]:
    """Each operation with its route's tier and reason, as ``explain`` says them."""
    from fastrapi_compat.plan.compiler import compile_app

    routes = compile_app(app).routes
    out = []
    for op in operations:
        method, _, path = op.label.partition(" ")
        route = next(
            (r for r in routes if r.path == path.split("?", 1)[0] and (r.methods is None or method in r.methods)),
            None,
        )
        if route is None:
            out.append(BenchOperation(op.label, op.requests, "?", "no route of the app has this path and method"))
        else:
            out.append(BenchOperation(op.label, op.requests, route.tier, route.reason))
    return out


# ---------------------------------------------------------------------------------------------
# The servers
# ---------------------------------------------------------------------------------------------


class Server:
    """One server process on a listening socket of its own (127.0.0.1, port 0)."""

    def __init__(self, name: str, argv_for_fd: Callable[[int], list[str]], cores: Sequence[int], log: IO[bytes]):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port: int = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        self.log = log
        cores = list(cores)
        self.proc = subprocess.Popen(
            argv_for_fd(fd),
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, set(cores))) if cores else None,
        )

    def wait_ready(self, deadline: float) -> None:
        """Until an answer (any) comes to ``GET /`` — the socket accepts from the start, so
        the first answer is the app's, once its server started."""
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with code {self.proc.returncode} at startup: {self._log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.name} did not answer within {STARTUP_TIMEOUT:g} s of starting.")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=min(remaining, 1.0)) as conn:
                    conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if conn.recv(1):
                        return
            except OSError:
                pass  # not serving yet (the recv timed out): ask again

    def _log_tail(self) -> str:
        self.log.flush()
        try:
            with open(self.log.name, "rb") as handle:
                lines = handle.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return "(no output)"
        return lines[-1].strip() if lines else "(no output)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self.sock.close()


def server_argvs(options: BenchOptions) -> dict[str, Callable[[int], list[str]]]:
    common = ["--app-dir", options.app_dir, "--log-level", "warning", "--no-access-log"]
    if options.factory:
        common.append("--factory")
    return {
        "uvicorn": lambda fd: [sys.executable, "-m", "uvicorn", options.target, "--fd", str(fd), *common],
        "engine": lambda fd: [
            sys.executable, "-m", "fastrapi_compat", "run", options.target, "--fd", str(fd),
            "--tier", options.tier, *common,
        ],
    }  # fmt: skip


def uvicorn_description() -> str:
    """``uvicorn 0.55.0 (httptools, uvloop)``: what ``--http auto`` and ``--loop auto`` pick."""
    import importlib.util

    try:
        import uvicorn
    except ImportError:
        raise BenchError(
            "bench compares the app served by uvicorn with the engine, and uvicorn is not installed: pip install uvicorn."
        ) from None
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn {uvicorn.__version__} ({http}, {loop})"


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def placement(pin: bool) -> tuple[list[int], list[int], str]:
    """``(server cores, generator cores, description)``: the last allowed core for the servers,
    the others for the load generator, when there are two or more (as bench/ places them)."""
    cores = allowed_cores()
    if pin and len(cores) >= 2:
        servers, generator = cores[-1:], cores[:-1]
        return servers, generator, f"servers on core {servers[0]}, load generator on core(s) {_cores(generator)}"
    why = "--no-pin" if not pin else f"{len(cores)} usable core"
    return [], [], f"servers and load generator share every core ({why})"


def _cores(cores: Sequence[int]) -> str:
    return ",".join(map(str, cores))


def run_bench(
    options: BenchOptions,
    operations: list[BenchOperation],
    skipped: list[str],
    progress: Callable[[int, int, str], None] | None = None,
) -> BenchReport:
    server_cores, generator_cores, where = placement(options.pin)
    servers_text = {"uvicorn": uvicorn_description(), "engine": f"fastrapi-compat engine (--tier {options.tier})"}
    with tempfile.TemporaryDirectory(prefix="fastrapi-bench-") as workdir:
        generator: Wrk | PythonClient
        version = wrk_version() if options.client in ("auto", "wrk") else None
        if options.client == "wrk" and version is None:
            raise BenchError("--client wrk: wrk is not installed (apt-get install wrk, or --client python).")
        if version is not None:
            generator = Wrk(generator_cores, options.connections, workdir)
            what = f"{version}, 1 thread, {options.connections} connections"
        else:
            generator = PythonClient(generator_cores, options.connections)
            what = f"fastrapi-compat's Python client (asyncio + h11), {options.connections} connections"
        slots = options.rounds * len(operations) * len(SERVERS)
        slot = generator.slot_seconds(options.duration / slots)
        report = BenchReport(options, operations, {}, what, servers_text, where, slot, skipped)
        started: list[Server] = []
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            for name, argv in server_argvs(options).items():
                log = open(os.path.join(workdir, f"{name}.log"), "wb")  # noqa: SIM115 - closed below
                started.append(Server(name, argv, server_cores, log))
            for server in started:
                server.wait_ready(deadline)
            by_name = {s.name: s for s in started}
            for i, op in enumerate(operations):  # a short warm-up of each operation on both servers
                for server in started:
                    _measure(generator, i, op, server, min(slot, 0.2) if isinstance(generator, PythonClient) else 0)
            done = 0
            for round_index in range(options.rounds):
                for i, op in enumerate(operations):
                    order = SERVERS if (round_index + i) % 2 == 0 else SERVERS[::-1]
                    for name in order:
                        if progress is not None:
                            progress(done, slots, f"round {round_index + 1}/{options.rounds} {op.label} ({name})")
                        report.get(name, op.label).results.append(_measure(generator, i, op, by_name[name], slot))
                        done += 1
                        if by_name[name].proc.poll() is not None:
                            raise BenchError(f"{name} exited during the run: {by_name[name]._log_tail()}")
            if progress is not None:
                progress(done, slots, "done")
        finally:
            for server in started:
                server.stop()
                server.log.close()
    return report


def _measure(generator: Wrk | PythonClient, key: int, op: BenchOperation, server: Server, seconds: float) -> LoadResult:
    if seconds <= 0:  # wrk's warm-up: one quick pass of the Python client instead of a second of wrk
        return PythonClient(generator.cores, 1).run(key, op.requests[:50], server.port, 0.05)
    try:
        return generator.run(key, op.requests, server.port, seconds)
    except LoadError as exc:
        raise BenchError(f"{op.label} on {server.name}: {exc}") from None
