"""Plans: what the compiler made of one native route, and what every native request of the
app shares (:class:`AppRuntime`: the exception tables the app's middleware stack would build).

A :class:`Plan` is built once per route when the app is compiled; per request the executor
(:mod:`fastrapi_compat.execute`) runs it. A route whose whole ``Dependant`` the compiler
understood also gets a :class:`~fastrapi_compat.plan.flat.FlatPlan`.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.responses import RedirectResponse

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
        return lookup_handler(self.exception_handlers, self.status_handlers, exc)


def lookup_handler(by_class: dict[Any, Any], by_status: dict[int, Any], exc: Exception) -> Any:
    """Starlette's exception wrapper's choice: a status handler for an ``HTTPException``, else
    the handler of the first class of ``exc``'s MRO that has one."""
    handler = None
    if isinstance(exc, HTTPException):
        handler = by_status.get(exc.status_code)
    if handler is None:
        for cls in type(exc).__mro__:
            if cls in by_class:
                return by_class[cls]
    return handler


class Plan:
    """One native route: how its request is handled, and the scope keys the router (and, for
    a route reached through included routers, FastAPI's include handling) would have set.

    ``kind`` is ``fastapi`` (FastAPI's ``request_response``, 0.118+: the route's handler between
    its exit stacks, or a :class:`FlatPlan`), ``starlette`` (Starlette's ``request_response``:
    a Starlette ``Route``'s function, or an ``APIRoute``'s handler on older FastAPI) or
    ``route_app`` (the route's own ``app``, an ASGI app: what wraps the handler there runs)."""

    __slots__ = (
        "convertors",
        "endpoint",
        "matched",
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

    def __init__(
        self,
        runtime: AppRuntime,
        leaf: Any,
        kind: str,
        handler: Any,
        index: int,
        *,
        api_route: bool,
        after_included: bool = False,
    ) -> None:
        self.runtime = runtime
        self.matched = True  # the router matched a route (it sets endpoint, path_params, route)
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
        if self.fastapi_scope is None and after_included and internals.SCOPE_KEY is not None:
            self.fastapi_scope = {}  # the router's scan passed an included router: it made scope["fastapi"]
        #: The route template the router reports to FastAPI's telemetry when it selects this route.
        self.telemetry_path = internals.telemetry_path(leaf)
        helpers = internals.FLAT
        flat = (
            api_route
            and helpers is not None
            and kind == helpers.handler_kind  # the request_response flavour it replicates
            and not internals.own_handler(handler)
            and not flat_reason(leaf.like)
        )
        self.flat = FlatPlan(leaf.like) if flat else None

    @classmethod
    def miss(
        cls, runtime: AppRuntime, handler: Any, index: int, route: Plan | None = None, *, included: bool = False
    ) -> Plan:
        """The plan of a request no route takes, answered by the router: ``handler(request)``
        raises or returns what it answers; ``route``: the route whose ``handle`` answers (405),
        whose scope keys the router sets first."""
        plan = cls.__new__(cls)
        plan.runtime = runtime
        plan.kind = "starlette"  # no request_response around it: the router answers
        plan.handler = handler
        plan.index = index
        plan.flat = None
        plan.matched = route is not None
        plan.route = route.route if route is not None else None
        plan.route_like = route.route_like if route is not None else None
        plan.route_app = route.route_app if route is not None else None
        plan.endpoint = route.endpoint if route is not None else None
        plan.convertors = route.convertors if route is not None else {}
        plan.fastapi_scope = route.fastapi_scope if route is not None else None
        if included and plan.fastapi_scope is None and internals.SCOPE_KEY is not None:
            plan.fastapi_scope = {}  # the router's whole scan passed an included router
        plan.telemetry_path = None  # FastAPI's telemetry: the router reports the miss itself
        return plan

    def path_params(self, raw: dict[str, str]) -> dict[str, Any]:
        if not raw:
            return {}
        convertors = self.convertors
        return {name: convertors[name].convert(value) for name, value in raw.items()}


class Misses:
    """The plans of the requests no route takes (the mirror says which, see
    :func:`fastrapi_compat.plan.internals.misses_reason`): the router's 404 (``not_found``, as
    Starlette's raises it inside an app), its redirect to the path with the trailing slash
    toggled, and per native route its ``handle``'s 405 with the route's methods in ``Allow``."""

    def __init__(self, runtime: AppRuntime, plans: list[Plan], *, included: bool) -> None:
        self.not_found = Plan.miss(runtime, _not_found, -1, included=included)
        self.redirect = Plan.miss(runtime, _redirect, -1, included=included)
        self._plans = plans
        self._included = included
        self._method_not_allowed: dict[int, Plan] = {}

    def method_not_allowed(self, index: int) -> Plan | None:
        plan = self._method_not_allowed.get(index)
        if plan is None and 0 <= index < len(self._plans):
            route = self._plans[index]
            methods = getattr(route.route_like, "methods", None) or ()

            async def not_allowed(request: Any) -> Any:
                raise HTTPException(status_code=405, headers={"Allow": ", ".join(methods)})

            plan = Plan.miss(route.runtime, not_allowed, index, route, included=self._included)
            self._method_not_allowed[index] = plan
        return plan


async def _not_found(request: Any) -> Any:
    """``Router.not_found`` inside an app (``"app"`` is in the scope)."""
    raise HTTPException(status_code=404)


async def _redirect(request: Any) -> Any:
    """``Router.app``'s ``redirect_slashes`` answer (a route matches the toggled path)."""
    scope = request.scope
    redirect_scope = dict(scope)
    if internals.get_route_path(scope).endswith("/"):
        redirect_scope["path"] = redirect_scope["path"].rstrip("/")
    else:
        redirect_scope["path"] = redirect_scope["path"] + "/"
    return RedirectResponse(url=str(URL(scope=redirect_scope)))
