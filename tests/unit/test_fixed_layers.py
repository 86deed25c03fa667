"""FastAPI's innermost layers (``ExceptionMiddleware`` around ``AsyncExitStackMiddleware``) are
passed in one step by native requests under Python middleware only when nothing of them was
modified; what they do is compared with uvicorn in tests/differential/test_python_middleware.py
(handlers, status handlers, ``def`` handlers, an exception once the answer started, the scope's
keys)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from apps import python_middleware
from starlette.middleware.exceptions import ExceptionMiddleware

from fastrapi_compat.execute.under import FixedLayers, NativeRouter, install


def layers(app: Any) -> list[Any]:
    found, layer = [], app.middleware_stack
    while layer is not None and layer is not app.router:
        found.append(layer)
        layer = getattr(layer, "app", None)
    return found


def test_the_unmodified_layers_are_passed_in_one_step() -> None:
    app = python_middleware.create_app()
    assert install(app) == ""
    stack = layers(app)
    fixed = [layer for layer in stack if type(layer) is FixedLayers]
    assert len(fixed) == 1
    assert type(fixed[0].layer) is ExceptionMiddleware
    assert type(stack[-1]) is NativeRouter and fixed[0].native is stack[-1]
    assert install(app) == ""  # installed again: nothing added
    assert [type(layer) for layer in layers(app)] == [type(layer) for layer in stack]


def test_a_patched_exception_middleware_is_run_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ExceptionMiddleware.__call__

    @functools.wraps(original)
    async def wrapped(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await original(self, scope, receive, send)

    monkeypatch.setattr(ExceptionMiddleware, "__call__", wrapped)
    app = python_middleware.create_app()
    assert install(app) == ""
    assert not [layer for layer in layers(app) if type(layer) is FixedLayers]
    assert type(layers(app)[-1]) is NativeRouter
