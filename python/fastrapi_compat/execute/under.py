"""Native routes under the app's own middleware stack.

When the app has middleware that run in Python (a pure-ASGI class, ``BaseHTTPMiddleware``,
``@app.middleware("http")``, an instrumentation library's), or its ``__call__``, its stack or
its error middleware were patched, the request goes through the app itself, exactly as under
uvicorn: ``app(scope, receive, send)``, its ``__call__``, its ``middleware_stack`` built by its
own ``build_middleware_stack``. Only the router at the bottom of that stack is replaced, by a
:class:`NativeRouter`: for the request the engine matched to a native route it runs the route's
plan (:func:`~fastrapi_compat.execute.layers.run_route`); for anything else, the app's router.

The match travels in a context variable (:data:`MATCH`), never in the scope the middleware see,
and is used once, and only if the scope reaching the router still has the method, path and
``root_path`` the engine matched: a middleware that rewrites the path gets the router.

:func:`install` puts the :class:`NativeRouter` in the app's stack: the stack is the app's own
(built as Starlette would on the first request when it is not yet), walked from the outside
through each layer's ``app`` attribute (the ASGI convention; FastAPI walks it too) down to the
innermost layer, FastAPI's or Starlette's own, whose ``app`` is the router.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from starlette.middleware.exceptions import ExceptionMiddleware

from fastrapi_compat.execute.call import NativeCall, prepare_scope
from fastrapi_compat.execute.call_next import DirectCallNext, serve
from fastrapi_compat.execute.layers import run_route
from fastrapi_compat.execute.match import MATCH, Matched
from fastrapi_compat.plan import fixed_layers, internals

try:  # FastAPI 0.118+: the innermost layer, inside ExceptionMiddleware
    from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware

    _INNERMOST: tuple[type, ...] = (ExceptionMiddleware, AsyncExitStackMiddleware)
except ImportError:  # pragma: no cover - older FastAPI
    _INNERMOST = (ExceptionMiddleware,)


class NativeRouter:
    """The app's router at the bottom of its own stack, with the engine's native routes: the
    request :data:`MATCH` names is served by its plan, anything else by ``router``."""

    __slots__ = ("router",)

    def __init__(self, router: Any) -> None:
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        matched = MATCH.get()
        if matched is None or not matched.claims(scope):
            await self.router(scope, receive, send)
            return
        await self.serve(matched, scope, receive, send)

    async def serve(self, matched: Matched, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The request ``matched`` claims, by its plan (or the router, when FastAPI's telemetry
        needs what the plan cannot give)."""
        plan = matched.plan
        telemetry = "fastapi.telemetry" in scope  # FastAPI's own, set by its __call__
        if telemetry:
            if plan.telemetry_path is None or internals.ROUTE_SELECTED is None:
                matched.declined = "FastAPI's native telemetry is active and this route has no telemetry path"
                await self.router(scope, receive, send)
                return
        prepare_scope(plan, scope, matched.params, under=True)
        if telemetry:  # what the router tells it, then FastAPI's handler with its spans
            internals.ROUTE_SELECTED(scope=scope, path=plan.telemetry_path)
        protocol = matched.protocol
        matched.served = True
        if protocol is not None:
            protocol.served_natively()
        await run_route(NativeCall(plan, scope, receive, send, None, None), flat=not telemetry)


class FixedLayers:
    """FastAPI's innermost layers, ``ExceptionMiddleware`` (``layer``) around
    ``AsyncExitStackMiddleware`` around the :class:`NativeRouter` (``native``), in one step for a
    native request when nothing of them was modified (:func:`fixed_layers.flattenable`): the
    exception handlers put in the scope, the exit stack entered under the layer's own name, the
    route run with a ``send`` that notes the response's start, then what the exception wrapper
    does with what the route raised (the status or exception handler with a ``Request`` of its
    own, "response already started", the traceback cleared once answered). Other requests, and
    those FastAPI's telemetry follows, go through the layers themselves."""

    __slots__ = ("layer", "native")

    def __init__(self, layer: Any, native: NativeRouter) -> None:
        self.layer = layer
        self.native = native

    @property
    def app(self) -> Any:
        """The next layer down (the stack is walked through ``app``)."""
        return self.layer.app

    @app.setter
    def app(self, app: Any) -> None:
        self.layer.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        layer = self.layer
        inner = layer.app
        matched = MATCH.get()
        if matched is None or inner.app is not self.native or "fastapi.telemetry" in scope or not matched.claims(scope):
            await layer(scope, receive, send)
            return
        status_handlers = layer._status_handlers
        exception_handlers = layer._exception_handlers
        scope["starlette.exception_handlers"] = (exception_handlers, status_handlers)
        started = False

        async def sender(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with AsyncExitStack() as stack:
                scope[inner.context_name] = stack
                await self.native.serve(matched, scope, receive, sender)
        except Exception as exc:
            handler = None
            if isinstance(exc, fixed_layers.HTTPException):
                handler = status_handlers.get(exc.status_code)
            if handler is None:
                handler = fixed_layers.lookup_handler(exception_handlers, exc)
            if handler is None:
                raise exc
            if started:
                raise RuntimeError("Caught handled exception, but response already started.") from exc
            conn = fixed_layers.request(scope, receive, send)
            if fixed_layers.is_async_callable(handler):
                response = await handler(conn, exc)
            else:
                response = await fixed_layers.run_in_threadpool(handler, conn, exc)
            if response is not None:
                await response(scope, receive, sender)
            exc.__traceback__ = None


class UnderStack:
    """The app for one matched request, as an ASGI app a caller runs itself (the async test
    transports)."""

    __slots__ = ("app", "matched")

    def __init__(self, app: Any, matched: Matched) -> None:
        self.app = app
        self.matched = matched

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.matched.bind(scope)
        token = MATCH.set(self.matched)
        try:
            await self.app(scope, receive, send)
        finally:
            MATCH.reset(token)
            self.matched.finish()


def install(app: Any) -> str:
    """Puts a :class:`NativeRouter` at the bottom of ``app``'s middleware stack (building the
    stack first, as Starlette's ``__call__`` would, when the app has not yet), and a
    :class:`~fastrapi_compat.execute.call_next.DirectCallNext` in place of each
    ``BaseHTTPMiddleware`` whose ``call_next`` native requests may take directly, and a
    :class:`FixedLayers` in front of FastAPI's unmodified ``ExceptionMiddleware``; "" when it is
    done, else why it cannot be."""
    router = app.router
    stack = app.middleware_stack
    if stack is None:
        stack = app.middleware_stack = app.build_middleware_stack()
    seen: set[int] = set()
    layer = stack
    outer: Any = None  # the layer around ``layer``
    outer2: Any = None  # the layer around that one
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        inner = getattr(layer, "app", None)
        if inner is router or (type(inner) is NativeRouter and inner.router is router):
            if type(layer) not in _INNERMOST:
                return f"{type(layer).__qualname__} wraps the router"
            if type(inner) is not NativeRouter:
                inner = layer.app = NativeRouter(router)
            if outer2 is not None and type(outer2) is not FixedLayers and fixed_layers.flattenable(outer, layer):
                outer2.app = FixedLayers(outer, inner)
            return ""
        if inner is None:
            return f"{type(layer).__module__}.{type(layer).__qualname__} has no .app leading to the router"
        direct = internals.direct_call_next(inner)
        if direct is not None:
            inner = layer.app = DirectCallNext(inner, direct(serve))
        outer2, outer = outer, layer
        layer = inner
    return "the app's middleware stack does not lead to its router"
