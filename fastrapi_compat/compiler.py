"""Route table -> what the engine can serve natively, and why not when it cannot.

``compile_app(app)`` walks the app's effective routes in Starlette's matching order and gives,
per route, its tier (``native``/``asgi``) with the fallback reason, per middleware whether it
runs natively, and the table the Rust route mirror is built from. The native executor (plans run
without Starlette's request/response machinery) is not built yet, so every route is served by the
ASGI tier for now; the reasons say what each route would need.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import fastapi.routing
from starlette.routing import Mount, Route, WebSocketRoute

from fastrapi_compat import internals

NOT_YET = "native executor not implemented yet"

#: (pattern, literal prefix, methods or None, static path or None, plan id or None)
MirrorSpec = tuple[str, str, list[str] | None, str | None, int | None]


@dataclasses.dataclass(frozen=True)
class RouteReport:
    path: str
    methods: list[str] | None
    tier: str
    reason: str


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

    def as_json(self) -> dict[str, Any]:
        return {
            "routes": [dataclasses.asdict(route) for route in self.routes],
            "middleware": [{"name": m.name, "native": m.native, "reason": m.reason} for m in self.middleware],
        }


def _overrides(route: Any, method: str, base: type) -> bool:
    return getattr(type(route), method, None) is not getattr(base, method, None)


def route_reason(route: Any) -> str:
    """Why ``route`` is not served natively."""
    original = getattr(route, "original_route", route)
    if isinstance(original, fastapi.routing.APIRoute):
        if _overrides(original, "get_route_handler", fastapi.routing.APIRoute):
            return f"route class {type(original).__name__} overrides get_route_handler"
        return NOT_YET
    if isinstance(original, (fastapi.routing.APIWebSocketRoute, WebSocketRoute)):
        return "websocket route (served by the ASGI tier)"
    if isinstance(original, Mount):
        return f"mounted app {type(original.app).__name__}"
    if isinstance(original, Route):
        return "Starlette route (not a FastAPI APIRoute)"
    return f"route type {type(original).__name__}"


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


def compile_app(app: Any) -> Compiled:
    routes: list[RouteReport] = []
    mirror: list[MirrorSpec] = []
    for entry in internals.top_level_routes(app):
        if internals.is_included_router(entry):
            # Included routers match through their own logic (priorities, frontends): mirror the
            # whole prefix as one ASGI-tier entry, which is pessimistic but never wrong.
            prefix = internals.included_router_prefix(entry)
            mirror.append((f"^{re.escape(prefix)}.*$", prefix, None, None, None))
        for route in internals.effective_routes(entry):
            path = getattr(route, "path", None) or getattr(route, "path_format", "") or ""
            routes.append(RouteReport(path=path, methods=_methods(route), tier="asgi", reason=route_reason(route)))
            if not internals.is_included_router(entry):
                mirror.append(_mirror_spec(route, None))
    middleware = [
        MiddlewareReport(
            name=getattr(m.cls, "__name__", repr(m.cls)),
            native=False,
            reason="runs in Python; the app is served by the ASGI tier",
        )
        for m in getattr(app, "user_middleware", []) or []
    ]
    return Compiled(routes=routes, middleware=middleware, mirror=mirror)
