"""The app the hostile-request corpus is sent to: a greeting, an echo that reads the body (and
takes a client that went away in its stride, as a careful app does, so that what the servers
log is theirs), a websocket that says hi."""

from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from starlette.requests import ClientDisconnect


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(rest: str, request: Request) -> dict[str, Any]:
        try:
            body = await request.body()
        except ClientDisconnect:
            body = b""  # nobody to answer
        return {"rest": rest, "method": request.method, "body_length": len(body)}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.send_text("hi")
            await websocket.close()
        except WebSocketDisconnect:
            pass  # the client went away first

    return app
