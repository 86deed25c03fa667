"""What a company library might provide: its own ``FastAPI`` subclass and route class.

``TimedRoute`` customises request handling (``get_route_handler``), as instrumentation
libraries do, so the engine serves its routes through the ASGI tier; everything else in the
app stays native.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

import fastapi
from fastapi import Request, Response
from fastapi.routing import APIRoute


class TimedRoute(APIRoute):
    """Adds an ``x-handled-by`` header naming the route class (and the time it took)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def timed(request: Request) -> Response:
            started = time.perf_counter()
            response = await handler(request)
            response.headers["x-handled-by"] = "TimedRoute"
            response.headers["x-elapsed-ms"] = f"{(time.perf_counter() - started) * 1000:.0f}"
            return response

        return timed


class PlatformApp(fastapi.FastAPI):
    """The company's app class: adds a ``/_platform`` route to every service."""

    def __init__(self, *, service: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

        @self.get("/_platform", include_in_schema=False)
        async def platform_info() -> dict[str, str]:
            return {"service": service, "framework": "platform"}
