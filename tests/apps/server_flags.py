"""Server flags (issue 22): routes that show what the server decided — the scope's ``server``
and ``client``, the event loop, an environment variable read at import (``--env-file``) — and a
body reader that records what it received (``--limit-request-body``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse

#: Read when the module is imported, as an app reads its settings: ``--env-file`` must be
#: loaded before the app is imported.
IMPORTED_WITH = os.environ.get("FLAGS_TEST_SETTING", "<unset>")


def create_app(max_body_size: int | None = None) -> FastAPI:
    app = FastAPI() if max_body_size is None else FastAPI(max_body_size=max_body_size)
    received: list[dict[str, Any]] = []

    @app.get("/plain")
    async def plain() -> PlainTextResponse:
        return PlainTextResponse("plain", headers={"x-app": "1"})

    @app.get("/scope")
    async def scope(request: Request) -> dict[str, Any]:
        return {
            "server": request.scope["server"],
            "client": request.scope["client"],
            "scheme": request.scope["scheme"],
            "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            "setting": IMPORTED_WITH,
        }

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        """The body as Starlette reads it (all of it, in memory)."""
        return {"length": len(await request.body())}

    @app.post("/count")
    async def count(request: Request) -> dict[str, Any]:
        """Counts the body without keeping it; records how the reading ended."""
        total, messages = 0, 0
        outcome = "complete"
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                outcome = "disconnect"
                break
            messages += 1
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        received.append({"bytes": total, "outcome": outcome})
        return {"bytes": total, "messages": messages}

    @app.post("/items")
    async def items(item: dict[str, Any]) -> dict[str, int]:
        """A native route with a JSON body."""
        return {"keys": len(item)}

    @app.get("/received")
    async def seen() -> list[dict[str, Any]]:
        return received

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_text(await websocket.receive_text())

    return app


def create_limited_app() -> FastAPI:
    """The app with Starlette's own body limit (Starlette >= 1.0), 1000 bytes."""
    return create_app(max_body_size=1000)


app = create_app()
