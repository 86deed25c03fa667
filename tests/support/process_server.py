"""uvicorn or the engine serving an app in a child process, for what must be measured on the
server alone (its memory): ``with ProcessServer("engine", "apps.ws_limits:create_app") as srv``.

Run as a script, it serves ``TARGET`` (a factory) on 127.0.0.1 port 0 and prints ``PORT n``
once it accepts connections; SIGTERM or SIGINT stop it. ``log=path`` sends its stderr to a
file (read it while it runs with ``logged()``); ``nofile=n`` sets its RLIMIT_NOFILE.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class ProcessServer:
    def __init__(
        self, kind: str, target: str, *, log: Path | None = None, nofile: int | None = None, **options: Any
    ) -> None:
        assert kind in ("engine", "uvicorn"), kind
        self.kind, self.target, self.options = kind, target, options
        self.log, self.nofile = log, nofile
        self.port = 0
        self.stderr = ""
        self._process: subprocess.Popen[str] | None = None

    def logged(self) -> str:
        """What the server has written to stderr so far (with ``log``)."""
        assert self.log is not None
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _limit_files(self) -> None:  # in the child, before it runs Python
        if self.nofile is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            limit = self.nofile if hard == resource.RLIM_INFINITY else min(self.nofile, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def rss(self) -> float:
        return rss_mib(self.pid)

    @property
    def returncode(self) -> int | None:
        """The exit status once :meth:`wait` has seen the server exit."""
        assert self._process is not None
        return self._process.returncode

    def signal(self, sig: int) -> None:
        assert self._process is not None
        self._process.send_signal(sig)

    def wait(self, timeout: float) -> float | None:
        """Seconds until the server exited (``None``: still running after ``timeout``, then
        killed); its stderr is ``self.stderr`` after."""
        assert self._process is not None
        start = time.monotonic()
        try:
            _, stderr = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, stderr = self._process.communicate()
            self.stderr = self.logged() if self.log else stderr
            return None
        self.stderr = self.logged() if self.log else stderr
        return time.monotonic() - start

    def __enter__(self) -> ProcessServer:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
        log = self.log.open("w") if self.log else None  # the child keeps its own copy
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "support.process_server", self.kind, self.target, json.dumps(self.options)],
                cwd=TESTS_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log or subprocess.PIPE,
                text=True,
                preexec_fn=self._limit_files if self.nofile is not None else None,
            )
        finally:
            if log is not None:
                log.close()
        assert self._process.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._process.stdout], [], [], 0.5)
            if ready:
                line = self._process.stdout.readline()
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
                    return self
                if not line and self._process.poll() is not None:
                    break
        self.__exit__()
        raise RuntimeError(f"{self.kind} did not start: {self.stderr}")

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None or (process.stdout is not None and process.stdout.closed):
            return  # already collected by wait()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        self.stderr = self.stderr or (self.logged() if self.log else stderr)


def _factory(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)()


def _serve_engine(app: Any, options: dict[str, Any]) -> None:
    from fastrapi_compat.serve.server import Config, Server, new_event_loop

    if "timeout_graceful_shutdown" in options:  # uvicorn's name
        options["graceful_timeout"] = options.pop("timeout_graceful_shutdown")
    from fastrapi_compat.serve.logs import configure_logging

    options = {"log_level": "warning", **options}
    configure_logging(options["log_level"], access_log=False)  # stdout carries the PORT line
    server = Server(app, Config(host="127.0.0.1", port=0, **options))
    loop = new_event_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.on_signal, sig)

    def ready() -> None:
        assert server.bound is not None
        print(f"PORT {server.bound[1]}", flush=True)

    try:
        loop.run_until_complete(server.serve(on_ready=ready))
    finally:
        loop.close()


def _serve_uvicorn(app: Any, options: dict[str, Any]) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": "warning", "access_log": False, **options}))
    port = sock.getsockname()[1]
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets=sockets)
        print(f"PORT {port}", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=[sock])


if __name__ == "__main__":
    kind, target, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    application = _factory(target)
    (_serve_engine if kind == "engine" else _serve_uvicorn)(application, json.loads(raw))
