"""The supervisor of ``run --workers N`` (``serve/workers.py``) with stand-in workers: small
Python processes that speak its pipe protocol, so each step's order can be checked."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fastrapi_compat.serve import workers
from fastrapi_compat.serve.workers import Supervisor

# A worker: says it is ready; on SIGTERM, keeps accepting for a while (its loop has not seen
# the signal yet), then writes when it stopped accepting and tells the supervisor (EOF).
STAND_IN = """
import os, signal, sys, time
fd = int(os.environ["FASTRAPI_READY_FD"])
log = sys.argv[1]
os.write(fd, b"1")
def on_term(*_):
    time.sleep(float(sys.argv[2]))
    with open(log, "a") as f:
        f.write(f"{os.getpid()} stopped accepting\\n")
    os.close(fd)
    time.sleep(1.0)  # its requests in flight
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.1)
"""


def supervisor(tmp_path: Path, delay: float) -> tuple[Supervisor, Path, Any]:
    script = tmp_path / "worker.py"
    script.write_text(STAND_IN)
    log = tmp_path / "log"
    log.touch()
    argv = [sys.executable, str(script), str(log), str(delay)]
    made = Supervisor(argv, count=1, host="127.0.0.1", port=0, graceful_timeout=5)
    listening, _ = made._listen()
    return made, log, listening


@pytest.mark.timeout(60)
def test_a_replaced_worker_is_waited_for_until_it_stops_accepting(tmp_path: Path) -> None:
    made, log, listening = supervisor(tmp_path, delay=0.5)
    try:
        old = made._spawn(0)
        made.workers.append(old)
        assert made._replace(old)
        # the replacement is the worker now, and the old one said it accepts no more before
        # _replace returned (it is still finishing its requests)
        assert log.read_text() == f"{old.pid} stopped accepting\n"
        assert old.process.poll() is None
        assert made.workers[0] is not old and old.pipe is None
    finally:
        made._stop_all()
        listening.close()


@pytest.mark.timeout(60)
def test_a_worker_that_never_says_it_stopped_accepting_is_not_waited_for_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "STOP_ACCEPTING_TIMEOUT", 0.3)
    made, log, listening = supervisor(tmp_path, delay=20)
    try:
        old = made._spawn(0)
        made.workers.append(old)
        began = time.monotonic()
        assert made._replace(old)
        assert time.monotonic() - began < 10
        assert log.read_text() == ""
    finally:
        for process in made.retiring:
            process.kill()
        made._stop_all()
        listening.close()


def test_retiring_keeps_the_pipe_until_the_worker_stops_accepting(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    monkeypatch.setattr(workers, "_to_supervisor", write_end)
    try:
        assert workers.ask_to_retire()
        assert os.read(read_end, 1) == workers.RETIRE
        assert workers._to_supervisor == write_end  # still open: the supervisor waits for EOF
        workers.notify_stopped_accepting()
        assert os.read(read_end, 1) == b""
        assert workers._to_supervisor is None
        assert not workers.ask_to_retire()
    finally:
        os.close(read_end)
