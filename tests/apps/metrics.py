"""An app for the metrics endpoint's tests (tests/reliability/test_metrics.py): a native route
with a path parameter, a mounted app the ASGI tier serves, a route that raises (500) and a
websocket."""

from __future__ import annotations

from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

app = FastAPI()


@app.get("/items/{item_id}")
def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("boom (expected by the test)")


async def plain(request: Request) -> Response:
    return PlainTextResponse(f"asgi {request.path_params['name']}")


# A mounted app: the ASGI tier serves it (its route label is the mount's `/asgi/{path}`).
app.mount("/asgi", Starlette(routes=[Route("/{name}", plain)]))


@app.websocket("/ws/{room}")
async def room(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    await websocket.send_text(room)
    await websocket.close()
