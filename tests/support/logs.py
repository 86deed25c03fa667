"""What the engine logged during a test, whatever logging config uvicorn (run in the same
process by the differential tests) installed: the engine's server messages go to
``uvicorn.error`` as uvicorn's do, and that logger does not propagate to pytest's ``caplog``
once uvicorn configured it, so the records are taken at the loggers themselves and told apart
by the thread that logged them (the engine's loop thread is ``fastrapi-loop``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

ENGINE_THREAD = "fastrapi-loop"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def engine_errors() -> Iterator[list[logging.LogRecord]]:
    """Yields a list that receives, until the block ends, every record at ERROR or above that
    the engine logged (its own ``fastrapi_compat`` loggers, or ``uvicorn.error`` from its loop
    thread)."""
    handler = _Records()
    found: list[logging.LogRecord] = []
    loggers = [logging.getLogger("uvicorn.error"), logging.getLogger("fastrapi_compat")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield found
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        found.extend(
            record
            for record in handler.records
            if record.levelno >= logging.ERROR
            and (record.name.startswith("fastrapi") or record.threadName == ENGINE_THREAD)
        )
