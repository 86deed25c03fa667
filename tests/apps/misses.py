"""Requests no route takes, answered as the router answers them: 404, 405 (with ``Allow``) and
``redirect_slashes`` both ways, with the app's own handlers for 404/405 and ``HTTPException``,
the engine's Rust CORS around them, an included router with a prefix, and a Python middleware
around them (``create_app_under``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

ORIGIN = "https://good.example"


def _routes(app: FastAPI) -> None:
    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.put("/items/{item_id}")
    async def put_item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "put": True}

    @app.get("/slash/")
    async def slash() -> str:
        return "slash"

    @app.post("/noslash")
    async def noslash() -> str:
        return "noslash"

    @app.api_route("/multi", methods=["GET", "POST", "DELETE"])
    async def multi(request: Request) -> str:
        return request.method

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    async def starlette_page(request: Request) -> Response:
        return PlainTextResponse("starlette")

    app.router.routes.append(Route("/starlette", starlette_page, methods=["GET"]))

    router = APIRouter(prefix="/api/v1")

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    @router.post("/things/")
    async def make_thing() -> dict[str, bool]:
        return {"made": True}

    app.include_router(router)


def create_app() -> FastAPI:
    """FastAPI's own handlers answer the misses."""
    app = FastAPI()
    _routes(app)
    return app


def create_app_with_handlers() -> FastAPI:
    """The app's own handlers for 404, 405 and ``HTTPException``, and CORS (run in Rust)."""
    app = FastAPI()
    _routes(app)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"missing": request.url.path, "route": str(request.scope.get("route")), "keys": sorted(request.scope)},
            status_code=404,
        )

    @app.exception_handler(StarletteHTTPException)
    async def other(request: Request, exc: StarletteHTTPException) -> PlainTextResponse:
        endpoint = request.scope.get("endpoint")
        return PlainTextResponse(
            f"{exc.status_code} {exc.detail} {getattr(endpoint, '__name__', None)} {request.scope.get('path_params')}",
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["*"], allow_headers=["*"])
    return app


def create_app_under() -> FastAPI:
    """A Python middleware around it all: misses are answered under the app's own stack."""
    app = create_app_with_handlers()

    @app.middleware("http")
    async def tag(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["x-tag"] = f"{request.method} {request.url.path}"
        return response

    return app


def create_app_no_redirect() -> FastAPI:
    app = FastAPI(redirect_slashes=False)
    _routes(app)
    return app
