"""Proxy headers (issue 22): what the scope says about the client and scheme, over http and
websocket, and an HTTPS redirect that must not loop behind a TLS-terminating proxy."""

from typing import Any

from fastapi import FastAPI, Request, WebSocket


def create_app() -> FastAPI:
    app = FastAPI()

    def seen(scope: Any, url: str) -> dict[str, Any]:
        return {"client": list(scope["client"]), "scheme": scope["scheme"], "url": url}

    @app.get("/who")
    async def who(request: Request) -> dict[str, Any]:
        return seen(request.scope, str(request.url))

    @app.websocket("/who")
    async def who_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(seen(websocket.scope, str(websocket.url)))
        await websocket.close()

    return app
