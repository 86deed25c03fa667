"""The one place that reads FastAPI and Starlette internals.

Everything version-dependent about how an app's routes are laid out lives here: in current
FastAPI, included routers stay in the table as ``_IncludedRouter`` entries whose effective routes
are walked with ``fastapi.routing.iter_route_contexts``; older releases copied the routes into
the app's own table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import fastapi.exceptions
import fastapi.routing
from starlette.routing import BaseRoute

_iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
_IncludedRouter: type | None = getattr(fastapi.routing, "_IncludedRouter", None)


def top_level_routes(app: Any) -> Sequence[BaseRoute]:
    """The app router's own table, in declaration order (included routers as one entry)."""
    router = getattr(app, "router", None)
    return list(getattr(router, "routes", []) or [])


def is_included_router(route: Any) -> bool:
    return _IncludedRouter is not None and isinstance(route, _IncludedRouter)


def effective_routes(route: Any) -> Iterator[Any]:
    """The routes an included-router entry stands for (route-like objects with ``path``,
    ``methods``, ``endpoint``...), or the route itself."""
    if is_included_router(route) and _iter_route_contexts is not None:
        yield from _iter_route_contexts([route])
    else:
        yield route


def included_router_prefix(route: Any) -> str:
    """The path prefix under which an included router's routes live ("" when unknown)."""
    context = getattr(route, "include_context", None)
    prefix = getattr(context, "prefix", None)
    return prefix if isinstance(prefix, str) else ""


def literal_prefix(path_format: str) -> str:
    """The literal start of a route path, up to its first ``{parameter}``."""
    return path_format.split("{", 1)[0]


# --- the native tier's view of FastAPI's request handling -------------------------------------

from starlette._utils import is_async_callable as is_async_callable  # noqa: E402

FastAPIError: type[Exception] = getattr(fastapi.exceptions, "FastAPIError", RuntimeError)
_request_response = getattr(fastapi.routing, "request_response", None)


def _inner_code(factory: Any) -> Any:
    async def probe(request: Any) -> Any:  # pragma: no cover - never called
        return None

    try:
        return factory(probe).__code__
    except Exception:  # pragma: no cover
        return None


# FastAPI's own ``request_response`` (0.118+: the handler runs between the request and function
# exit stacks). Older releases use Starlette's, without those stacks: not served natively.
_REQUEST_RESPONSE_CODE = _inner_code(_request_response) if _request_response is not None else None


def route_like(entry: Any) -> Any:
    """The object FastAPI handles a route with: the effective context of a route reached through
    an included router (its own dependant, path and handler), else the route itself."""
    return getattr(entry, "_route_context", None) or getattr(entry, "route", entry)


def original_route(entry: Any) -> Any:
    return getattr(entry, "original_route", None) or getattr(entry, "route", entry)


def route_app(route_like: Any) -> Any:
    return getattr(route_like, "app", None)


def request_handler(route_like: Any) -> tuple[Any, str]:
    """The request handler FastAPI built for a route (``handler(request) -> Response``), taken
    from the ``request_response`` app wrapped around it, or ``(None, reason)``."""
    if _REQUEST_RESPONSE_CODE is None:
        return None, f"fastapi {fastapi.__version__} handles requests with Starlette's request_response (native tier needs fastapi >= 0.118)"
    app = route_app(route_like)
    code = getattr(app, "__code__", None)
    if code is not _REQUEST_RESPONSE_CODE:
        name = type(app).__name__ if code is None else getattr(app, "__qualname__", "?")
        return None, f"route app is {name}, not FastAPI's request_response (e.g. a per-route body limit)"
    cells = dict(zip(code.co_freevars, app.__closure__ or ()))
    cell = cells.get("f")
    handler = cell.cell_contents if cell is not None else None
    if handler is None or not is_async_callable(handler):
        return None, "the route's request handler is not a coroutine function"
    return handler, ""


def telemetry_probe(app: Any) -> Any:
    """A callable telling whether FastAPI's native telemetry wraps requests right now (it can
    turn on whenever an OpenTelemetry provider is configured), or None on releases without it."""
    telemetry = getattr(app, "_native_telemetry", None)
    enabled = getattr(telemetry, "enabled", None)
    return enabled if callable(enabled) else None


def routes_version(router: Any) -> Any:
    """A cheap token that changes when a router's own route list changes."""
    routes = getattr(router, "routes", None)
    version = getattr(router, "_get_routes_version", None)
    return (id(routes), len(routes or ()), version() if callable(version) else None)


def included_routers(entries: Sequence[Any]) -> list[Any]:
    """The original routers of included-router entries, nested ones too."""
    found: list[Any] = []
    stack = [e for e in entries if is_included_router(e)]
    while stack:
        entry = stack.pop()
        router = getattr(entry, "original_router", None)
        if router is None:
            continue
        found.append(router)
        stack.extend(r for r in getattr(router, "routes", []) if is_included_router(r))
    return found


def form_limits_configured(app: Any) -> bool:
    if getattr(app.router, "form_limits", None):
        return True
    for entry in top_level_routes(app):
        context = getattr(entry, "include_context", None)
        if getattr(context, "form_limits", None):
            return True
    return False
