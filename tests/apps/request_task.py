"""Each request's own asyncio task and context: ``async def`` endpoints that report their task
(``asyncio.current_task()``, sniffio, anyio), set a context variable that must not reach
another request, wait for concurrent peers, and raise before their first ``await``. Every
endpoint records whether a flat plan ran it (``app.state.flat_calls``), so that a test can
tell the engine served them by the path it means to check."""

import asyncio
import contextvars
import inspect
from typing import Any

import anyio
import sniffio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

marker: contextvars.ContextVar[str] = contextvars.ContextVar("request_task_marker", default="unset")

FLAT_FRAME = "fastrapi_compat/execute/flat.py"
EAGER_FRAME = ("fastrapi_compat/serve/dispatch.py", "start")


class Teapot(Exception):
    """Raised by ``/raise``: the app's handler answers 418."""


def create_app() -> FastAPI:
    app = FastAPI()
    app.state.flat_calls = []
    app.state.eager_calls = []
    inside: dict[str, int] = {}

    def note() -> None:
        stack = inspect.stack()
        app.state.flat_calls.append(any(frame.filename.endswith(FLAT_FRAME) for frame in stack))
        # the task's first step run as the dispatcher starts it (eager_start), not from the loop
        app.state.eager_calls.append(
            any(frame.filename.endswith(EAGER_FRAME[0]) and frame.function == EAGER_FRAME[1] for frame in stack)
        )
        # what runs the request task's coroutine (the engine's dispatcher; uvicorn's cycle)
        task = asyncio.current_task()
        frame = task.get_coro().cr_frame if task is not None else None  # type: ignore[union-attr]
        app.state.runner = frame.f_locals.get("self") if frame is not None else None

    @app.exception_handler(Teapot)
    async def teapot(request: Request, exc: Teapot) -> JSONResponse:
        return JSONResponse({"teapot": str(exc)}, status_code=418)

    @app.get("/task")
    async def task() -> dict[str, Any]:
        note()
        current = asyncio.current_task()
        assert current is not None
        before = marker.get()
        marker.set("set by /task")  # the next request must not see it
        return {
            "task": type(current).__name__,
            "default_name": current.get_name().startswith("Task-"),
            "done": current.done(),
            "listed": current in asyncio.all_tasks(),
            "sniffio": sniffio.current_async_library(),
            "anyio": anyio.get_current_task().id == id(current),
            "marker_before": before,
        }

    @app.get("/together/{group}/{value}")
    async def together(group: str, value: str, peers: int) -> dict[str, Any]:
        """Sets the marker, then waits (bounded) until ``peers`` requests of ``group`` are
        inside at once: each still sees its own value."""
        note()
        before = marker.get()
        marker.set(value)
        inside[group] = inside.get(group, 0) + 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while inside[group] < peers and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return {"before": before, "marker": marker.get(), "met": inside[group] >= peers}

    @app.get("/raise")
    async def raise_teapot() -> None:
        note()
        raise Teapot("raised before any await")

    @app.get("/raise-http")
    async def raise_http() -> None:
        note()
        raise HTTPException(status_code=409, detail="raised before any await")

    @app.get("/raise-unhandled")
    async def raise_unhandled() -> None:
        note()
        raise RuntimeError("raised before any await")

    return app
