"""The benchmark's FastAPI application: stock ``fastapi.FastAPI``, served unchanged by
uvicorn, granian and fastrapi-compat.

Endpoints (each one exercises one part of the request path):

- ``GET /plain``        ``async def`` returning a small dict
- ``GET /sync``         ``def`` (runs in FastAPI's thread pool)
- ``GET /items/{id}``   typed path and query parameters (``?q=...&limit=...``)
- ``POST /items``       pydantic body, ``response_model``
- ``GET /deps``         two levels of ``Depends``
- ``GET /deps-def``     ``async def`` with two levels of plain ``def`` dependencies (the
                        common ``get_db``/``get_user`` shape)
- ``GET /big``          a list of 100 dicts, built per request

Route-count scaling: :func:`create_app` puts ``extra_routes`` routes *before* the benchmark
routes (half static, half with a path parameter), so a router that matches in declaration order
pays for every one of them on each ``/plain`` request. ``app`` has 10 extra routes;
``app_10000_routes`` (built lazily on first access, it takes seconds) has 10,000.

Middleware cost: ``app_middleware`` (built lazily too) is ``app`` with Starlette's own
``GZipMiddleware`` (``minimum_size=500``) and, around it, ``CORSMiddleware`` (one allowed
origin, every method and header).

A production-style app: ``app_production`` (lazy) is ``app`` with, outside in, a pure-ASGI
request-id middleware (adds ``x-request-id``), an ``@app.middleware("http")`` timer (adds
``x-process-time``) and ``CORSMiddleware`` as above: the layers a team's app typically has.
``app_instrumented`` (lazy) is ``app_production`` with Sentry, OpenTelemetry and Prometheus,
all in-process (:mod:`bench.apps.instrumented_app`).
"""

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from pydantic import BaseModel

DEFAULT_EXTRA_ROUTES = 10
SCALED_EXTRA_ROUTES = 10_000
SCALED_APP = f"app_{SCALED_EXTRA_ROUTES}_routes"
MIDDLEWARE_APP = "app_middleware"
PRODUCTION_APP = "app_production"
INSTRUMENTED_APP = "app_instrumented"
GZIP_MINIMUM_SIZE = 500
CORS_ORIGIN = "https://example.com"


class ItemIn(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class ItemOut(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


async def get_settings():
    """Second level of the dependency chain."""
    return {"page_size": 25}


async def get_paging(settings: Annotated[dict, Depends(get_settings)], page: int = 1):
    """First level: depends on :func:`get_settings` and reads a query parameter."""
    return {"page": page, "size": settings["page_size"]}


def get_db():
    """A plain ``def`` dependency (FastAPI runs it in the thread pool)."""
    return {"dsn": "sqlite:///bench.db"}


def get_user(db: Annotated[dict, Depends(get_db)], user: str = "anon"):
    """A plain ``def`` dependency on another one, reading a query parameter."""
    return {"name": user, "db": db["dsn"]}


def _add_extra_routes(app: FastAPI, count: int) -> None:
    for index in range(count):
        if index % 2 == 0:

            async def static_route():
                return {"route": "static"}

            app.add_api_route(f"/extra/{index}", static_route, methods=["GET"])
        else:

            async def param_route(item_id: int):
                return {"item_id": item_id}

            app.add_api_route(f"/extra/{index}/{{item_id}}", param_route, methods=["GET"])


def _add_middleware(app: FastAPI) -> None:
    """GZip inside, CORS outside (``add_middleware`` puts each new one around the others)."""
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[CORS_ORIGIN],
        allow_methods=["*"],
        allow_headers=["*"],
    )


class RequestIdMiddleware:
    """A pure-ASGI middleware: a request id on every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counter = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counter += 1
        request_id = str(self.counter).encode()

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, sending)


def _add_production_middleware(app: FastAPI) -> None:
    """Outside in: request id, the timer, CORS."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[CORS_ORIGIN],
        allow_methods=["*"],
        allow_headers=["*"],
    )

    @app.middleware("http")
    async def timer(request: Any, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["x-process-time"] = f"{time.perf_counter() - started:.6f}"
        return response

    app.add_middleware(RequestIdMiddleware)


def create_app(extra_routes: int = DEFAULT_EXTRA_ROUTES, middleware: bool = False, production: bool = False) -> FastAPI:
    """The benchmark app with ``extra_routes`` routes declared before the measured ones, with
    CORS and GZip middleware if ``middleware``, and the production-style layers if
    ``production``."""
    app = FastAPI(title="fastrapi-compat benchmark")
    _add_extra_routes(app, extra_routes)
    if middleware:
        _add_middleware(app)
    if production:
        _add_production_middleware(app)

    # No return annotations on purpose: FastAPI would turn them into response models, and the
    # textbook endpoint has none. Only POST /items declares one (``response_model=``).
    @app.get("/plain")
    async def plain():
        return {"message": "Hello, World", "ok": True}

    @app.get("/sync")
    def sync():
        return {"message": "Hello from a thread", "ok": True}

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None, limit: int = 10):
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.post("/items", response_model=ItemOut)
    async def create_item(item: ItemIn):
        return {"id": 1, "name": item.name, "price": item.price, "tags": item.tags}

    @app.get("/deps")
    async def deps(paging: Annotated[dict, Depends(get_paging)]):
        return paging

    @app.get("/deps-def")
    async def deps_def(current: Annotated[dict, Depends(get_user)]):
        return current

    @app.get("/big")
    async def big():
        return [{"id": i, "name": f"item-{i}", "price": i * 1.25, "active": i % 2 == 0} for i in range(100)]

    return app


app = create_app()


_LAZY_APPS: dict[str, Callable[[], FastAPI]] = {
    SCALED_APP: lambda: create_app(SCALED_EXTRA_ROUTES),
    MIDDLEWARE_APP: lambda: create_app(middleware=True),
    PRODUCTION_APP: lambda: create_app(production=True),
    INSTRUMENTED_APP: lambda: _instrumented(),
}


def _instrumented() -> FastAPI:
    """Imported only here: Sentry, OpenTelemetry and Prometheus are set up for the process."""
    from bench.apps.instrumented_app import build

    app: FastAPI = build()
    return app


def __getattr__(name: str) -> Any:
    """``app_10000_routes``, ``app_middleware``, ``app_production`` and ``app_instrumented``
    are built on first access only (uvicorn, granian and fastrapi-compat all resolve
    ``module:attr`` with ``getattr``)."""
    build = _LAZY_APPS.get(name)
    if build is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    built = globals()[name] = build()
    return built
