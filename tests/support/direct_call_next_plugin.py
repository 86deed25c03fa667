"""A pytest plugin for Starlette's own test suite (loaded by
``tests/differential/test_starlette_suite.py`` in a copy of Starlette's sdist): every
``BaseHTTPMiddleware`` call on asyncio is served by fastrapi-compat's direct ``call_next``
(:func:`fastrapi_compat.execute.call_next.serve`), the one native routes under such a middleware
take. Test-only: in production nothing of Starlette is patched, the middleware's layer is
replaced in the app's own stack for native requests only.

At the end of the session the number of requests served that way is written to the file named
by ``$FASTRAPI_DIRECT_CALL_NEXT_COUNT``, so the caller can tell the plugin was in effect.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
import starlette.middleware.base as base

from fastrapi_compat.execute.call_next import serve

_original = base.BaseHTTPMiddleware.__call__
_served = 0


async def _direct(self: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _served
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio: the engine only runs asyncio
        await _original(self, scope, receive, send)
        return
    if scope["type"] != "http":
        await _original(self, scope, receive, send)
        return
    _served += 1
    await serve(self, scope, receive, send)


@pytest.fixture(autouse=True)
def _direct_call_next(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(base.BaseHTTPMiddleware, "__call__", _direct)
    yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("FASTRAPI_DIRECT_CALL_NEXT_COUNT")
    if path:
        with open(path, "w") as out:
            out.write(str(_served))
