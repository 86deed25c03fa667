"""Nothing in flight is lost when a server stops, a worker dies, is recycled or restarted
(issue 22), under a bounded keep-alive load (``support.steady_load``: a few client threads,
127.0.0.1), uvicorn and the engine side by side:

- SIGTERM to a lone server: every request sent on a connection it accepted is answered, it
  exits 0, its lifespan shutdown ran;
- ``--workers 2``, one worker SIGKILLed: only requests on that worker's own connections are
  lost; connections waiting in the accept queue are served by the other worker (the queue is
  the supervisor's socket, shared, as uvicorn's), and a replacement serves;
- ``--limit-max-requests`` with workers: workers are recycled under load with no failure;
- SIGHUP with workers: every worker is replaced, each new one ready before an old one stops,
  with no failure.

"Failed" is :mod:`support.steady_load`'s: a request written to an open connection that was
reset or closed before its whole answer came. The app writes the ids of the requests it began
to ``$DRAIN_LOG``, so a lost request can be told apart from one the server never read.

The engine must show no failure at all. uvicorn's failures are reported as an expected
failure (XFAIL, with their count) rather than passed over: it closes an idle keep-alive
connection at once when it stops, so a request its client has just sent on it (unread yet) is
reset (most SIGTERM runs here, 1-4 requests; now and then in a SIGHUP restart), and while recycling workers under load it also
leaves requests its app began unanswered (8-12 per run here). The engine gives a connection
that has just answered 100 ms to send its next request, answered with ``connection: close``
(``native/serve.rs``), and a recycled worker serves until its replacement is ready.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.process_server import TESTS_DIR, ProcessServer
from support.steady_load import Load, Sent

KINDS = ["uvicorn", "engine"]
APP = "apps.drain:create_app"
DEADLINE = 90.0
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def drain_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "drain.log"
    monkeypatch.setenv("DRAIN_LOG", str(log))
    return log


def started(log: Path) -> dict[int, int]:
    """The requests the app began, by id: the pid of the worker that began each."""
    begun: dict[int, int] = {}
    for line in log.read_text().splitlines():
        pid, what = line.split()
        if what != "shutdown":
            begun[int(what)] = int(pid)
    return begun


def shut_down(log: Path) -> set[int]:
    """The pids whose lifespan shutdown ran."""
    return {int(line.split()[0]) for line in log.read_text().splitlines() if line.endswith(" shutdown")}


def assert_no_failure(kind: str, load: Load, drain_log: Path, what: str) -> None:
    failed: list[Sent] = load.failed()
    begun = started(drain_log)
    closing = sum(1 for s in load.sent if s.closing)
    print(f"\n{what} {kind}: {load.answered()} answered ({closing} with connection: close), {len(failed)} failed")
    if kind == "uvicorn" and failed:  # see the module's docstring
        unread = sum(1 for s in failed if s.rid not in begun)
        pytest.xfail(f"uvicorn: {len(failed)} failed ({unread} never read, {len(failed) - unread} begun by its app)")
    assert failed == [], (failed, {s.rid: begun.get(s.rid) for s in failed})


def test_sigterm_under_load_loses_nothing(kind: str, drain_log: Path) -> None:
    with ProcessServer(kind, APP) as server:
        with Load(server.port, clients=4) as load:
            load.wait_for(lambda: load.answered() >= 300, "traffic")
            server.signal(signal.SIGTERM)
            exited = server.wait(30)
            load.stop()
        assert exited is not None, server.stderr
        # uvicorn re-raises the signal once it has shut down (its exit status is the signal's)
        assert server.returncode == (-signal.SIGTERM if kind == "uvicorn" else 0), server.stderr
    assert shut_down(drain_log) == {server.pid}
    assert load.answered() >= 300
    assert_no_failure(kind, load, drain_log, "SIGTERM")


# -- workers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Workers:
    """``run --workers 2`` (the engine's CLI, or uvicorn's) in a child process."""

    def __init__(self, kind: str, log: Path, *flags: str) -> None:
        self.port = free_port()
        head = [sys.executable, "-m", "uvicorn" if kind == "uvicorn" else "fastrapi_compat"]
        if kind == "engine":
            head.append("run")
        else:  # its default, 5 s, is too short on a busy machine: a SIGHUP restart is abandoned
            flags = ("--timeout-worker-healthcheck", "30", *flags)
        argv = [*head, APP, "--factory", "--app-dir", str(TESTS_DIR), "--port", str(self.port),
                "--workers", "2", "--no-access-log", *flags]  # fmt: skip
        self.log = log
        with log.open("w") as err:
            self.process = subprocess.Popen(  # its own process group: see kill()
                argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=TESTS_DIR, start_new_session=True
            )

    def kill(self) -> None:
        """Kills the supervisor and its workers (uvicorn's outlive a killed supervisor)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def pid_of_new_connection(self) -> int | None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
        except OSError:
            return None
        head, _, body = data.partition(b"\r\n\r\n")
        return int(json.loads(body)["pid"]) if b" 200 " in head.split(b"\r\n")[0] else None

    def wait_for_pids(self, want: int, excluding: set[int] = frozenset()) -> set[int]:  # type: ignore[assignment]
        """Polls with new connections until ``want`` pids outside ``excluding`` answered."""
        seen: set[int] = set()
        deadline = time.monotonic() + DEADLINE
        while len(seen - excluding) < want:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, (seen, self.log.read_text())
            pid = self.pid_of_new_connection()
            if pid is None:
                time.sleep(0.05)  # not listening yet
            else:
                seen.add(pid)
        return seen - excluding

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not stop: {self.log.read_text()}") from None


@pytest.fixture
def workers_log(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "server.log"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def probe(port: int, sent: threading.Event, answers: list[str]) -> None:
    """One request on a new connection; what became of it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            sent.set()
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        answers.append(data.split(b"\r\n")[0].decode() if data else "eof")
    except OSError as exc:
        answers.append(type(exc).__name__)
    finally:
        sent.set()


def test_worker_killed_under_load(kind: str, drain_log: Path, workers_log: Path) -> None:
    server = Workers(kind, workers_log)
    try:
        victim, survivor = sorted(server.wait_for_pids(2))
        with Load(server.port, clients=4, spread=[victim, survivor]) as load:
            load.wait_for(lambda: load.answered() >= 200 and len(load.pids()) == 2, "traffic on both workers")
            # Stopped, the victim accepts nothing more: 20 new connections now are all in the
            # accept queue or taken by the other worker; none may be lost when it is killed.
            os.kill(victim, signal.SIGSTOP)
            events = [threading.Event() for _ in range(20)]
            answers: list[str] = []
            probes = [threading.Thread(target=probe, args=(server.port, e, answers)) for e in events]
            for thread in probes:
                thread.start()
            for event in events:
                assert event.wait(30)
            os.kill(victim, signal.SIGKILL)
            for thread in probes:
                thread.join(40)
            replacement = server.wait_for_pids(1, excluding={victim, survivor})
            at_kill = len(load.sent)
            load.wait_for(lambda: len(load.sent) >= at_kill + 200, "traffic after the kill")
        assert server.stop() == 0, workers_log.read_text()
    finally:
        server.kill()
    print(f"\nkill {kind}: {len(load.failed())} lost with the killed worker, {load.answered()} answered")
    assert answers == ["HTTP/1.1 200 OK"] * 20, answers
    begun = started(drain_log)
    lost = [s for s in load.failed() if s.conn_pid != victim]
    assert lost == [], (lost, {s.rid: begun.get(s.rid) for s in lost})
    # what the killed worker had begun, or was sent to it, is all that failed
    assert all(begun.get(s.rid, victim) == victim for s in load.failed())
    assert replacement and victim not in shut_down(drain_log)
    assert {survivor, *replacement} <= shut_down(drain_log)


def recycled_without_failure(kind: str, drain_log: Path, workers_log: Path, *flags: str) -> tuple[Load, set[int]]:
    server = Workers(kind, workers_log, *flags)
    try:
        first = server.wait_for_pids(2)
        with Load(server.port, clients=4) as load:
            # three new workers: two recycled in place of the first two, and one more
            load.wait_for(lambda: len(load.pids() - first) >= 3, "recycled workers", timeout=DEADLINE)
            load.wait_for(lambda: len(shut_down(drain_log)) >= 3, "old workers shut down", timeout=DEADLINE)
        assert server.stop() == 0, workers_log.read_text()
    finally:
        server.kill()
    return load, first


def test_max_requests_recycles_workers_under_load(kind: str, drain_log: Path, workers_log: Path) -> None:
    load, first = recycled_without_failure(kind, drain_log, workers_log, "--limit-max-requests", "150")
    assert first <= shut_down(drain_log)  # the recycled workers ran their lifespan shutdown
    if kind == "engine":
        logged = workers_log.read_text()
        assert logged.count("reached its request limit; replacing it") >= 3, logged
        assert "exited (code" not in logged  # each was stopped by the supervisor, once replaced
    assert_no_failure(kind, load, drain_log, f"recycling ({len(shut_down(drain_log)) - 2} workers recycled)")


def test_sighup_restarts_workers_one_by_one_under_load(kind: str, drain_log: Path, workers_log: Path) -> None:
    server = Workers(kind, workers_log)
    try:
        first = server.wait_for_pids(2)
        with Load(server.port, clients=4) as load:
            load.wait_for(lambda: load.answered() >= 200, "traffic")
            server.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + DEADLINE
            while not all(gone(pid) for pid in first):
                assert time.monotonic() < deadline, workers_log.read_text()
                time.sleep(0.05)
            after = len(load.sent)
            load.wait_for(lambda: len(load.sent) >= after + 200, "traffic after the restart")
        fresh = server.wait_for_pids(2, excluding=first)
        assert server.stop() == 0, workers_log.read_text()
    finally:
        server.kill()
    assert first <= shut_down(drain_log)
    assert len(fresh) == 2
    assert_no_failure(kind, load, drain_log, "SIGHUP")
