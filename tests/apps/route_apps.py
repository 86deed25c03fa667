"""Routes whose ``app`` is more than FastAPI's ``request_response`` around its handler: a route
class with its own ``get_route_handler`` (FastAPI's documented timing/gzip pattern), a per-route
``max_body_size`` (Starlette's ``RequestBodyLimitMiddleware`` around the handler), an included
router's route with a body limit, and a Starlette ``Route`` whose app is wrapped. The router is
mirrored; everything from the route's ``app`` down is the app's own code."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Route


class TimedRoute(APIRoute):
    """The get_route_handler pattern of FastAPI's docs: adds a header around the handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            response = await original(request)
            response.headers["x-route-class"] = f"timed {self.path} {time.perf_counter() >= started}"
            return response

        return handler


class Item(BaseModel):
    name: str


#: FastAPI has a per-route ``max_body_size`` (0.163+; not on Python 3.10's newest, 0.162.5).
BODY_LIMITS = "max_body_size" in inspect.signature(APIRouter.post).parameters


def create_app() -> FastAPI:
    app = FastAPI()
    timed = APIRouter(route_class=TimedRoute)

    @timed.get("/timed/{item_id}")
    async def timed_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @timed.post("/timed")
    async def timed_post(item: Item) -> Item:
        return item

    app.include_router(timed)

    if BODY_LIMITS:

        @app.post("/limited", max_body_size=16)
        async def limited(item: Item) -> dict[str, str]:
            return {"name": item.name}

        limited_router = APIRouter(prefix="/r")

        @limited_router.post("/limited", max_body_size=16)
        async def limited_in_router(request: Request) -> dict[str, int]:
            return {"size": len(await request.body())}

        app.include_router(limited_router)

    async def page(request: Request) -> Response:
        return Response(b"page", media_type="text/plain")

    def wrapped(inner: Any) -> Any:
        async def app_(scope: dict[str, Any], receive: Any, send: Any) -> None:
            async def sending(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message["headers"], (b"x-wrapped", b"1")]}
                await send(message)

            await inner(scope, receive, sending)

        return app_

    route = Route("/wrapped", page, methods=["GET"])
    route.app = wrapped(route.app)
    app.router.routes.append(route)
    return app
