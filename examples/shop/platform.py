"""What a company library might provide: its own ``FastAPI`` subclass and route class.

``TimedRoute`` wraps the route's ``handle`` (the router's call into the route), as some
instrumentation libraries do; the engine stands in for the router, so it serves these routes
through its ASGI tier, where the app's own router calls ``handle``. Everything else in the app
stays native. (A route class that only overrides ``get_route_handler`` stays native: its handler
is what the route's ``app`` holds.)
"""

from __future__ import annotations

import time
from typing import Any

import fastapi
from fastapi.routing import APIRoute
from starlette.types import Message, Receive, Scope, Send


class TimedRoute(APIRoute):
    """Adds an ``x-handled-by`` header naming the route class (and the time it took)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = f"{(time.perf_counter() - started) * 1000:.0f}".encode()
                headers = [*message.get("headers", []), (b"x-handled-by", b"TimedRoute"), (b"x-elapsed-ms", elapsed)]
                message = {**message, "headers": headers}
            await send(message)

        await super().handle(scope, receive, timed_send)


class PlatformApp(fastapi.FastAPI):
    """The company's app class: adds a ``/_platform`` route to every service."""

    def __init__(self, *, service: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

        @self.get("/_platform", include_in_schema=False)
        async def platform_info() -> dict[str, str]:
            return {"service": service, "framework": "platform"}
