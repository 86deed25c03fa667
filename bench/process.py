"""A server under test as an OS process: a free port, CPU pinning with ``taskset``,
readiness by polling (and by its log, for every worker), memory from ``/proc``, and a clean
stop (SIGINT, then SIGKILL) that notes what outlived it."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bind port 0 and ask the kernel which it chose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pinned(argv: Sequence[str], cores: Sequence[int]) -> list[str]:
    """``argv`` run on ``cores`` (``taskset -c 1,2``), or as is when there are none."""
    if not cores:
        return list(argv)
    return ["taskset", "-c", ",".join(str(c) for c in cores), *argv]


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process (``/proc/PID/stat``; ``task/*/children`` needs
    a kernel option that not every machine has)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def workers(pid: int) -> list[int]:
    """The worker processes of a supervisor ``pid``: its direct children, in pid order, but
    the resource tracker that :mod:`multiprocessing` (``uvicorn --workers``) starts beside
    them."""
    kids = sorted(child for child, parent in _parents().items() if parent == pid)
    return [kid for kid in kids if b"resource_tracker" not in _cmdline(kid)]


def process_group(pgid: int) -> list[int]:
    """Every running process of the process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return sorted(members)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (granian runs its worker in a child process)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory (``VmRSS``, or ``VmHWM`` for the peak) of ``pid`` and its descendants."""
    return sum(_status_kib(p, field) for p in process_tree(pid))


class ServerFailed(RuntimeError):
    """The server exited or never answered; ``str()`` ends with the tail of its log."""


class ServerProcess:
    """One running server. Use as a context manager: it is always stopped on exit."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        host: str,
        port: int,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        cores: Sequence[int],
    ) -> None:
        self.argv = pinned(argv, cores)
        self.host, self.port = host, port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.started_at = time.monotonic()
        # A session of its own so that stop() can reach a server's children (granian's worker).
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ready_after: float | None = None
        self.stopped_in: float | None = None  # seconds from SIGINT until it exited
        self.left_running: list[int] = []  # its group's processes alive after it exited

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str, timeout: float) -> float:
        """Poll ``GET path`` until it answers (any status); return seconds since start."""
        deadline = self.started_at + timeout
        delay = 0.01
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"exited with status {self.proc.returncode} before answering; log:\n" + self.log_tail()
                )
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                try:
                    conn.request("GET", path)
                    conn.getresponse().read()
                finally:
                    conn.close()
                self.ready_after = time.monotonic() - self.started_at
                return self.ready_after
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"did not answer within {timeout:.0f} s; log:\n" + self.log_tail())
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def wait_log(self, text: str, count: int, timeout: float) -> float:
        """Poll the log until ``text`` is in it ``count`` times (every worker up); return
        seconds since start."""
        deadline = self.started_at + timeout
        delay = 0.01
        while self.log_path.read_text(errors="replace").count(text) < count:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"exited with status {self.proc.returncode} before logging {text!r}; log:\n" + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise ServerFailed(f"did not log {text!r} {count}x within {timeout:.0f} s; log:\n" + self.log_tail())
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        self.ready_after = time.monotonic() - self.started_at
        return self.ready_after

    def rss_kib(self, field: str = "VmRSS") -> int:
        return rss_kib(self.pid, field)

    def stop(self, grace: float = 5.0) -> None:
        """SIGINT (as Ctrl+C would), then SIGKILL to the whole group after ``grace`` s.
        Records how long it took to exit and which of its processes outlived it."""
        if self.proc.poll() is None:
            interrupted = time.monotonic()
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout=grace)
                self.stopped_in = time.monotonic() - interrupted
            except subprocess.TimeoutExpired:
                pass
            self.left_running = [p for p in process_group(self.proc.pid) if p != self.proc.pid]
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the group we created
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
