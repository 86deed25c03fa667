"""Wrappers an SDK puts around ``BaseHTTPMiddleware.__call__`` whose shape is known, so that
the direct ``call_next`` (:mod:`fastrapi_compat.execute.call_next`) can stand for Starlette's
``__call__`` *inside* the wrapper: the wrapper's own code still runs, unchanged, and only the
function it calls last is replaced.

Sentry's Starlette integration (``sentry_sdk.init``) replaces each middleware class's
``__call__`` by its ``_create_span_call``, a closure over the original (``old_call``): it names
the transaction, opens a middleware span, wraps ``receive`` and ``send`` in spans of their own,
and awaits ``old_call(app, scope, receive, send)``. :func:`rewrap` recognises it (its code's
name, file and free variables, and a sha256 of its source per release read), checks that
``old_call`` is Starlette's own ``BaseHTTPMiddleware.__call__``, and makes the same function (the
same code, globals and defaults) with ``old_call`` bound to another callable: Sentry's events,
spans and transaction names are made by Sentry's code, as on stock.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import types
from collections.abc import Callable
from typing import Any

#: sha256 of ``_create_span_call``'s source (``inspect.getsource``), per sentry-sdk release whose
#: wrapper awaits ``old_call(app, scope, receive, send, **kwargs)`` once, with the same ``app``
#: and ``scope``, its own ``receive`` and ``send`` or the ones it was given.
_KNOWN_SENTRY = frozenset(
    {
        "a54b8c5e5ed9c6742c5e14d04982bb44ecc5800880e3a4a1d24a7857c5b7e9ee",  # 3.0.0, 3.0.1
        "9de556405e8a73326b87818be404bd4c99e3459220ddba349556ebee053a084f",  # 2.76.0
    }
)
_SENTRY_FILE = os.path.join("sentry_sdk", "integrations", "starlette.py")

_digests: dict[types.CodeType, bool] = {}


def _known_sentry(code: types.CodeType) -> bool:
    known = _digests.get(code)
    if known is None:
        try:
            source = inspect.getsource(code)
        except (OSError, TypeError):  # sources not shipped
            known = False
        else:
            known = hashlib.sha256(source.encode()).hexdigest() in _KNOWN_SENTRY
        _digests[code] = known
    return known


def sentry_inner(call: Any) -> Any:
    """The function Sentry's middleware wrapper ``call`` wraps (its ``old_call``), when ``call``
    is that wrapper of a known release; else None."""
    code = getattr(call, "__code__", None)
    closure = getattr(call, "__closure__", None)
    if (
        code is None
        or closure is None
        or code.co_name != "_create_span_call"
        or code.co_freevars != ("old_call",)
        or not os.path.abspath(code.co_filename).endswith(os.sep + _SENTRY_FILE)
        or not _known_sentry(code)
    ):
        return None
    try:
        return closure[0].cell_contents
    except ValueError:  # an empty cell
        return None


def rewrap(call: Any, inner: Callable[..., Any]) -> Callable[..., Any]:
    """Sentry's wrapper ``call`` (checked by :func:`sentry_inner`) around ``inner`` instead of
    the function it wraps: the same code, globals, name and defaults."""
    wrapped = types.FunctionType(
        call.__code__, call.__globals__, call.__name__, call.__defaults__, (types.CellType(inner),)
    )
    wrapped.__kwdefaults__ = call.__kwdefaults__
    wrapped.__qualname__ = call.__qualname__
    wrapped.__module__ = call.__module__
    return wrapped
