"""Echo routes for raw HTTP exchanges: what the app saw of the request line, headers and body."""

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse


def create_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"])
    async def echo(rest: str, request: Request) -> dict[str, Any]:
        body = await request.body()
        return {
            "rest": rest,
            "method": request.method,
            "path": request.scope["path"],
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query_string": request.scope["query_string"].decode("latin-1"),
            "query": list(request.query_params.multi_items()),
            "http_version": request.scope["http_version"],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"part {i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    return app
