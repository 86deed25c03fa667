"""``fastrapi-compat run --workers N``: N server processes on one port, supervised.

Each worker is a ``fastrapi-compat run`` process of its own (its own interpreter, GIL, event
loop and engine). The supervisor (the process the user started) makes the one listening socket
(binds ``--host``/``--port``, or ``--uds``, or takes ``--fd``) and each worker inherits it
(``--fd``), as uvicorn's workers share the socket its supervisor bound: connections wait in one
accept queue, which outlives any worker, so a worker that dies or is recycled loses none of the
connections not yet accepted (with a listening socket per worker, ``SO_REUSEPORT``, the kernel
resets those queued on the socket of a worker that exits). The supervisor then starts the
workers and waits until each says it is serving, through a pipe whose write end the worker
inherits (``FASTRAPI_READY_FD``) and keeps: it later says there when it has served
``--limit-max-requests`` requests, and closes it when, told to stop, it accepts no more.

A worker that fails before it is ready (bad app, failing lifespan startup) stops the whole
server: its own one-line error is on stderr, and ``run`` exits 1. A worker that dies later is
replaced. A worker that reached ``--limit-max-requests`` keeps serving until its replacement is
ready, then gets SIGTERM (its requests in flight finish). SIGHUP replaces the workers one by one
the same way (uvicorn's rolling restart: each new worker ready before an old one stops); the
restart is over once no old worker accepts connections.
With TLS, the new workers read the certificate and key files again (a renewed certificate
is served once the restart is over; a single server reloads them in place on SIGHUP instead).
SIGINT/SIGTERM are passed on to every worker, which shut down gracefully (in-flight requests
finish); workers still running after the graceful timeout are killed. Workers also get SIGTERM
if the supervisor dies (``PR_SET_PDEATHSIG``).
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
from collections.abc import Callable, Sequence
from pathlib import Path

from fastrapi_compat.errors import StartupError
from fastrapi_compat.serve.environment import UnixSocket, inherited_socket, socket_name
from fastrapi_compat.serve.logs import SERVER_LOGGER
from fastrapi_compat.serve.reload import ReloadOptions, start_watching

logger = logging.getLogger(SERVER_LOGGER)

READY_FD_ENV = "FASTRAPI_READY_FD"
#: A worker's index (0..N-1, kept by its replacement): its metrics' ``worker`` label.
WORKER_INDEX_ENV = "FASTRAPI_WORKER_INDEX"
#: How long a worker may take to import the app and run its lifespan startup.
READY_TIMEOUT = 120.0
#: How long a worker told to stop may take to stop accepting (it stops at once unless stuck).
STOP_ACCEPTING_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1


class WorkerStartupFailed(StartupError):
    """A worker exited before serving. Exit code 1 is the CLI's own error exit: the worker
    has printed its one ``Error:`` line already."""

    def __init__(self, code: int) -> None:
        super().__init__(f"a worker exited during startup (exit code {code})")
        self.code = code


#: What a worker writes on its pipe: it is serving; it has served its ``--limit-max-requests``.
READY, RETIRE = b"1", b"r"
#: In a worker: the supervisor's pipe, once told the worker is ready.
_to_supervisor: int | None = None


def notify_ready() -> None:
    """In a worker: tells the supervisor the server is accepting connections."""
    global _to_supervisor
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    try:
        os.write(int(fd), READY)
        _to_supervisor = int(fd)
    except (OSError, ValueError):
        pass


def ask_to_retire() -> bool:
    """In a worker that reached ``--limit-max-requests``: asks the supervisor to start its
    replacement and stop it once that one is ready. False when not a supervised worker (or the
    supervisor is gone): the caller stops the server itself."""
    fd = _to_supervisor
    if fd is None:
        return False
    try:
        os.write(fd, RETIRE)
    except OSError:
        notify_stopped_accepting()
        return False
    return True


def notify_stopped_accepting() -> None:
    """In a worker that is stopping: tells the supervisor it accepts no more connections (the
    pipe's EOF), so that what is queued on the shared socket goes to the other workers."""
    global _to_supervisor
    fd, _to_supervisor = _to_supervisor, None
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
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


def bind_port(host: str, port: int, backlog: int) -> socket.socket:
    """The workers' listening socket on ``host:port`` (port 0 picks one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise StartupError(f"cannot bind to {host}:{port}: {reason}") from None
    return sock


class Worker:
    """A worker process, its index (kept by its replacement) and the read end of its pipe
    (``None`` once it said it is exiting)."""

    def __init__(self, process: subprocess.Popen[bytes], pipe: int, index: int) -> None:
        self.process = process
        self.pipe: int | None = pipe
        self.index = index

    @property
    def pid(self) -> int:
        return self.process.pid

    def close_pipe(self) -> None:
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None


class Supervisor:
    """Starts ``count`` workers with ``worker_argv`` and keeps them running until a signal."""

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
        reload: ReloadOptions | None = None,
        metrics_port: int | None = None,
        tls: bool = False,
    ) -> None:
        self.worker_argv = list(worker_argv)
        #: The workers serve TLS: the URL logged is ``https``.
        self.tls = tls
        #: Worker i serves its own metrics on ``metrics_port + i`` (each on a free port for 0).
        self.metrics_port = metrics_port
        #: ``run --reload``: one worker, replaced when a watched file changes (``reload.py``).
        self.reload = reload
        self.count = count
        self.host = host
        self.port = port
        self.graceful_timeout = graceful_timeout
        self.uds = uds
        self.fd = fd
        self.backlog = backlog
        #: The shared listening socket's descriptor, given to each worker.
        self._shared_fd = -1
        self.workers: list[Worker] = []
        #: Workers told to stop (replaced, or the restart of SIGHUP), not yet exited.
        self.retiring: list[subprocess.Popen[bytes]] = []
        #: Set by the signal handler, which does nothing else (no locks in a handler).
        self._signalled: int | None = None
        self._hangup = False
        #: Set by the reloader's thread, which then wakes the loop through ``_wake``.
        self._changed = False
        self._wake = -1

    def _start(self, index: int) -> Worker:
        """A new worker, the ``index``th (not yet ready)."""
        read_end, write_end = os.pipe()
        env = dict(os.environ, **{READY_FD_ENV: str(write_end), WORKER_INDEX_ENV: str(index)})
        argv = [*self.worker_argv, "--fd", str(self._shared_fd)]
        if self.metrics_port is not None:
            argv += ["--metrics-port", str(self.metrics_port + index if self.metrics_port else 0)]
        try:
            process = subprocess.Popen(argv, env=env, pass_fds=(write_end, self._shared_fd))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return Worker(process, read_end, index)

    def _ready(self, worker: Worker) -> Worker:
        """Waits for the worker's ready byte. EOF means the worker is exiting: its pipe closes
        during its exit, possibly before its exit status can be read, so that is waited for."""
        assert worker.pipe is not None
        ready, _, _ = select.select([worker.pipe], [], [], READY_TIMEOUT)
        said = os.read(worker.pipe, 1) if ready else None
        if said == READY:
            return worker
        worker.close_pipe()
        process = worker.process
        try:
            code = process.wait(READY_TIMEOUT if said == b"" else 0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise StartupError(f"a worker did not start within {READY_TIMEOUT:.0f} s") from None
        raise WorkerStartupFailed(code)

    def _spawn(self, index: int) -> Worker:
        return self._ready(self._start(index))

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            self._hangup = True
        else:
            self._signalled = signum

    def _listen(self) -> tuple[socket.socket | UnixSocket, str]:
        """The socket the workers serve on, and its name."""
        if self.uds is not None:
            unix = UnixSocket(self.uds, self.backlog)
            self._shared_fd = unix.fileno()
            return unix, f"unix socket {self.uds}"
        if self.fd is not None:
            sock = inherited_socket(self.fd)
            sock.listen(self.backlog)
            self._shared_fd = sock.fileno()
            return sock, f"socket {socket_name(sock)}"
        sock = bind_port(self.host, self.port, self.backlog)
        self._shared_fd = sock.fileno()
        self.port = sock.getsockname()[1]
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls else "http"
        return sock, f"{scheme}://{url_host}:{self.port}"

    def run(self) -> int:
        """Serves until SIGINT/SIGTERM; returns the exit code."""
        listening, where = self._listen()
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        # A signal writes a byte here, which wakes the supervision loop's select().
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous_wakeup = signal.set_wakeup_fd(wake_w)
        self._wake = wake_w
        stop_watching: Callable[[], None] | None = None
        try:
            if self.reload is not None:
                # As uvicorn's reloader: an app that cannot start (its error is printed) is
                # started again at the next change, the reloader keeps watching.
                logger.info("Started reloader process [%d] using WatchFiles (server on %s)", os.getpid(), where)
                stop_watching = start_watching(self.reload, self._files_changed)
                self._start_reloaded()
            else:
                # One worker first: an app that cannot start fails there, with one error line.
                # Then the others at once (each imports the app and runs its lifespan).
                self.workers.append(self._spawn(0))
                starting = [self._start(index) for index in range(1, self.count)]
                self.workers.extend(starting)
                for worker in starting:
                    self._ready(worker)
                pids = ", ".join(str(w.pid) for w in self.workers)
                logger.info("fastrapi-compat running on %s with %d workers (pids %s)", where, len(self.workers), pids)
            while self._signalled is None:
                self._supervise(wake_r)
            return 0
        finally:
            if stop_watching is not None:
                stop_watching()
            self._stop_all()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            listening.close()

    def _supervise(self, wake_r: int) -> None:
        """One turn of the supervision loop: waits for a signal or a worker's word (or 0.5 s),
        then acts on it."""
        pipes = {w.pipe: w for w in self.workers if w.pipe is not None}
        readable, _, _ = select.select([wake_r, *pipes], [], [], 0.5)
        if wake_r in readable:
            os.read(wake_r, 512)
        for fd in readable:
            worker = pipes.get(fd)
            if worker is None or self._signalled is not None:
                continue
            said = os.read(fd, 1)
            if said == RETIRE:
                logger.info("worker %d reached its request limit; replacing it", worker.pid)
                self._replace(worker)
            elif said == b"":  # exiting: its exit status is read below
                worker.close_pipe()
        if (self._hangup or self._changed) and self._signalled is None:
            hangup = self._hangup
            if hangup:
                logger.info("Received SIGHUP, restarting workers one by one")
            self._hangup = self._changed = False
            if self.reload is not None and not self.workers:
                self._start_reloaded()
            for worker in list(self.workers):
                if self._signalled is not None or not self._replace(worker):
                    break
            else:
                if hangup:
                    pids = ", ".join(str(w.pid) for w in self.workers)
                    logger.info("Restarted the workers (pids %s)", pids)
        self._replace_dead()
        self.retiring = [process for process in self.retiring if process.poll() is None]

    def _start_reloaded(self) -> None:
        """``--reload`` with no server running (the first start, or the app failed to start
        or exited): starts one; if the app fails, the reloader waits for the next change."""
        try:
            self.workers.append(self._spawn(0))
        except WorkerStartupFailed as exc:
            if exc.code != 1:  # 1: the worker printed its error already
                logger.error("%s", exc)
            logger.warning("The app did not start; waiting for a change to start it again")
        except StartupError as exc:
            logger.error("%s; waiting for a change to start it again", exc)

    def _files_changed(self, paths: list[Path]) -> None:
        """In the reloader's thread: restart the server (from the supervision loop)."""
        names = ", ".join(f"'{_shown(path)}'" for path in paths)
        logger.warning("WatchFiles detected changes in %s. Reloading...", names)
        self._changed = True
        try:
            os.write(self._wake, b"c")
        except OSError:
            pass

    def _replace(self, old: Worker) -> bool:
        """Starts a worker in ``old``'s place and stops ``old`` once the new one is ready (it
        finishes its requests in flight). False if the new one failed: ``old`` keeps serving."""
        try:
            new = self._spawn(old.index)
        except StartupError as exc:
            logger.error("cannot start a worker to replace worker %d (it keeps serving): %s", old.pid, exc)
            return False
        self.workers[self.workers.index(old)] = new
        if old.process.poll() is None:
            old.process.send_signal(signal.SIGTERM)
            self.retiring.append(old.process)
            self._stopped_accepting(old)
        old.close_pipe()
        return True

    def _stopped_accepting(self, old: Worker) -> None:
        """Waits (within :data:`STOP_ACCEPTING_TIMEOUT`) until ``old``, told to stop, accepts no
        more: its pipe's EOF (``notify_stopped_accepting``), or its exit. Until then it takes
        new connections too (served with its old code and certificate), so a restart is over
        only after that, as uvicorn's, which waits for each old worker to exit."""
        deadline = time.monotonic() + STOP_ACCEPTING_TIMEOUT
        while old.pipe is not None and (left := deadline - time.monotonic()) > 0:
            if not select.select([old.pipe], [], [], left)[0]:
                break
            try:
                if os.read(old.pipe, 1) == b"":
                    break
            except OSError:
                break

    def _replace_dead(self) -> None:
        for index, worker in enumerate(self.workers):
            code = worker.process.poll()
            if code is None or self._signalled is not None:
                continue
            worker.close_pipe()
            if self.reload is not None:  # as uvicorn's reloader: started again at the next change
                logger.warning("The server exited (code %s); waiting for a change to start it again", code)
                self.workers.remove(worker)
                return
            logger.warning("worker %d exited (code %s); starting another", worker.pid, code)
            try:
                self.workers[index] = self._spawn(worker.index)
            except StartupError as exc:
                logger.error("cannot replace the worker: %s", exc)

    def _stop_all(self) -> None:
        processes = [w.process for w in self.workers] + self.retiring
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_timeout + 5.0
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for worker in self.workers:
            worker.close_pipe()


def _shown(path: Path) -> str:
    """A changed file as uvicorn names it: relative to the current directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
