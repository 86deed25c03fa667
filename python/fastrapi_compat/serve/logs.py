"""The server's log output: the ``fastrapi_compat`` logger to stderr and the ``uvicorn.access``
logger to stdout, in uvicorn's formats."""

from __future__ import annotations

import http
import logging
import os
import sys
from typing import Any, ClassVar

TRACE = 5
"""uvicorn's ``trace`` level, below ``DEBUG``."""


class _LevelPrefixFormatter(logging.Formatter):
    """uvicorn's console format: ``INFO:     message`` (level name coloured on a terminal)."""

    COLOURS: ClassVar[dict[int, str]] = {
        TRACE: "34",
        logging.DEBUG: "36",
        logging.INFO: "32",
        logging.WARNING: "33",
        logging.ERROR: "31",
        logging.CRITICAL: "91",
    }

    def __init__(self, use_colours: bool) -> None:
        super().__init__("%(message)s")
        self.use_colours = use_colours

    def format(self, record: logging.LogRecord) -> str:
        name = record.levelname
        padding = " " * max(0, 8 - len(name))
        if self.use_colours:
            name = f"\033[{self.COLOURS.get(record.levelno, '0')}m{name}\033[0m"
        return f"{name}:{padding} {super().format(record)}"


class _AccessFormatter(_LevelPrefixFormatter):
    """uvicorn's access format: ``INFO:     127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK``, from
    the arguments of uvicorn's access message (client, method, path, version, status)."""

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            try:
                phrase = http.HTTPStatus(int(status)).phrase  # type: ignore[call-overload]
            except ValueError:
                phrase = ""
            line = f'{client} - "{method} {path} HTTP/{version}" {status} {phrase}'.rstrip()
            record = logging.makeLogRecord({**record.__dict__, "msg": line, "args": ()})
        return super().format(record)


def _install(logger: logging.Logger, handler: logging.Handler, numeric: int) -> None:
    for old in list(logger.handlers):
        if getattr(old, "_fastrapi_cli", False):
            logger.removeHandler(old)
    handler._fastrapi_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False


def configure_logging(level: str, access_log: bool = True) -> None:
    """Send the ``fastrapi_compat`` logger to stderr in uvicorn's format at ``level``, and the
    ``uvicorn.access`` logger (the access log) to stdout as uvicorn does, unless not wanted."""
    logging.addLevelName(TRACE, "TRACE")
    numeric = TRACE if level == "trace" else getattr(logging, level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelPrefixFormatter(use_colours=_colours_wanted(sys.stderr)))
    _install(logging.getLogger("fastrapi_compat"), handler, numeric)
    access = logging.getLogger("uvicorn.access")
    if access_log:
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(_AccessFormatter(use_colours=_colours_wanted(sys.stdout)))
        _install(access, out, numeric)
    else:
        for old in list(access.handlers):
            if getattr(old, "_fastrapi_cli", False):
                access.removeHandler(old)


def _colours_wanted(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
