"""Apps whose own middleware run in Python around routes the engine serves natively: a
pure-ASGI class, ``BaseHTTPMiddleware`` and ``@app.middleware("http")``, with Starlette's
CORSMiddleware between them (which the engine runs in Rust there).

Each middleware writes down what it saw into ``app.state.seen`` (per app instance: the two
servers of a pair never share it): the scope's keys and the values the router and route set
(``route``, ``endpoint``, ``path_params``), the messages it passed on, what the app raised;
``GET /seen`` answers with that record, so the differential test compares it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.middleware.base import BaseHTTPMiddleware

#: Scope keys whose values are objects (compared by presence only).
OBJECTS = {"app", "router", "state", "fastapi_middleware_astack", "fastapi_inner_astack", "fastapi_function_astack"}
#: Scope keys uvicorn and the engine fill differently by nature (addresses, ports, extensions).
SERVER = {"client", "server", "extensions"}


class Item(BaseModel):
    name: str
    price: float = 0.0


class Teapot(Exception):
    pass


class SyncTeapot(Exception):
    """Answered by a plain ``def`` handler (run in the thread pool)."""


def seen(app: Any) -> list[Any]:
    return app.state.seen  # type: ignore[no-any-return]


class Recorder:
    """A pure-ASGI middleware: adds ``x-request-id`` to the answer and records the scope as
    the app left it, the messages sent, and what was raised."""

    def __init__(self, app: Any, name: str = "recorder") -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[Any] = []

        def note(raised: str | None) -> None:  # before the client can have the answer
            if scope["path"] == "/seen":
                return
            route, endpoint = scope.get("route"), scope.get("endpoint")
            seen(scope["app"]).append(
                {
                    "by": self.name,
                    "path": scope["path"],
                    "keys": sorted(k for k in scope if k not in SERVER),
                    "types": {k: type(scope[k]).__name__ for k in sorted(OBJECTS & set(scope)) if k != "app"},
                    "route": getattr(route, "path", None),
                    "endpoint": getattr(endpoint, "__name__", None),
                    "path_params": scope.get("path_params"),
                    "messages": messages,
                    "raised": raised,
                }
            )

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-request-id", b"r-1")]}
                messages.append(["start", message["status"]])
            else:
                more = message.get("more_body", False)
                messages.append([message["type"], len(message.get("body", b"")), more])
                if not more:
                    note(None)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            note(type(exc).__name__)
            raise


class BodyPeek(BaseHTTPMiddleware):
    """Reads the body before the endpoint does (Starlette keeps it readable for both)."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        peeked = await request.body() if request.method == "POST" else b""
        request.state.peeked = len(peeked)
        try:
            response = await call_next(request)
        except Exception as exc:
            seen(request.app).append({"by": "peek", "raised": type(exc).__name__})
            raise
        response.headers["x-peeked"] = str(len(peeked))
        return response


class Behave(BaseHTTPMiddleware):
    """What a ``dispatch`` may do with ``call_next``'s response, chosen by the ``x-mw`` header:
    ``raise-after`` (fails once it has the response), ``discard`` (answers its own instead),
    ``rebuild`` (reads the body and answers a copy). Each records what it saw."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        mode = request.headers.get("x-mw")
        if mode is None:
            return await call_next(request)
        response = await call_next(request)
        seen(request.app).append({"by": "behave", "mode": mode, "status": response.status_code})
        if mode == "raise-after":
            raise RuntimeError("after call_next")
        if mode == "discard":
            return PlainTextResponse("discarded", status_code=203)
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        seen(request.app).append({"by": "behave", "body": body.decode()})
        return Response(body, status_code=response.status_code, headers={"x-rebuilt": "1"})


def settings() -> dict[str, int]:
    return {"limit": 3}


async def user(request: Request, config: Annotated[dict[str, int], Depends(settings)]) -> str:
    return f"{getattr(request.state, 'user', 'nobody')}/{config['limit']}"


def session(request: Request) -> Iterator[str]:
    seen(request.app).append({"by": "session", "event": "open"})
    yield "db"
    seen(request.app).append({"by": "session", "event": "close"})


def _routes(app: FastAPI) -> None:
    @app.get("/items/{item_id}")
    async def read_item(item_id: int, who: Annotated[str, Depends(user)], q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "who": who}

    @app.get("/sync/{item_id}")
    def read_sync(item_id: int, db: Annotated[str, Depends(session)]) -> dict[str, Any]:
        return {"item_id": item_id, "db": db}

    @app.post("/items", status_code=201)
    async def create_item(item: Item, request: Request) -> dict[str, Any]:
        return {"item": item.model_dump(), "peeked": getattr(request.state, "peeked", None)}

    @app.get("/http-error")
    async def http_error() -> None:
        raise HTTPException(status_code=409, detail="taken", headers={"x-why": "conflict"})

    @app.get("/teapot")
    async def teapot() -> None:
        raise Teapot()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/gone")
    async def gone() -> None:
        raise HTTPException(status_code=410, detail="gone")

    @app.get("/sync-teapot")
    def sync_teapot() -> None:
        raise SyncTeapot()

    @app.get("/stream-fails")
    async def stream_fails() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first\n"
            raise Teapot()  # handled, but the answer has started

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0)
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> PlainTextResponse:
        tasks.add_task(lambda: seen(app).append({"by": "background", "event": "ran"}))
        return PlainTextResponse("queued")

    @app.get("/late-boom")
    async def late_boom(tasks: BackgroundTasks) -> PlainTextResponse:
        def fail() -> None:
            seen(app).append({"by": "background", "event": "failing"})
            raise RuntimeError("in a background task")

        tasks.add_task(fail)
        return PlainTextResponse("answered first")

    @app.get("/plain")
    async def plain() -> Response:
        return Response(b"plain", media_type="text/plain", headers={"x-route": "plain"})

    @app.get("/seen")
    async def get_seen() -> list[Any]:
        return seen(app)

    @app.delete("/seen")
    async def clear_seen() -> None:
        seen(app).clear()


def create_app() -> FastAPI:
    """Outside in: Recorder (pure ASGI), the ``@app.middleware("http")`` function, CORS, Behave
    and BodyPeek (``BaseHTTPMiddleware``)."""
    app = FastAPI()
    app.state.seen = []
    _routes(app)

    @app.exception_handler(Teapot)
    async def on_teapot(request: Request, exc: Teapot) -> JSONResponse:
        return JSONResponse({"teapot": True}, status_code=418)

    @app.exception_handler(SyncTeapot)
    def on_sync_teapot(request: Request, exc: SyncTeapot) -> JSONResponse:
        return JSONResponse({"sync teapot": request.url.path, "method": request.method}, status_code=418)

    @app.exception_handler(410)
    def on_gone(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse(f"gone: {exc.detail}", status_code=410, headers={"x-gone": "1"})

    app.add_middleware(BodyPeek)
    app.add_middleware(Behave)
    app.add_middleware(CORSMiddleware, allow_origins=["https://good.example"], allow_methods=["*"], allow_headers=["*"])

    @app.middleware("http")
    async def timer(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.user = "alice"
        response = await call_next(request)
        response.headers["x-timer"] = "1"
        return response

    app.add_middleware(Recorder)
    return app


class Rewrite:
    """Moves the request to the path in its ``x-rewrite`` header before the router sees it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-rewrite":
                    scope = {**scope, "path": value.decode(), "raw_path": value}
        await self.app(scope, receive, send)


def create_rewrite_app() -> FastAPI:
    """A pure-ASGI middleware that changes the path: the router, not the engine's match, decides."""
    app = FastAPI()
    app.state.seen = []
    _routes(app)
    app.add_middleware(Rewrite)
    app.add_middleware(Recorder)
    return app
