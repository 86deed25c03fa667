"""How many endpoint calls run at once: ``def`` ones in FastAPI's bounded thread pool (40 by
default, anyio's limiter), ``async def`` ones all together on the event loop."""

import asyncio
import contextvars
import threading
import time
from typing import Any

from fastapi import Depends, FastAPI

request_marker: contextvars.ContextVar[str] = contextvars.ContextVar("request_marker", default="unset")


def create_app() -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()
    gauges: dict[str, dict[str, int]] = {}

    def enter(name: str) -> None:
        with lock:
            gauge = gauges.setdefault(name, {"now": 0, "max": 0, "calls": 0})
            gauge["now"] += 1
            gauge["calls"] += 1
            gauge["max"] = max(gauge["max"], gauge["now"])

    def leave(name: str) -> None:
        with lock:
            gauges[name]["now"] -= 1

    def reached(name: str, target: int) -> bool:
        with lock:
            return gauges[name]["max"] >= target

    # Each call waits until ``target`` calls have been in flight at once (or ``wait`` seconds
    # pass), so the maximum measures the server's concurrency limit, not the clients' speed.

    @app.get("/sync-gather/{name}")
    def sync_gather(name: str, target: int, wait: float = 1.0) -> dict[str, str]:
        enter(name)
        try:
            deadline = time.monotonic() + wait
            while not reached(name, target) and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            leave(name)
        return {"done": name}

    @app.get("/async-gather/{name}")
    async def async_gather(name: str, target: int, wait: float = 5.0) -> dict[str, str]:
        enter(name)
        try:
            deadline = time.monotonic() + wait
            while not reached(name, target) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        finally:
            leave(name)
        return {"done": name}

    @app.get("/gauge/{name}")
    def gauge(name: str) -> dict[str, int]:
        with lock:
            return dict(gauges.get(name, {"now": 0, "max": 0, "calls": 0}))

    async def set_marker(marker: str) -> str:
        request_marker.set(marker)
        return marker

    @app.get("/contextvars/{marker}")
    async def contextvars_route(marker: str, _: str = Depends(set_marker)) -> dict[str, Any]:
        # A value set in an async dependency is visible in the endpoint (same context), and
        # asyncio sees a running loop, as in FastAPI under uvicorn.
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)
        return {"marker": request_marker.get(), "loop_running": loop.is_running()}

    return app
