"""``def`` routes whose whole plan is synchronous: the engine runs each request of these on its
thread pool (parameters, ``def`` dependencies, endpoint, serialization), where FastAPI runs each
function in anyio's pool. Every route here must answer as FastAPI does, including the ways a
request can leave the pool: errors for the app's handlers, responses that stream or carry
background tasks, ``anyio.from_thread`` calls back into the loop."""

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import anyio.from_thread
from fastapi import Cookie, Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    StreamingResponse,
)
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.responses import Response

marker: contextvars.ContextVar[str] = contextvars.ContextVar("sync_pool_marker", default="unset")


class Teapot(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


class Kettle(Exception):
    pass


class Item(BaseModel):
    id: int
    name: str
    tags: list[str] = []


def checked(token: Annotated[str, Header()] = "ok") -> str:
    if token == "deny":
        raise HTTPException(403, "denied", headers={"x-why": "token"})
    if token == "teapot":
        raise Teapot("from a dependency")
    return token


def create_app() -> FastAPI:
    app = FastAPI()
    log: list[str] = []

    @app.exception_handler(Teapot)
    async def teapot_handler(request: Any, exc: Teapot) -> JSONResponse:
        return JSONResponse({"teapot": exc.name, "path": request.url.path}, status_code=418)

    @app.exception_handler(Kettle)
    def kettle_handler(request: Any, exc: Kettle) -> PlainTextResponse:  # a def handler
        return PlainTextResponse(f"kettle at {request.url.path}", status_code=409)

    def settings() -> dict[str, int]:
        return {"size": 25}

    def paging(config: Annotated[dict[str, int], Depends(settings)], page: int = 1) -> dict[str, int]:
        return {"page": page, "size": config["size"]}

    def set_marker(value: str) -> str:
        marker.set(value)
        return value

    @app.get("/plain")
    def plain():
        return {"message": "Hello from a thread", "ok": True}

    @app.get("/items/{item_id}")
    def read_item(item_id: int, q: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 10):
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.get("/many")
    def many(tag: Annotated[list[str], Query()] = []):  # noqa: B006 - FastAPI's idiom
        return {"tags": tag}

    @app.get("/deps")
    def deps(page: Annotated[dict[str, int], Depends(paging)], token: Annotated[str, Depends(checked)]):
        return {"paging": page, "token": token}

    @app.get("/cookie")
    def cookie(session_id: Annotated[str | None, Cookie()] = None, user_agent: Annotated[str | None, Header()] = None):
        return {"session_id": session_id, "has_agent": user_agent is not None}

    @app.get("/model/{item_id}", response_model=Item)
    def model(item_id: int):
        return {"id": item_id, "name": f"item {item_id}", "extra": "dropped"}

    @app.get("/annotated/{item_id}")
    def annotated(item_id: int) -> Item:
        return Item(id=item_id, name="annotated", tags=["a", "b"])

    @app.get("/exclude-unset", response_model=Item, response_model_exclude_unset=True)
    def exclude_unset():
        return Item(id=1, name="unset")

    @app.get("/invalid-response", response_model=Item)
    def invalid_response():
        return {"id": "not a number"}

    @app.get("/created", status_code=201)
    def created():
        return {"created": True}

    @app.get("/no-content", status_code=204)
    def no_content() -> None:
        return None

    @app.get("/html", response_class=HTMLResponse)
    def html():
        return "<h1>from a thread</h1>"

    @app.get("/response")
    def response() -> Response:
        return Response(b"raw bytes", media_type="application/octet-stream", headers={"x-raw": "1"})

    @app.get("/http-error")
    def http_error():
        raise HTTPException(418, {"reason": "brewing"}, headers={"x-kind": "tea"})

    @app.get("/teapot")
    def teapot():
        raise Teapot("endpoint")

    @app.get("/kettle")
    def kettle():
        raise Kettle()

    @app.get("/unhandled")
    def unhandled():
        raise RuntimeError("boom in a thread")

    @app.get("/background")
    def background(name: str = "job") -> JSONResponse:
        return JSONResponse({"scheduled": name}, background=BackgroundTask(log.append, name))

    @app.get("/log")
    async def read_log():
        return {"log": log}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield b"one,"
            yield b"two"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/context/{value}")
    def context(value: Annotated[str, Depends(set_marker)]):
        # FastAPI calls the dependency in a copy of the request's context: the value it set
        # is not seen here.
        return {"set": value, "seen": marker.get()}

    @app.get("/thread")
    def thread():
        try:
            asyncio.get_running_loop()
            loop = "running"
        except RuntimeError:
            loop = "none"
        return {"main": threading.current_thread() is threading.main_thread(), "loop": loop}

    async def on_the_loop(value: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"value": value, "loop": asyncio.get_running_loop().is_running()}

    @app.get("/from-thread")
    def from_thread():
        anyio.from_thread.check_cancelled()
        result = anyio.from_thread.run(on_the_loop, 7)
        same = anyio.from_thread.run_sync(lambda: 41 + 1)
        return {"result": result, "sync": same}

    factory_calls = {"n": 0}

    def stamp() -> int:
        factory_calls["n"] += 1
        return factory_calls["n"]

    @app.get("/factory")
    def factory(value: Annotated[int, Query(default_factory=stamp)], limit: int = 5, name: str = "x"):
        # The factory runs once per request that lacks the value, never while compiling.
        return {"value": value, "calls": factory_calls["n"], "limit": limit, "name": name}

    @app.get("/factory-async")
    async def factory_async(value: Annotated[int, Query(default_factory=stamp)]):
        return {"value": value, "calls": factory_calls["n"]}

    @app.get("/thread-name")
    def thread_name():
        return {"name": threading.current_thread().name}

    return app


def create_app_with_overrides() -> FastAPI:
    """The same app, with a dependency override set (FastAPI's own solver runs the route)."""
    app = create_app()

    def fake_checked() -> str:
        return "overridden"

    app.dependency_overrides[checked] = fake_checked
    return app
