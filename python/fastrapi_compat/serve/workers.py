"""``fastrapi-compat run --workers N``: N server processes on one port, supervised.

Each worker is a ``fastrapi-compat run`` process of its own (its own interpreter, GIL, event
loop and engine) that binds the port with ``SO_REUSEPORT``; the kernel spreads new connections
over the workers' listening sockets. The supervisor (the process the user started) first binds
the port itself without listening, which reserves it (and resolves ``--port 0`` to one port for
all workers), then starts the workers and waits until each says it is serving, through a pipe
whose write end the worker inherits (``FASTRAPI_READY_FD``).

With ``--uds`` or ``--fd`` the supervisor makes (or takes) the one listening socket and each
worker inherits it (``--fd``), as uvicorn's workers share the socket its supervisor bound.

A worker that fails before it is ready (bad app, failing lifespan startup) stops the whole
server: its own one-line error is on stderr, and ``run`` exits 1. A worker that dies later is
replaced. SIGINT/SIGTERM are passed on to every worker, which shut down gracefully (in-flight
requests finish); workers still running after the graceful timeout are killed. Workers also get
SIGTERM if the supervisor dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from fastrapi_compat.errors import StartupError
from fastrapi_compat.serve.environment import UnixSocket, inherited_socket, socket_name
from fastrapi_compat.serve.logs import SERVER_LOGGER

logger = logging.getLogger(SERVER_LOGGER)

READY_FD_ENV = "FASTRAPI_READY_FD"
#: A worker's index (0..N-1, kept by its replacement): its metrics' ``worker`` label.
WORKER_INDEX_ENV = "FASTRAPI_WORKER_INDEX"
#: How long a worker may take to import the app and run its lifespan startup.
READY_TIMEOUT = 120.0
_PR_SET_PDEATHSIG = 1


class WorkerStartupFailed(StartupError):
    """A worker exited before serving. Exit code 1 is the CLI's own error exit: the worker
    has printed its one ``Error:`` line already."""

    def __init__(self, code: int) -> None:
        super().__init__(f"a worker exited during startup (exit code {code})")
        self.code = code


def notify_ready() -> None:
    """In a worker: tells the supervisor the server is accepting connections."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    try:
        os.write(int(fd), b"1")
        os.close(int(fd))
    except (OSError, ValueError):
        pass


def die_with_parent() -> None:
    """In a worker: SIGTERM when the supervisor exits (Linux; elsewhere nothing)."""
    if os.environ.get(READY_FD_ENV) is None or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def reserve_port(host: str, port: int) -> socket.socket:
    """Binds ``host:port`` with ``SO_REUSEPORT`` without listening: the port is ours (port 0
    picks one), and the workers can bind it too."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise StartupError(f"cannot bind to {host}:{port}: {reason}") from None
    return sock


class Supervisor:
    """Starts ``count`` workers with ``worker_argv(port)`` and keeps them running until a
    signal."""

    def __init__(
        self,
        worker_argv: Sequence[str],
        count: int,
        host: str,
        port: int,
        graceful_timeout: float,
        uds: str | None = None,
        fd: int | None = None,
        backlog: int = 2048,
        metrics_port: int | None = None,
        tls: bool = False,
    ) -> None:
        self.worker_argv = list(worker_argv)
        #: The workers serve TLS: the URL logged is ``https``, and SIGHUP is passed on to them
        #: (each reloads its certificate).
        self.tls = tls
        self._reload_asked = False
        self.count = count
        self.host = host
        self.port = port
        self.graceful_timeout = graceful_timeout
        self.uds = uds
        self.fd = fd
        self.backlog = backlog
        #: Worker i serves its own metrics on ``metrics_port + i`` (each on a free port for 0).
        self.metrics_port = metrics_port
        #: The shared listening socket's descriptor (``--uds``/``--fd``), given to each worker.
        self._shared_fd: int | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        #: Set by the signal handler, which does nothing else (no locks in a handler).
        self._signalled: int | None = None

    def _start(self, index: int) -> tuple[subprocess.Popen[bytes], int]:
        """A new worker (the ``index``th), and the read end of its ready pipe."""
        read_end, write_end = os.pipe()
        env = dict(os.environ, **{READY_FD_ENV: str(write_end), WORKER_INDEX_ENV: str(index)})
        fds: tuple[int, ...] = (write_end,)
        if self._shared_fd is None:
            where = ["--port", str(self.port)]
        else:
            where, fds = ["--fd", str(self._shared_fd)], (write_end, self._shared_fd)
        if self.metrics_port is not None:
            where += ["--metrics-port", str(self.metrics_port + index if self.metrics_port else 0)]
        try:
            process = subprocess.Popen([*self.worker_argv, *where], env=env, pass_fds=fds)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return process, read_end

    def _ready(self, process: subprocess.Popen[bytes], read_end: int) -> subprocess.Popen[bytes]:
        """Waits for the worker's ready byte. EOF means the worker is exiting: its pipe closes
        during its exit, possibly before its exit status can be read, so that is waited for."""
        try:
            ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT)
            said = os.read(read_end, 1) if ready else None
        finally:
            os.close(read_end)
        if said == b"1":
            return process
        try:
            code = process.wait(READY_TIMEOUT if said == b"" else 0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise StartupError(f"a worker did not start within {READY_TIMEOUT:.0f} s") from None
        raise WorkerStartupFailed(code)

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        return self._ready(*self._start(index))

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signalled = signum

    def _on_reload(self, signum: int, frame: object) -> None:
        self._reload_asked = True

    def _pass_reload_on(self) -> None:
        """SIGHUP with TLS: each worker reloads its certificate and key."""
        self._reload_asked = False
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGHUP)

    def _listen(self) -> tuple[socket.socket | UnixSocket, str]:
        """The socket the workers serve on, or the reserved port they bind, and its name."""
        if self.uds is not None:
            unix = UnixSocket(self.uds, self.backlog)
            self._shared_fd = unix.fileno()
            return unix, f"unix socket {self.uds}"
        if self.fd is not None:
            sock = inherited_socket(self.fd)
            sock.listen(self.backlog)
            self._shared_fd = sock.fileno()
            return sock, f"socket {socket_name(sock)}"
        reserved = reserve_port(self.host, self.port)
        self.port = reserved.getsockname()[1]
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls else "http"
        return reserved, f"{scheme}://{url_host}:{self.port}"

    def run(self) -> int:
        """Serves until SIGINT/SIGTERM; returns the exit code."""
        reserved, where = self._listen()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        if self.tls:
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_reload)
        # A signal writes a byte here, which wakes the supervision loop's select().
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            # One worker first: an app that cannot start fails there, with one error line.
            # Then the others at once (each imports the app and runs its lifespan).
            self.workers.append(self._spawn(0))
            starting = [self._start(index) for index in range(1, self.count)]
            self.workers.extend(process for process, _ in starting)
            for process, read_end in starting:
                self._ready(process, read_end)
            pids = ", ".join(str(w.pid) for w in self.workers)
            logger.info("fastrapi-compat running on %s with %d workers (pids %s)", where, len(self.workers), pids)
            while self._signalled is None:
                if select.select([wake_r], [], [], 0.5)[0]:
                    os.read(wake_r, 512)
                if self._reload_asked:
                    self._pass_reload_on()
                self._replace_dead()
            return 0
        finally:
            self._stop_all()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            reserved.close()

    def _replace_dead(self) -> None:
        for index, worker in enumerate(self.workers):
            code = worker.poll()
            if code is None or self._signalled is not None:
                continue
            logger.warning("worker %d exited (code %s); starting another", worker.pid, code)
            try:
                self.workers[index] = self._spawn(index)
            except StartupError as exc:
                logger.error("cannot replace the worker: %s", exc)

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_timeout + 5.0
        for worker in self.workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
