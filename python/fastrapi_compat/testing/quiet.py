"""The test clients' own HTTP and websocket clients log nothing into the user's loggers.

The transports carry each request to the engine with an httpx (or httpx2) transport and
websockets' client; httpcore logs every connection and request it makes at DEBUG
(``httpcore.connection``, ``httpcore.http11``, ...), and websockets its frames. Those records
are ours, not the app's or the test's: with ``caplog`` at DEBUG, or a test that checks what an
app logged, they would show up (``ASGITransport`` and Starlette's ``TestClient`` make no
connection, so log none). A filter on httpcore's loggers drops the records made while
:func:`quiet` is active in the current context (the loopback calls), and leaves the user's own
httpx calls alone; websockets' client is given a logger that is off (:data:`WEBSOCKETS_LOGGER`).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["WEBSOCKETS_LOGGER", "install", "quiet"]

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("fastrapi_compat_quiet", default=False)
# httpcore's loggers and httpx2's core's (a filter acts only on records made on its own logger).
_LOGGERS = tuple(
    f"{core}.{part}"
    for core in ("httpcore", "httpcore2")
    for part in ("connection", "http11", "http2", "proxy", "socks")
)

#: The logger websockets' client is given for the test clients' connections: off.
WEBSOCKETS_LOGGER = logging.getLogger("fastrapi_compat.testing.websocket_client")
WEBSOCKETS_LOGGER.disabled = True
WEBSOCKETS_LOGGER.propagate = False


class _DropLoopbackRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _QUIET.get()


_FILTER = _DropLoopbackRecords()


def install() -> None:
    """Adds the filter to httpcore's loggers (once)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


@contextmanager
def quiet() -> Iterator[None]:
    """While active (in this context), httpcore's records are dropped."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


install()
