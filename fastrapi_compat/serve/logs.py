"""The server's log output: the ``fastrapi_compat`` logger to stderr in uvicorn's format."""

from __future__ import annotations

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


def configure_logging(level: str) -> None:
    """Send the ``fastrapi_compat`` logger to stderr in uvicorn's format at ``level``."""
    logging.addLevelName(TRACE, "TRACE")
    numeric = TRACE if level == "trace" else getattr(logging, level.upper())
    logger = logging.getLogger("fastrapi_compat")
    for handler in list(logger.handlers):
        if getattr(handler, "_fastrapi_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelPrefixFormatter(use_colours=_colours_wanted(sys.stderr)))
    handler._fastrapi_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False


def _colours_wanted(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
