"""The server's logging, as uvicorn's: the ``uvicorn.error`` logger (server messages, on stderr)
and ``uvicorn.access`` (the access log, on stdout), configured from a dictConfig like uvicorn's
``LOGGING_CONFIG`` or from the user's ``--log-config`` file (JSON, YAML or ini), with uvicorn's
``--log-level``, ``--use-colors`` and ``--no-access-log`` applied on top, as uvicorn applies them.

:class:`DefaultFormatter` and :class:`AccessFormatter` take uvicorn's formatters' arguments and
fields (``%(levelprefix)s``, ``%(client_addr)s``, ``%(request_line)s``, ``%(status_code)s``),
so a log config written for uvicorn works with ``uvicorn.logging`` replaced by
``fastrapi_compat.serve.logs`` (and unchanged while uvicorn is installed).
"""

from __future__ import annotations

import copy
import http
import json
import logging
import logging.config
import os
import sys
from typing import Any, Literal

from fastrapi_compat.errors import StartupError

TRACE = 5
"""uvicorn's ``trace`` level, below ``DEBUG``."""

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

#: The logger of the server's own messages (uvicorn's name, so log configs written for uvicorn
#: route them).
SERVER_LOGGER = "uvicorn.error"

_ANSI = {"blue": 34, "cyan": 36, "green": 32, "yellow": 33, "red": 31, "bright_red": 91, "bright_white": 97}


def style(text: str, fg: str | None = None, bold: bool = False) -> str:
    """``text`` in ANSI colour ``fg`` and/or bold, as uvicorn styles it."""
    prefix = f"\033[{_ANSI[fg]}m" if fg is not None else ""
    if bold:
        prefix += "\033[1m"
    return f"{prefix}{text}\033[0m"


_LEVEL_COLOURS = {
    TRACE: "blue",
    logging.DEBUG: "cyan",
    logging.INFO: "green",
    logging.WARNING: "yellow",
    logging.ERROR: "red",
    logging.CRITICAL: "bright_red",
}
_STATUS_COLOURS = {1: "bright_white", 2: "green", 3: "yellow", 4: "red", 5: "bright_red"}


class DefaultFormatter(logging.Formatter):
    """uvicorn's ``DefaultFormatter``: ``%(levelprefix)s`` is the level name and a colon padded
    to 9 columns (coloured with ``use_colors``; a record's ``color_message`` is then used).
    ``use_colors=None``: colours when stdout is a terminal (and ``NO_COLOR`` is not set)."""

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        if use_colors in (True, False):
            self.use_colors = bool(use_colors)
        else:
            self.use_colors = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record = copy.copy(record)
        name = record.levelname
        separator = " " * (8 - len(name))
        if self.use_colors:
            name = style(name, fg=_LEVEL_COLOURS.get(record.levelno))
            if "color_message" in record.__dict__:
                record.msg = record.__dict__["color_message"]
                record.__dict__["message"] = record.getMessage()
        record.__dict__["levelprefix"] = name + ":" + separator
        return super().formatMessage(record)


class AccessFormatter(DefaultFormatter):
    """uvicorn's ``AccessFormatter``, from the arguments of uvicorn's access message (client,
    method, path, HTTP version, status): ``%(client_addr)s``, ``%(request_line)s`` (bold with
    colours) and ``%(status_code)s`` (``200 OK``, coloured by class)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5):
            return super().formatMessage(record)
        record = copy.copy(record)
        client, method, path, version, status = args
        try:
            phrase = http.HTTPStatus(int(status)).phrase  # type: ignore[call-overload]
        except ValueError:
            phrase = ""
        status_code = f"{status} {phrase}"
        request_line = f"{method} {path} HTTP/{version}"
        if self.use_colors:
            status_code = style(status_code, fg=_STATUS_COLOURS.get(int(status) // 100))  # type: ignore[call-overload]
            request_line = style(request_line, bold=True)
        record.__dict__.update(client_addr=client, request_line=request_line, status_code=status_code)
        return super().formatMessage(record)


LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "fastrapi_compat.serve.logs.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "fastrapi_compat.serve.logs.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        },
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        # the engine's own loggers (thread pool, recompiles, check): as uvicorn.error's
        "fastrapi_compat": {"handlers": ["default"], "level": "INFO", "propagate": False},
    },
}
"""uvicorn's default logging config, with this package's formatters (the same output)."""


class LogConfigError(StartupError):
    """A ``--log-config`` that cannot be applied; ``str()`` is one line."""


def configure_logging(
    log_level: str | int | None = "info",
    access_log: bool = True,
    use_colors: bool | None = None,
    log_config: dict[str, Any] | str | os.PathLike[str] | None = LOGGING_CONFIG,
) -> None:
    """Configures logging as uvicorn's ``Config`` does: ``log_config`` (a dictConfig dict, by
    default :data:`LOGGING_CONFIG`, whose two formatters get ``use_colors``; a
    ``.json``/``.yaml``/``.yml`` dictConfig file or an ``.ini`` fileConfig file; ``None``: left
    as it is), then ``log_level`` on uvicorn's loggers (``None``: the config's levels stand),
    then no access log handlers when ``access_log`` is False. Raises :class:`LogConfigError`
    for a config that cannot be applied."""
    logging.addLevelName(TRACE, "TRACE")
    if log_config is None:
        pass
    elif isinstance(log_config, dict):
        config = copy.deepcopy(log_config)
        formatters = config.get("formatters", {})
        if use_colors in (True, False):  # uvicorn gives it to a dict config's two formatters
            for name in ("default", "access"):
                if isinstance(formatters.get(name), dict):
                    formatters[name]["use_colors"] = use_colors
        _apply(lambda: logging.config.dictConfig(config), "the log_config dict")
    else:
        _apply_file(os.fspath(log_config))
    if log_level is not None:
        level = LOG_LEVELS[log_level.lower()] if isinstance(log_level, str) else log_level
        for name in ("uvicorn.error", "uvicorn.access", "uvicorn.asgi", "fastrapi_compat"):
            logging.getLogger(name).setLevel(level)
    if not access_log:
        access = logging.getLogger("uvicorn.access")
        access.handlers = []
        access.propagate = False


def _apply_file(path: str) -> None:
    """A log config file, by its extension as uvicorn reads it."""
    if not os.path.isfile(path):
        raise LogConfigError(f"--log-config {path!r}: no such file.")
    if path.endswith(".json"):

        def load() -> Any:
            with open(path) as file:
                return json.load(file)

    elif path.endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise LogConfigError(
                f"--log-config {path!r} is YAML, which needs PyYAML: pip install pyyaml "
                "(or 'fastrapi-compat[standard]')."
            ) from None

        def load() -> Any:
            with open(path) as file:
                return yaml.safe_load(file)

    else:
        _apply(lambda: logging.config.fileConfig(path, disable_existing_loggers=False), repr(path))
        return
    _apply(lambda: logging.config.dictConfig(load()), repr(path))


def _apply(configure: Any, what: str) -> None:
    try:
        configure()
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        cause = exc.__cause__
        if cause is not None:
            reason += " (" + " ".join(f"{type(cause).__name__}: {cause}".split()) + ")"
        raise LogConfigError(f"cannot apply --log-config {what}: {reason}") from exc
