"""Plans: what the compiler made of one native route, and what every native request of the
app shares (:class:`AppRuntime`: the exception tables the app's middleware stack would build).

A :class:`Plan` is built once per route when the app is compiled; per request the executor
(:mod:`fastrapi_compat.execute`) runs it. A route whose whole ``Dependant`` the compiler
understood also gets a :class:`~fastrapi_compat.plan.flat.FlatPlan`.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware

from fastrapi_compat.plan import internals
from fastrapi_compat.plan.flat import FlatPlan, flat_reason

Undefined = internals.Undefined


class AppRuntime:
    """What every native request of one app shares: the exception tables exactly as the app's
    middleware stack would have built them (with Starlette's own classes)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.router = app.router
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in app.exception_handlers.items():  # as FastAPI.build_middleware_stack
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        self.exception_handlers, self.status_handlers = internals.exception_tables(handlers, app.debug)
        self.server_errors = ServerErrorMiddleware(app=None, handler=error_handler, debug=app.debug)  # type: ignore[arg-type]
        #: Set by the compiler when the engine runs the app's ``SessionMiddleware``.
        self.native_sessions = False
        self.telemetry_enabled = internals.telemetry_probe(app)

    def lookup_handler(self, exc: Exception) -> Any:
        """The handler Starlette's exception wrapper would pick for ``exc``, or None."""
        handler = None
        if isinstance(exc, HTTPException):
            handler = self.status_handlers.get(exc.status_code)
        if handler is None:
            for cls in type(exc).__mro__:
                if cls in self.exception_handlers:
                    return self.exception_handlers[cls]
        return handler


class Plan:
    """One native route: how its request is handled, and the scope keys the router (and, for
    a route reached through included routers, FastAPI's include handling) would have set.

    ``kind`` is ``fastapi`` (FastAPI's ``request_response``, 0.118+: the route's handler between
    its exit stacks, or a :class:`FlatPlan`) or ``starlette`` (Starlette's ``request_response``:
    a Starlette ``Route``'s function, or an ``APIRoute``'s handler on older FastAPI)."""

    __slots__ = (
        "convertors",
        "endpoint",
        "fastapi_scope",
        "flat",
        "handler",
        "index",
        "kind",
        "route",
        "route_app",
        "route_like",
        "runtime",
        "telemetry_path",
    )

    def __init__(self, runtime: AppRuntime, leaf: Any, kind: str, handler: Any, index: int, *, api_route: bool) -> None:
        self.runtime = runtime
        self.kind = kind
        # ``scope["route"]``: FastAPI's APIRoute sets it, Starlette's Route does not.
        self.route = leaf.route if api_route else None
        self.route_like = leaf.like
        self.route_app = internals.route_app(leaf.like)  # checked per request: still the same?
        self.handler = handler
        self.endpoint = leaf.like.endpoint
        self.convertors = dict(leaf.like.param_convertors)
        self.index = index
        self.fastapi_scope = internals.included_scope(leaf)
        #: The route template the router reports to FastAPI's telemetry when it selects this route.
        self.telemetry_path = internals.telemetry_path(leaf)
        self.flat = FlatPlan(leaf.like) if kind == "fastapi" and not flat_reason(leaf.like) else None

    def path_params(self, raw: dict[str, str]) -> dict[str, Any]:
        if not raw:
            return {}
        convertors = self.convertors
        return {name: convertors[name].convert(value) for name, value in raw.items()}
