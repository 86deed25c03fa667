"""Route table -> what the engine can serve natively, and why not when it cannot.

``compile_app(app)`` walks the app's effective routes in Starlette's matching order and gives,
per route, its tier (``native``/``asgi``) with the fallback reason, per middleware whether it
runs natively, the table the Rust route mirror is built from, and a :class:`~fastrapi_compat.plan.plans.Plan`
for each native route (run by :mod:`fastrapi_compat.execute`).

A route is native when everything between the server and FastAPI's own request handler for it is
known: the app is a ``fastapi.FastAPI`` without middleware the engine does not run natively, no
``root_path`` or app-wide body limit, and the route is an ``APIRoute`` whose class does not
customise matching or handling and whose ``app`` is FastAPI's ``request_response`` around its
handler. Anything else is served by the ASGI tier, with the reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import fastapi.applications
import fastapi.params
import fastapi.routing
from starlette.routing import Mount, Route, WebSocketRoute

from fastrapi_compat._native import MiddlewareStack
from fastrapi_compat.plan import internals
from fastrapi_compat.plan import middleware as native_middleware
from fastrapi_compat.plan.plans import AppRuntime, Misses, Plan

#: (pattern, literal prefix, methods or None, static path or None, plan id or None)
MirrorSpec = tuple[str, str, list[str] | None, str | None, int | None]


@dataclasses.dataclass(frozen=True)
class RouteReport:
    path: str
    methods: list[str] | None
    tier: str
    reason: str
    #: For a native route: what it runs under ("" when the engine runs it directly).
    under: str = ""


@dataclasses.dataclass(frozen=True)
class MiddlewareReport:
    name: str
    native: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class Compiled:
    routes: list[RouteReport]
    middleware: list[MiddlewareReport]
    mirror: list[MirrorSpec]
    plans: list[Plan]
    #: Per mirror entry, why it is served by the ASGI tier ("" for native entries).
    mirror_reasons: list[str] = dataclasses.field(default_factory=list)
    #: Per mirror entry, its path template (``/items/{item_id}``): the metrics' route label.
    templates: list[str] = dataclasses.field(default_factory=list)
    #: The websocket routes as ``(path regex, path template)``, for the metrics too.
    websockets: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: Why no route of the app is native ("" when some can be).
    app_reason: str = ""
    #: The app's middleware as the engine runs them (None: none run in Rust).
    stack: MiddlewareStack | None = None
    #: Why native routes run under the app's own middleware stack ("" when directly).
    under: str = ""
    #: The app's middleware when native routes run under its Python middleware and some of
    #: Starlette's standard ones run in Rust inside them (see
    #: :mod:`fastrapi_compat.execute.rust_layers`); None otherwise.
    inner_layers: list[native_middleware.Layer] | None = None
    #: The plans of the requests no route takes, when the mirror answers them (else None,
    #: and ``misses_reason`` says why).
    misses: Misses | None = None
    misses_reason: str = ""
    #: The app router's ``redirect_slashes``.
    redirect_slashes: bool = True

    @property
    def under_summary(self) -> str:
        """``under``, naming the middleware that run in Rust inside the Python ones."""
        if self.inner_layers is None:
            return self.under
        in_rust = [layer.name for layer in self.inner_layers if layer.spec is not None]
        return f"{self.under}; in Rust inside them: {', '.join(in_rust)}" if in_rust else self.under

    def as_json(self) -> dict[str, Any]:
        return {
            "routes": [dataclasses.asdict(route) for route in self.routes],
            "middleware": [{"name": m.name, "native": m.native, "reason": m.reason} for m in self.middleware],
            "misses": {"tier": "asgi" if self.misses is None else "native", "reason": self.misses_reason},
        }


def _overrides(route: Any, method: str, base: type) -> bool:
    return getattr(type(route), method, None) is not getattr(base, method, None)


def app_reason(app: Any, layers: list[native_middleware.Layer]) -> str:
    """Why no route of ``app`` can be native ("" when routes may be); ``layers`` is
    ``middleware.layers(app)``."""
    if not isinstance(app, fastapi.applications.FastAPI):  # not fastapi.FastAPI: instrumentation swaps it
        return f"not a FastAPI app ({type(app).__module__}.{type(app).__qualname__})"
    patched = internals.bypassed_patches("routing")
    if patched:
        return f"patched, so served by the app's own stack: {', '.join(patched)}"
    if getattr(app, "root_path", ""):
        return "app.root_path is set"
    return ""


def under_reason(app: Any, layers: list[native_middleware.Layer]) -> str:
    """Why ``app``'s native routes run under its own middleware stack, called as uvicorn
    calls it (see :mod:`fastrapi_compat.execute.under`), "" when the engine may run them
    directly (FastAPI's own layers reproduced, the app's middleware in Rust)."""
    overridden = [m for m in ("__call__", "build_middleware_stack") if _overrides(app, m, fastapi.applications.FastAPI)]
    if overridden:
        return f"under the app's stack: {type(app).__name__} overrides {', '.join(overridden)}"
    patched = internals.bypassed_patches("outer")
    if patched:
        return f"under the app's stack, patched: {', '.join(patched)}"
    replaced = getattr(app, "__dict__", {}).get("build_middleware_stack")
    if replaced is not None:  # e.g. OpenTelemetry's instrument_app
        where = internals.code_origin(replaced)
        return "under the app's stack: build_middleware_stack replaced on the app" + (f" ({where})" if where else "")
    in_python = _python_middleware(layers)
    if in_python:
        return in_python
    if getattr(app, "max_body_size", None) is not None:
        return "under the app's stack: app-wide max_body_size"
    return ""


def _python_middleware(layers: list[native_middleware.Layer]) -> str:
    """``under N Python middleware: ...`` when some of ``layers`` run in Python, else ""."""
    in_python = [layer.name for layer in layers if layer.spec is None]
    return f"under {len(in_python)} Python middleware: {', '.join(in_python)}" if in_python else ""


def route_reason(leaf: internals.Leaf, form_limits: bool) -> tuple[str, str, Any]:
    """``(reason, kind, handler)`` for one route: why it is not native ("" when it is), and
    when it is, which request handling it gets (``fastapi`` or ``starlette``: the handler inside
    the route's ``request_response``; ``route_app``: the route's own ``app``, whatever wraps the
    handler there, e.g. a per-route body limit or a route class's own ``get_route_handler``)."""
    original = leaf.route
    if leaf.reason:
        return leaf.reason, "", None
    if isinstance(original, fastapi.routing.APIRoute):
        for method in ("matches", "handle"):  # get_route_handler's product is in route.app, which runs
            if _overrides(original, method, fastapi.routing.APIRoute):
                return f"route class {type(original).__name__} overrides {method}", "", None
        like = leaf.like
        if not getattr(like, "methods", None):
            return "route without methods", "", None
        body_field = getattr(like, "body_field", None)
        if form_limits and body_field is not None and isinstance(body_field.field_info, fastapi.params.Form):
            return "form body with router form limits", "", None
        handler, flavour, reason = internals.request_handler(like)
        if reason and callable(internals.route_app(like)):
            return "", "route_app", internals.route_app(like)
        return reason, flavour, handler
    if isinstance(original, (fastapi.routing.APIWebSocketRoute, WebSocketRoute)):
        return "websocket route (served by the ASGI tier)", "", None
    if isinstance(original, Mount):
        return f"mounted app {type(original.app).__name__}", "", None
    if type(original) is Route:
        if leaf.included is not None:
            return "Starlette route inside an included router", "", None
        if not original.methods:
            return "Starlette route without methods", "", None
        handler, reason = internals.starlette_handler(original)
        if reason and callable(original.app):
            return "", "route_app", original.app
        return reason, "starlette", handler
    if isinstance(original, Route):
        return f"route class {type(original).__name__}", "", None
    return f"route type {type(original).__name__}", "", None


def _methods(route: Any) -> list[str] | None:
    methods = getattr(route, "methods", None)
    return sorted(methods) if methods else None


def _mirror_spec(route: Any, plan: int | None) -> MirrorSpec:
    regex = getattr(route, "path_regex", None)
    path_format = getattr(route, "path_format", None) or getattr(route, "path", "") or ""
    pattern = regex.pattern if isinstance(regex, re.Pattern) else "^.*$"
    convertors = getattr(route, "param_convertors", None) or {}
    is_static = not convertors and not isinstance(route, Mount) and isinstance(regex, re.Pattern)
    methods = None if isinstance(route, Mount) else _methods(route)
    return (pattern, internals.literal_prefix(path_format), methods, path_format if is_static else None, plan)


def _template(route: Any) -> str:
    """The route's path template as Starlette formats it (``/items/{item_id}``)."""
    return str(getattr(route, "path_format", None) or getattr(route, "path", "") or "")


def _pattern(route: Any) -> str:
    regex = getattr(route, "path_regex", None)
    return regex.pattern if isinstance(regex, re.Pattern) else "^.*$"


def _is_websocket(entry: Any) -> bool:
    return isinstance(internals.original_route(entry), (fastapi.routing.APIWebSocketRoute, WebSocketRoute))


#: ``(app, layers) -> (why native routes cannot run under the app's built stack, whether the
#: standard middleware among ``layers`` run in Rust inside the Python ones)``: what the engine
#: will make of the stack (:func:`fastrapi_compat.execute.under.fit`).
StackFit = Callable[[Any, "list[native_middleware.Layer] | None"], tuple[str, bool]]


def compile_app(app: Any, fit: StackFit | None = None) -> Compiled:
    """Compiles ``app``'s current route table (see the module docstring). With ``fit``, and
    the app's middleware stack already built (by its lifespan, or by ``explain``), what the
    engine will make of that stack when native routes run under it is known now: a stack that
    cannot take the native router leaves the app to the ASGI tier, and a stack Starlette did
    not build for its ``user_middleware`` keeps the standard middleware in Python."""
    layers = native_middleware.layers(app)
    reason_for_app = app_reason(app, layers)
    under = "" if reason_for_app else under_reason(app, layers)
    # Under Python middleware only (the stack Starlette builds): the others run in Rust inside
    inner_layers = layers if under and under == _python_middleware(layers) else None
    unplaced = False  # they would, but the built stack is not laid out for them: in Python
    if under and fit is not None and getattr(app, "middleware_stack", None) is not None:
        problem, placed = fit(app, inner_layers)
        if problem:
            reason_for_app = f"native routes run {under}, which cannot take the native router: {problem}"
            under = ""
            inner_layers = None
        elif inner_layers is not None and not placed:
            unplaced = True
            inner_layers = None
    stack = None
    if not reason_for_app and not under and layers:
        try:
            stack = native_middleware.stack(layers)
        except ValueError as exc:  # each layer was checked alone; keep the app correct anyway
            reason_for_app = f"middleware stack: {exc}"
    runtime = AppRuntime(app) if not reason_for_app else None
    if runtime is not None and stack is not None:
        runtime.native_sessions = any(layer.spec is not None and layer.spec[0] == "session" for layer in layers)
    form_limits = bool(runtime) and internals.form_limits_configured(app)
    routes: list[RouteReport] = []
    mirror: list[MirrorSpec] = []
    plans: list[Plan] = []
    mirror_reasons: list[str] = []
    templates: list[str] = []
    websockets: list[tuple[str, str]] = []
    after_included = False  # the router's scan passed an included router (it makes scope["fastapi"])
    for top in internals.top_level_routes(app):
        for leaf in internals.leaves(top):
            entry = leaf.report
            path = getattr(entry, "path", None) or getattr(entry, "path_format", "") or ""
            reason, kind, handler = route_reason(leaf, form_limits)
            reason = reason_for_app or reason
            plan_id: int | None = None
            if not reason and runtime is not None:
                plan_id = len(plans)
                plans.append(
                    Plan(
                        runtime,
                        leaf,
                        kind,
                        handler,
                        plan_id,
                        api_route=isinstance(leaf.route, fastapi.routing.APIRoute),
                        after_included=after_included,
                    )
                )
            routes.append(
                RouteReport(
                    path=path,
                    methods=_methods(entry),
                    tier="asgi" if reason else "native",
                    reason=reason,
                    under="" if reason else under,
                )
            )
            if not _is_websocket(entry):  # websocket routes never match an HTTP request
                mirror.append(_mirror_spec(entry, plan_id))
                mirror_reasons.append(reason)
                templates.append(_template(entry))
            else:
                websockets.append((_pattern(entry), _template(entry)))
        after_included = after_included or internals.is_included_router(top)
    misses: Misses | None = None
    if runtime is None:
        why_not = reason_for_app
    elif form_limits:
        why_not = "router form limits"
    else:
        why_not = internals.misses_reason(app)
        if not why_not:
            misses = Misses(runtime, plans, included=after_included)
    middleware = [
        MiddlewareReport(
            name=layer.name,
            native=layer.spec is not None and (stack is not None or inner_layers is not None),
            reason=_layer_reason(layer, reason_for_app, under, layers if inner_layers is not None else None, unplaced),
        )
        for layer in layers
    ]
    return Compiled(
        routes=routes,
        middleware=middleware,
        mirror=mirror,
        plans=plans,
        mirror_reasons=mirror_reasons,
        templates=templates,
        websockets=websockets,
        app_reason=reason_for_app,
        stack=stack,
        under=under,
        inner_layers=inner_layers,
        misses=misses,
        misses_reason=why_not,
        redirect_slashes=bool(getattr(getattr(app, "router", None), "redirect_slashes", True)),
    )


def _layer_reason(
    layer: native_middleware.Layer,
    reason_for_app: str,
    under: str,
    inner_layers: list[native_middleware.Layer] | None = None,
    unplaced: bool = False,
) -> str:
    if reason_for_app:
        in_python = layer.reason if layer.reason != native_middleware.AROUND_NATIVE else "runs in Python"
        return in_python or "the app is served by the ASGI tier"
    if layer.spec is None:
        return layer.reason
    if inner_layers is not None:  # in Rust, in the app's stack next to its Python middleware
        index = next(i for i, entry in enumerate(inner_layers) if entry is layer)
        outside = [entry.name for entry in inner_layers[:index] if entry.spec is None]
        if outside:
            return f"runs in Rust, inside {outside[-1]}"
        inside = [entry.name for entry in inner_layers[index:] if entry.spec is None]
        return f"runs in Rust, around {inside[0]}"
    if unplaced:
        return f"runs in Python: native routes run {under}, in a stack not built as Starlette builds user_middleware"
    if under:
        return f"runs in Python: native routes run {under}"
    return ""
