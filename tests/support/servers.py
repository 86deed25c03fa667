"""Servers in background threads for the differential tests.

``UvicornThread`` is the reference: stock uvicorn serving the app on a socket we bind ourselves
(127.0.0.1, port 0). ``engine_server`` is the side under test: the engine's ``ServerThread``.
``server_pair`` starts one of each, each on its own fresh instance of the app.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from typing_extensions import Self  # typing's from Python 3.11

STARTUP_TIMEOUT = 15.0

#: uvicorn 0.55's behaviour is the engine's where 0.54 differs (it logs the raw path and passes
#: it on; it strips trailing header whitespace). uvicorn 0.55 needs Python >= 3.11: on 3.10 the
#: reference is 0.54, and the few cases where the two differ are not compared.
UVICORN_055 = tuple(int(part) for part in uvicorn.__version__.split(".")[:2]) >= (0, 55)
NEEDS_UVICORN_055 = (
    f"uvicorn {uvicorn.__version__} here (0.55 needs Python >= 3.11) differs from 0.55, which the engine follows"
)
SHUTDOWN_TIMEOUT = 15.0

# Debugging aid only: serve the "engine" side with uvicorn too, to validate the harness itself.
# Off by default; the committed tests always compare against the engine.
ENGINE_IS_UVICORN_ENV = "FASTRAPI_DIFF_ENGINE_IS_UVICORN"


class UvicornThread:
    """Stock uvicorn serving ``app`` from a background thread.

    ``with UvicornThread(app) as srv:`` returns once the server accepts connections (lifespan
    startup done); ``srv.url``/``srv.port`` address it. Leaving the block asks the server to
    exit, which runs lifespan shutdown, and joins the thread.
    """

    def __init__(self, app: Any, root_path: str = "", **config: Any) -> None:
        self.app = app
        self.root_path = root_path
        self.config_options = config
        self.host = "127.0.0.1"
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._finished = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._socket = sock
        self.port = sock.getsockname()[1]
        options: dict[str, Any] = {
            "lifespan": "auto",
            "log_level": "warning",
            "root_path": self.root_path,
            "timeout_graceful_shutdown": 5,
        }
        options.update(self.config_options)
        self._server = uvicorn.Server(uvicorn.Config(self.app, **options))
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            # ``_finished`` is set when the thread ends, so a failed startup wakes us at once.
            if self._finished.wait(0.005):
                self._close_socket()
                raise RuntimeError(f"uvicorn exited during startup: {self._error!r}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise TimeoutError(f"uvicorn did not start within {STARTUP_TIMEOUT}s")
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # noqa: BLE001 - SystemExit on startup failure included
            self._error = exc
        finally:
            self._finished.set()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_TIMEOUT)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT)
        self._close_socket()
        if self._thread.is_alive():
            raise RuntimeError(f"uvicorn on port {self.port} did not shut down")
        if self._error is not None:
            raise RuntimeError(f"uvicorn on port {self.port} failed: {self._error!r}") from self._error


def engine_is_uvicorn() -> bool:
    return os.environ.get(ENGINE_IS_UVICORN_ENV, "") == "1"


def engine_server(app: Any, **kw: Any) -> Any:
    """The server under test: the engine's ``ServerThread`` on 127.0.0.1, port 0."""
    if engine_is_uvicorn():
        return UvicornThread(app, **kw)
    from fastrapi_compat.serve.server import ServerThread

    return ServerThread(app, host="127.0.0.1", port=0, **kw)


@dataclass
class ServerPair:
    """The reference server and the engine, each serving its own instance of one app."""

    reference: Any
    engine: Any
    reference_app: Any
    engine_app: Any


@contextlib.contextmanager
def server_pair(create_app: Callable[[], Any], root_path: str = "") -> Iterator[ServerPair]:
    """Start uvicorn and the engine on two fresh instances from ``create_app``.

    Fresh instances keep the two sides' state apart (background-task records, counters), so
    one side can never satisfy the other side's check.
    """
    reference_app = create_app()
    engine_app = create_app()
    with (
        UvicornThread(reference_app, root_path=root_path) as reference,
        engine_server(engine_app, root_path=root_path) as engine,
    ):
        yield ServerPair(reference, engine, reference_app, engine_app)
