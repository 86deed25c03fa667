"""FastAPI's two innermost layers, Starlette's ``ExceptionMiddleware`` around FastAPI's
``AsyncExitStackMiddleware``, and whether a native request may pass both in one step
(:class:`fastrapi_compat.execute.under.FixedLayers`): both are exactly the libraries' classes,
their code is the libraries' own (not wrapped: Sentry patches ``ExceptionMiddleware``), and the
modules' sources are the releases whose semantics that step reproduces (sha256 of each module's
source). The pieces the step uses are read from the modules themselves, as their code reads them.
"""

from __future__ import annotations

import hashlib
import inspect
import types
from typing import Any

import starlette._exception_handler as _handling
import starlette.middleware.exceptions as _exceptions

from fastrapi_compat.plan.internals import _origin

try:  # FastAPI 0.118+
    import fastapi.middleware.asyncexitstack as _astack
except ImportError:  # pragma: no cover - older FastAPI: no such layer, nothing to flatten
    _astack = None  # type: ignore[assignment]

#: sha256 of each module's source, per release verified: starlette.middleware.exceptions and
#: starlette._exception_handler (Starlette 1.10), fastapi.middleware.asyncexitstack (FastAPI 0.165).
_KNOWN = frozenset(
    {
        "ece812522060c074b854c9a9696970db5b8328d0e638cccb559ad60cb0d4a96a",
        "098778c3e19778a1dc9d270b2742022b06e4af7e34aab5bbbf990c2957061d48",
        "44a1a54291b383718ba2ca9586bc41cbf34267da894bbcd078d1ede58df1fb4d",
    }
)


def _digest(module: types.ModuleType) -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()
    except (OSError, TypeError):  # pragma: no cover - sources not shipped
        return None


_SOURCES_KNOWN = _astack is not None and all(_digest(m) in _KNOWN for m in (_exceptions, _handling, _astack))

HTTPException = _handling.HTTPException  # type: ignore[attr-defined]


def _own(function: Any, qualname: str) -> bool:
    return getattr(function, "__qualname__", None) == qualname and _origin(function) is None


def flattenable(outer: Any, inner: Any) -> bool:
    """Whether ``outer`` (around ``inner``, whose ``app`` is the router) is Starlette's own
    ``ExceptionMiddleware`` around FastAPI's own ``AsyncExitStackMiddleware``, nothing of them
    patched, of the releases verified."""
    if not _SOURCES_KNOWN or type(outer) is not _exceptions.ExceptionMiddleware:
        return False
    if type(inner) is not _astack.AsyncExitStackMiddleware:
        return False
    exception_middleware = _exceptions.ExceptionMiddleware
    return (
        _own(exception_middleware.__call__, "ExceptionMiddleware.__call__")
        and _own(exception_middleware.__init__, "ExceptionMiddleware.__init__")
        and _own(_astack.AsyncExitStackMiddleware.__call__, "AsyncExitStackMiddleware.__call__")
        and getattr(_exceptions, "wrap_app_handling_exceptions", None) is _handling.wrap_app_handling_exceptions
        and _own(_handling.wrap_app_handling_exceptions, "wrap_app_handling_exceptions")
        and _own(_handling._lookup_exception_handler, "_lookup_exception_handler")
    )


def lookup_handler(handlers: Any, exc: Exception) -> Any:
    """Starlette's ``_lookup_exception_handler``, as its exception wrapper calls it."""
    return _handling._lookup_exception_handler(handlers, exc)


def request(scope: Any, receive: Any, send: Any) -> Any:
    """The ``Request`` ``ExceptionMiddleware`` hands a handler."""
    return _exceptions.Request(scope, receive, send)  # type: ignore[attr-defined]


def is_async_callable(handler: Any) -> bool:
    return bool(_handling.is_async_callable(handler))  # type: ignore[attr-defined]


async def run_in_threadpool(handler: Any, *args: Any) -> Any:
    return await _handling.run_in_threadpool(handler, *args)  # type: ignore[attr-defined]
