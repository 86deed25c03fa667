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

from typing import Any

from starlette.middleware.exceptions import ExceptionMiddleware

from fastrapi_compat.execute.call import NativeCall, prepare_scope
from fastrapi_compat.execute.call_next import DirectCallNext, serve
from fastrapi_compat.execute.layers import run_route
from fastrapi_compat.execute.match import MATCH, Matched
from fastrapi_compat.execute.rust_layers import install as install_rust_layers
from fastrapi_compat.execute.rust_layers import placeable
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.middleware import Layer

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


def _walk(stack: Any, router: Any) -> tuple[list[Any], str]:
    """The layers of ``stack`` from the outside in, down to the one whose ``app`` is ``router``
    (or a :class:`NativeRouter` over it), and "" when that layer is FastAPI's or Starlette's
    innermost; else why a :class:`NativeRouter` cannot go at the bottom of ``stack``."""
    chain: list[Any] = []
    seen: set[int] = set()
    layer = stack
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        chain.append(layer)
        inner = getattr(layer, "app", None)
        if inner is router or (type(inner) is NativeRouter and inner.router is router):
            return chain, "" if type(layer) in _INNERMOST else f"{type(layer).__qualname__} wraps the router"
        if inner is None:
            return chain, f"{type(layer).__module__}.{type(layer).__qualname__} has no .app leading to the router"
        layer = inner
    return chain, "the app's middleware stack does not lead to its router"


def stack_reason(stack: Any, router: Any) -> str:
    """Why a :class:`NativeRouter` cannot go at the bottom of ``stack`` ("" when it can):
    the walk :func:`install` makes, changing nothing."""
    return _walk(stack, router)[1]


def fit(app: Any, layers: list[Layer] | None) -> tuple[str, bool]:
    """What :func:`install` will make of ``app``'s built stack: why native routes cannot run
    under it ("" when they can), and whether Starlette's standard middleware among ``layers``
    run in Rust inside the Python ones (see :func:`fastrapi_compat.plan.compiler.compile_app`)."""
    reason = stack_reason(app.middleware_stack, app.router)
    return reason, not reason and layers is not None and placeable(app, layers)


def install(app: Any, layers: list[Layer] | None = None) -> str:
    """Puts a :class:`NativeRouter` at the bottom of ``app``'s middleware stack (building the
    stack first, as Starlette's ``__call__`` would, when the app has not yet), and a
    :class:`~fastrapi_compat.execute.call_next.DirectCallNext` in place of each
    ``BaseHTTPMiddleware`` whose ``call_next`` native requests may take directly; "" when it is
    done, else why it cannot be (and then nothing changes). ``layers``: the app's middleware as
    compiled, when Starlette's standard ones among them run in Rust inside its Python ones
    (:func:`fastrapi_compat.execute.rust_layers.install`)."""
    router = app.router
    stack = app.middleware_stack
    if stack is None:
        stack = app.middleware_stack = app.build_middleware_stack()
    reason = stack_reason(stack, router)
    if reason:
        return reason
    if layers is not None:
        install_rust_layers(app, layers)
    chain, _ = _walk(app.middleware_stack, router)
    for layer in chain[:-1]:
        direct = internals.direct_call_next(layer.app)
        if direct is not None:
            layer.app = DirectCallNext(layer.app, direct(serve))
    if type(chain[-1].app) is not NativeRouter:
        chain[-1].app = NativeRouter(router)
    return ""
