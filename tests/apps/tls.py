"""The app of the TLS and HTTP/2 tests: what the scope says of the connection (scheme,
``http_version``, ``request.url``) through a plain route, a route the native tier serves, a
streaming response and a websocket."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int, q: str = "") -> dict[str, object]:
        return {"item_id": item_id, "q": q}

    @app.get("/scope")
    async def scope(request: Request) -> dict[str, object]:
        return {
            "scheme": request.scope["scheme"],
            "http_version": request.scope["http_version"],
            "url": str(request.url),
            "url_for": str(request.url_for("item", item_id=3)),
        }

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, object]:
        body = await request.body()
        return {"length": len(body), "http_version": request.scope["http_version"]}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            for n in range(50):
                yield f"chunk {n}\n".encode() * 100

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"scheme": websocket.scope["scheme"], "url": str(websocket.url)})
        await websocket.close()

    return app


app = create_app()
