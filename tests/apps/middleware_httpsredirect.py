"""An app behind HTTPSRedirectMiddleware: every plain-HTTP request is redirected."""

from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.middleware.httpsredirect import HTTPSRedirectMiddleware
from pydantic import BaseModel


class Note(BaseModel):
    text: str


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/notes", status_code=201)
    def create_note(note: Note) -> Note:
        return note

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"url": str(request.url)}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("never reached over ws://")
        await websocket.close()

    app.add_middleware(HTTPSRedirectMiddleware)
    return app
