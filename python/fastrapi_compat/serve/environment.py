"""What a server process sets up around the app, as uvicorn does: the environment file
(``--env-file``, python-dotenv), the event loop (``--loop``) and the listening socket when it
is not a TCP port the engine binds itself (``--uds``, ``--fd``)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import stat
from collections.abc import Callable

from fastrapi_compat.errors import StartupError

logger = logging.getLogger("uvicorn.error")

#: ``--loop`` values besides a ``module:attribute`` loop factory (uvicorn's, ``none`` included).
LOOPS = ("auto", "asyncio", "uvloop", "zuvloop", "none")


def load_env_file(path: str | os.PathLike[str]) -> None:
    """Loads ``path`` into ``os.environ`` with python-dotenv (variables already set win), as
    uvicorn's ``--env-file`` does."""
    if not os.path.isfile(path):
        raise StartupError(f"--env-file {os.fspath(path)!r}: no such file.")
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise StartupError(
            "--env-file needs python-dotenv: pip install python-dotenv (or 'fastrapi-compat[standard]')."
        ) from None
    logger.info("Loading environment from '%s'", os.fspath(path))
    load_dotenv(dotenv_path=path)


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop factory ``--loop name`` selects: uvloop's when installed for ``auto``
    (as uvicorn picks it), ``asyncio``'s, ``uvloop``'s, ``zuvloop``'s, or a ``module:attribute``
    factory. Raises :class:`StartupError` when it cannot be had."""
    if name in ("asyncio", "none"):
        return asyncio.new_event_loop
    if name == "auto":
        try:
            import uvloop
        except ImportError:
            return asyncio.new_event_loop
        return uvloop.new_event_loop
    if name in ("uvloop", "zuvloop"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise StartupError(f"--loop {name} needs {name} installed: pip install {name}.") from None
        factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
        return factory
    module_name, _, attrs = name.partition(":")
    if not module_name or not attrs:
        raise StartupError(f"invalid --loop {name!r}: expected auto, asyncio, uvloop, zuvloop or 'module:factory'.")
    try:
        found: object = importlib.import_module(module_name)
        for attr in attrs.split("."):
            found = getattr(found, attr)
    except (ImportError, AttributeError) as exc:
        raise StartupError(f"cannot load the --loop factory {name!r}: {exc}") from None
    if not callable(found):
        raise StartupError(f"the --loop factory {name!r} is not callable.")
    return found


def new_event_loop(name: str = "auto") -> asyncio.AbstractEventLoop:
    """A new loop from :func:`loop_factory`."""
    loop = loop_factory(name)()
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise StartupError(f"the --loop factory {name!r} did not make an event loop.")
    return loop


class UnixSocket:
    """A listening unix domain socket bound at ``path`` as uvicorn binds ``--uds`` (a stale
    socket file there is replaced, keeping its permissions; a new one is made 0o666), removed
    again by :meth:`close` if it is still ours."""

    def __init__(self, path: str, backlog: int) -> None:
        self.path = path
        mode = 0o666
        try:
            existing = os.stat(path)
        except FileNotFoundError:
            existing = None
        except OSError as exc:
            raise StartupError(f"cannot bind to unix socket {path}: {_reason(exc)}") from None
        if existing is not None:
            if not stat.S_ISSOCK(existing.st_mode):
                raise StartupError(f"cannot bind to unix socket {path}: a file that is not a socket is there.")
            mode = stat.S_IMODE(existing.st_mode)
            os.unlink(path)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.socket.bind(path)
            os.chmod(path, mode)
            self.socket.listen(backlog)
        except OSError as exc:
            self.socket.close()
            raise StartupError(f"cannot bind to unix socket {path}: {_reason(exc)}") from None
        self._inode = os.stat(path).st_ino

    def fileno(self) -> int:
        return self.socket.fileno()

    def close(self) -> None:
        self.socket.close()
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket on inherited descriptor ``fd`` (``--fd``), checked."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError as exc:
        raise StartupError(f"--fd {fd}: {_reason(exc)}.") from None
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        sock.close()
        raise StartupError(f"--fd {fd}: not a TCP or unix domain stream socket.")
    return sock


def socket_name(sock: socket.socket) -> str:
    """How uvicorn names a ``--fd`` socket in its startup line (``getsockname()``)."""
    return str(sock.getsockname())


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
