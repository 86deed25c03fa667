"""Instructions per request, counted by valgrind's callgrind: the same binary given the same
requests executes the same instructions whatever else the machine does, so these figures do
not move from run to run as requests/s do on a shared VM.

Each server runs under ``valgrind --tool=callgrind --instr-atstart=no`` (start-up is not
instrumented, so it takes seconds, not minutes); once it answers, counting is switched on with
``callgrind_control`` and every measured request goes through the server's own path (its I/O
thread, the handoff to Python and back), one keep-alive connection per endpoint, from a client
outside valgrind. Per endpoint: a warm-up, an idle window (what a dump itself counts), then five
windows of ``N`` requests, each ended by a dump; the count per request is the windows' median
less the idle window, over ``N`` (the median: a collection of Python's oldest GC generation
lands in one window now and then).

    python -m bench.callgrind                    every target, a table (and --output JSON)
    python -m bench.callgrind --check            the guarded counts against the baseline:
                                                 exit 1 if one grew more than 5 %
    python -m bench.callgrind --update-baseline  measure the guarded counts and rewrite
                                                 bench/results/callgrind_baseline.json (commit
                                                 it with the reason in the message)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import ceiling
from bench.endpoints import PLAIN, PREFLIGHT, Endpoint, endpoint_by_name
from bench.environment import ROOT
from bench.install import ensure_valgrind
from bench.process import free_port

BASELINE = ROOT / "bench" / "results" / "callgrind_baseline.json"
TOLERANCE = 0.05  # a guarded count may grow this much over the baseline
REQUESTS = 100  # N: requests per counted window
WINDOWS = 5
WARMUP = 20
HOST = "127.0.0.1"
READY_TIMEOUT_S = 300.0
# The same addresses on every run (util-linux' setarch): objects hashed by address fall in the
# same dict and set slots.
NO_ASLR: list[str] = ["setarch", "-R"] if shutil.which("setarch") else []


class CallgrindError(RuntimeError):
    """Something kept the counts from being taken (one line, shown as ``Error: ...``)."""


# server kind -> (host, port, app attr) -> argv
ServerCommand = Callable[[str, int, str], list[str]]


def _native(host: str, port: int, app: str) -> list[str]:
    return [
        sys.executable, "-m", "fastrapi_compat", "run", f"bench.apps.fastapi_app:{app}",
        "--host", host, "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def _hyper(host: str, port: int, app: str) -> list[str]:
    binary, problem = ceiling.build()
    if binary is None:
        raise CallgrindError(problem)
    return [str(binary), "--host", host, "--port", str(port)]


SERVERS: dict[str, ServerCommand] = {"native": _native, "hyper": _hyper}


@dataclass(frozen=True)
class Target:
    """One measured count: ``endpoint`` on ``app`` served by the ``server`` kind."""

    key: str
    server: str
    app: str
    endpoint: Endpoint


TARGETS: tuple[Target, ...] = (
    Target("native /plain", "native", "app", PLAIN),
    Target("native /items/{id}", "native", "app", endpoint_by_name("/items/{id}")),
    Target("native POST /items", "native", "app", endpoint_by_name("POST /items")),
    Target("native /deps", "native", "app", endpoint_by_name("/deps")),
    Target("native /deps-def", "native", "app", endpoint_by_name("/deps-def")),
    Target("native /sync", "native", "app", endpoint_by_name("/sync")),
    Target("native /big", "native", "app", endpoint_by_name("/big")),
    Target("native preflight (Rust only)", "native", "app_middleware", PREFLIGHT),
    Target("bare hyper /plain", "hyper", "", PLAIN),
)
# The three, and the engine's own path with no Python at all (a CORS preflight the
# Rust middleware answers): the I/O thread's cost, which the other three hide behind Python's.
GUARDED: tuple[str, ...] = (
    "native /plain", "native /items/{id}", "native POST /items", "native preflight (Rust only)",
)  # fmt: skip


def target_by_key(key: str) -> Target:
    for target in TARGETS:
        if target.key == key:
            return target
    known = ", ".join(t.key for t in TARGETS)
    raise CallgrindError(f"unknown target {key!r} (known: {known})")


def read_total(path: Path) -> int:
    """The ``totals:`` (or ``summary:``) instruction count of one callgrind dump."""
    summary = None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
        if line.startswith("summary:"):
            summary = int(line.split()[1])
    if summary is None:
        raise CallgrindError(f"{path}: no totals in the callgrind dump")
    return summary


class CallgrindServer:
    """One server process under callgrind, counting switched off until :meth:`start_counting`."""

    def __init__(self, argv: Callable[[int], list[str]], workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port(HOST)
        self.out = workdir / "callgrind.out"
        self.log_path = workdir / "server.log"
        self.dumps = 0
        command = [
            *NO_ASLR, "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}",
            "--dump-line=no", "--dump-instr=no", "--compress-strings=no", "--compress-pos=no",
            *argv(self.port),
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def log_tail(self) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-10:])

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise CallgrindError(f"the server exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
                try:
                    conn.request("GET", path)
                    conn.getresponse().read()
                    return
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise CallgrindError(f"the server did not answer within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)

    def control(self, *args: str) -> None:
        done = subprocess.run(
            ["callgrind_control", *args, str(self.proc.pid)], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0 or "OK." not in done.stdout:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise CallgrindError(f"callgrind_control {' '.join(args)} failed: {said[-1] if said else done.returncode}")

    def dump(self) -> int:
        """Dump (and zero) the counters; the instructions counted since the last dump."""
        self.control("--dump")
        self.dumps += 1
        path = self.out.with_name(f"{self.out.name}.{self.dumps}")
        deadline = time.monotonic() + 60
        while not path.exists() or "totals:" not in path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise CallgrindError(f"callgrind wrote no {path.name}")
            time.sleep(0.05)
        return read_total(path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._log.close()


def _send(conn: http.client.HTTPConnection, endpoint: Endpoint, count: int, expected: int | None) -> int:
    """``count`` requests one after the other; their status (all the same, or an error)."""
    status = expected
    for _ in range(count):
        conn.request(endpoint.method, endpoint.target, body=endpoint.body, headers=endpoint.headers)
        response = conn.getresponse()
        response.read()
        if status is None:
            status = response.status
        if response.status != status or status >= 400:
            raise CallgrindError(f"{endpoint.name}: answered {response.status} (expected {status})")
    assert status is not None
    return status


def count_endpoint(server: CallgrindServer, endpoint: Endpoint, requests: int) -> tuple[float, list[float]]:
    """Instructions per request of ``endpoint``: the median of :data:`WINDOWS` windows of ``N``
    requests (a rare collection of the oldest GC generation falls in one window, not in the
    median) less an idle window (the dump itself), over ``N``."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
    try:
        status = _send(conn, endpoint, WARMUP, None)
        server.dump()
        idle = server.dump()
        windows = []
        for _ in range(WINDOWS):
            _send(conn, endpoint, requests, status)
            windows.append(server.dump())
    finally:
        conn.close()
    per_window = [(w - idle) / requests for w in windows]
    return statistics.median(per_window), per_window


@contextmanager
def _server(kind: str, app: str) -> Iterator[CallgrindServer]:
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        # PYTHONHASHSEED: the same hashes, so the same dict and set layouts, on every run.
        # PYTHONPATH: the repository root (``bench``) after what the caller put first (e.g. an
        # older fastrapi_compat to compare with).
        paths = [p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p]
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(paths)}
        server = CallgrindServer(lambda port: SERVERS[kind](HOST, port, app), Path(tmp), env)
        try:
            yield server
        finally:
            server.stop()


def measure(
    targets: Sequence[Target], requests: int = REQUESTS, log: Callable[[str], None] = print
) -> dict[str, float]:
    """Instructions per request of each target; one server process per (server, app)."""
    problem = ensure_valgrind()
    if problem:
        raise CallgrindError(problem)
    counts: dict[str, float] = {}
    groups: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        groups.setdefault((target.server, target.app), []).append(target)
    for (kind, app), members in groups.items():
        started = time.monotonic()
        with _server(kind, app) as server:
            server.wait_ready(PLAIN.target)
            server.control("--instr=on")
            for target in members:
                counts[target.key], windows = count_endpoint(server, target.endpoint, requests)
                spread = ", ".join(f"{w:,.0f}" for w in windows)
                log(f"[callgrind] {target.key}: {counts[target.key]:,.0f} instructions/request ({spread})")
        log(f"[callgrind] {kind} {app or ''}: {time.monotonic() - started:.0f} s".replace(" :", ":"))
    return counts


def environment() -> dict[str, str | None]:
    """What the counts depend on besides the code: the interpreter and the libraries on the
    request path (a different version executes different instructions)."""
    import importlib.metadata

    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("fastapi", "starlette", "pydantic", "pydantic-core", "fastrapi-compat"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def compare(counts: dict[str, float], baseline: dict[str, float], tolerance: float = TOLERANCE) -> list[str]:
    """One line per guarded count that grew more than ``tolerance`` over the baseline (or has
    no baseline): empty when the guard passes."""
    failures = []
    for key, count in counts.items():
        base = baseline.get(key)
        if base is None:
            failures.append(f"{key}: no baseline (run python -m bench.callgrind --update-baseline)")
        elif count > base * (1 + tolerance):
            failures.append(f"{key}: {count:,.0f} instructions/request, {count / base - 1:+.1%} over {base:,.0f}")
    return failures


def _table(counts: dict[str, float], baseline: dict[str, float]) -> str:
    lines = ["| target | instructions/request | baseline | change |", "|---|---:|---:|---:|"]
    for key, count in counts.items():
        base = baseline.get(key)
        change = f"{count / base - 1:+.1%}" if base else "—"
        lines.append(f"| {key} | {count:,.0f} | {f'{base:,.0f}' if base else '—'} | {change} |")
    return "\n".join(lines)


def load_baseline(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    data: dict[str, object] = json.loads(path.read_text())
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callgrind", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a guarded count grew > 5 %% over the baseline")
    mode.add_argument("--update-baseline", action="store_true", help="rewrite the baseline with the guarded counts")
    parser.add_argument("--targets", help="comma-separated target keys (default: every target; guarded ones with "
                        "--check/--update-baseline)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=REQUESTS, help=f"N, requests per counted window ({REQUESTS})")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="the baseline file")
    parser.add_argument("--output", type=Path, help="write the counts as JSON here")
    args = parser.parse_args(argv)
    try:
        if args.targets:
            targets = [target_by_key(k.strip()) for k in args.targets.split(",") if k.strip()]
        elif args.check or args.update_baseline:
            targets = [target_by_key(k) for k in GUARDED]
        else:
            targets = list(TARGETS)
        if args.requests < 1:
            raise CallgrindError("--requests must be at least 1")
        counts = measure(targets, args.requests)
    except (CallgrindError, subprocess.TimeoutExpired) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    stored = load_baseline(args.baseline)
    baseline = {k: float(v) for k, v in dict(stored.get("counts", {})).items()}  # type: ignore[call-overload]
    record = {
        "environment": environment(),
        "requests": args.requests,
        "counts": {k: round(v) for k, v in counts.items()},
    }
    if args.output:
        args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(_table(counts, baseline))
    if args.update_baseline:
        args.baseline.write_text(json.dumps(record, indent=2) + "\n")
        print(f"baseline written to {args.baseline}")
        return 0
    if args.check:
        if stored.get("environment") != record["environment"]:
            print(f"note: the baseline was counted with {stored.get('environment')}, this run with "
                  f"{record['environment']}")  # fmt: skip
        failures = compare({k: counts[k] for k in GUARDED if k in counts}, baseline)
        for line in failures:
            print(f"Error: {line}", file=sys.stderr)
        if failures:
            print("(a growth on purpose: python -m bench.callgrind --update-baseline, and say why in the commit)")
            return 1
        print(f"callgrind guard: every guarded count within {TOLERANCE:.0%} of the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
