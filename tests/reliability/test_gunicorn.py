"""``gunicorn -k fastrapi_compat.workers.GunicornWorker`` (issue 22): two workers serve on the
socket gunicorn gives them (a listening socket this test binds on port 0 and hands over with
``--bind fd://N``, so its port is known without a race); ``--max-requests`` recycles workers with
no request failing; ``--timeout`` does not kill a worker whose loop is alive (its heartbeat)
while a request outlasts it; SIGTERM lets a request in flight finish, runs the lifespan shutdown
and gunicorn's ``worker_exit`` hook, and exits 0; ``post_worker_init`` runs in each worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("gunicorn", reason="gunicorn is in the test extras")

TESTS_DIR = Path(__file__).resolve().parent.parent
DEADLINE = 30.0

HOOKS = """
import os

def post_worker_init(worker):
    with open(os.environ["GUNICORN_APP_MARKS"], "a") as out:
        out.write(f"post_worker_init {os.getpid()}\\n")

def worker_exit(server, worker):
    with open(os.environ["GUNICORN_APP_MARKS"], "a") as out:
        out.write(f"worker_exit {worker.pid}\\n")
"""


class Gunicorn:
    """gunicorn serving ``apps.gunicorn_app:app`` on a socket bound here."""

    def __init__(self, tmp_path: Path, *flags: str) -> None:
        self.marks = tmp_path / "marks.txt"
        self.log = tmp_path / "gunicorn.log"
        config = tmp_path / "hooks.py"
        config.write_text(HOOKS)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), "GUNICORN_APP_MARKS": str(self.marks)}
        command = [sys.executable, "-m", "gunicorn", "-k", "fastrapi_compat.workers.GunicornWorker"]
        if _has_control_socket():  # gunicorn >= 24: not its shared default path
            command.append("--no-control-socket")
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    *command,
                    "-c",
                    str(config),
                    "--bind",
                    f"fd://{fd}",
                    "--chdir",
                    str(TESTS_DIR),
                    *flags,
                    "apps.gunicorn_app:app",
                ],  # fmt: skip
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def logged(self) -> str:
        return self.log.read_text(errors="replace")

    def marked(self, what: str) -> list[int]:
        text = self.marks.read_text() if self.marks.exists() else ""
        return [int(line.split()[1]) for line in text.splitlines() if line.startswith(what + " ")]

    def wait_for_marks(self, what: str, count: int) -> list[int]:
        deadline = time.monotonic() + DEADLINE
        while len(found := self.marked(what)) < count:
            assert time.monotonic() < deadline, f"{count} {what} marks expected: {found}\n{self.logged()}"
            time.sleep(0.02)
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(DEADLINE)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.sock.close()


def _has_control_socket() -> bool:
    from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped,unused-ignore]

    return any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[Gunicorn] = []

    def run(*flags: str) -> Gunicorn:
        server = Gunicorn(tmp_path, *flags)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


def pid_of(url: str) -> int:
    """The pid of the worker answering a request on a new connection."""
    response = httpx.get(url, timeout=10, headers={"connection": "close"})
    assert response.status_code == 200, response.text
    return int(response.json()["pid"])


def test_two_workers_serve_and_hooks_run(start: Any) -> None:
    server = start("-w", "2")
    workers = set(server.wait_for_marks("post_worker_init", 2))
    seen = {pid_of(server.url("/pid")) for _ in range(40)}
    assert seen <= workers and len(workers) == 2
    assert server.stop() == 0
    assert set(server.marked("worker_exit")) == workers
    assert set(server.marked("lifespan-shutdown")) == workers
    log = server.logged()
    assert "Traceback" not in log, log


def test_max_requests_recycles_workers_with_no_failure(start: Any) -> None:
    server = start("-w", "2", "--max-requests", "5", "--max-requests-jitter", "0")
    server.wait_for_marks("post_worker_init", 2)
    pids = [pid_of(server.url("/pid")) for _ in range(40)]
    # a worker stops after its 5th request and another takes its place (one that is draining
    # may still take a connection arriving just then: at most a few more than 40 / 5 pids)
    assert len(set(pids)) >= 6, pids
    boots = server.marked("post_worker_init")
    assert set(pids) <= set(boots) and len(boots) >= len(set(pids))
    assert server.stop() == 0
    assert "Traceback" not in server.logged()


def test_heartbeat_keeps_a_busy_worker_alive(start: Any) -> None:
    server = start("-w", "1", "--timeout", "2")
    (worker,) = server.wait_for_marks("post_worker_init", 1)
    # the request outlasts --timeout 2 twice over; the loop is not blocked, so the worker
    # keeps telling the arbiter it is alive and is not killed
    response = httpx.get(server.url("/slow?seconds=4"), timeout=20)
    assert response.json() == {"slept": 4.0}
    assert pid_of(server.url("/pid")) == worker
    assert "WORKER TIMEOUT" not in server.logged()


def test_sigterm_finishes_the_request_in_flight(start: Any) -> None:
    server = start("-w", "1", "--graceful-timeout", "20")
    (worker,) = server.wait_for_marks("post_worker_init", 1)
    answers: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answers.append(httpx.get(server.url("/slow?seconds=1.5"), timeout=20)))
    slow.start()
    server.wait_for_marks("slow-start", 1)  # the app is answering it
    assert server.stop() == 0
    slow.join(DEADLINE)
    assert [a.json() for a in answers] == [{"slept": 1.5}]
    assert server.marked("worker_exit") == [worker]
    assert server.marked("lifespan-shutdown") == [worker]


def test_a_tls_setting_is_a_boot_error(start: Any, tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    server = start("-w", "1", "--certfile", str(cert), "--keyfile", str(cert))
    assert server.process.wait(DEADLINE) != 0
    assert "Error: GunicornWorker does not serve TLS" in server.logged()
