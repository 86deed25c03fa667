"""The one place that reads FastAPI and Starlette internals.

Everything version-dependent about how an app's routes are laid out lives here: in current
FastAPI, included routers stay in the table as ``_IncludedRouter`` entries whose effective routes
are walked with ``fastapi.routing.iter_route_contexts``; older releases copied the routes into
the app's own table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

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
