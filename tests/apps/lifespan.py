"""Lifespan: state yielded from the lifespan reaches ``request.state``; startup and shutdown run."""

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request


def create_app(events: list[str] | None = None) -> FastAPI:
    """``events`` (if given) receives "startup" and "shutdown" as the lifespan runs."""
    log = events if events is not None else []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        log.append("startup")
        app.state.started = True
        yield {
            "greeting": "hello from lifespan",
            "counter": {"n": 0},
            "items": ["a", "b"],
        }
        log.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {
            "greeting": request.state.greeting,
            "items": request.state.items,
            "app_started": request.app.state.started,
        }

    @app.get("/count")
    def count(request: Request) -> dict[str, int]:
        # The lifespan state is shallow-copied per request: mutations of shared objects persist.
        request.state.counter["n"] += 1
        return {"n": request.state.counter["n"]}

    @app.get("/missing-state")
    async def missing_state(request: Request) -> dict[str, Any]:
        return {"has_nope": hasattr(request.state, "nope")}

    @app.get("/events")
    async def get_events() -> list[str]:
        return list(log)

    return app


def create_failing_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("startup failed")
        yield  # pragma: no cover

    return FastAPI(lifespan=lifespan)


def create_slow_app(events: list[str], started: threading.Event, release: threading.Event) -> FastAPI:
    """``GET /slow`` sets ``started`` and answers only once ``release`` is set."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        events.append("slow answered")
        return {"slow": "done"}

    return app
