"""WebSockets: subprotocols and extra headers, echo, server close, denial, client disconnect."""

import threading
from typing import Annotated, Any

from fastapi import (
    Cookie,
    Depends,
    FastAPI,
    Header,
    Query,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from fastapi.responses import JSONResponse, PlainTextResponse


def create_app() -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()
    disconnects: dict[str, dict[str, Any]] = {}

    @app.websocket("/ws/echo")
    async def echo(websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols", [])
        chosen = "chat.v2" if "chat.v2" in offered else None
        await websocket.accept(
            subprotocol=chosen,
            headers=[(b"x-extra", b"accepted"), (b"set-cookie", b"ws=1")],
        )
        await websocket.send_text(f"hello; offered={offered}")
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                text = message["text"]
                if text == "close":
                    await websocket.close(code=4001, reason="bye now")
                    return
                if text == "close-unicode":
                    await websocket.close(code=4002, reason="caf\u00e9 \u2603")
                    return
                if text == "close-default":
                    await websocket.close()
                    return
                await websocket.send_text(f"echo:{text}")
            else:
                data = message["bytes"]
                await websocket.send_bytes(data[::-1])

    @app.websocket("/ws/json")
    async def json_route(websocket: WebSocket) -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"received": data, "keys": sorted(data) if isinstance(data, dict) else None})
        binary = await websocket.receive_json(mode="binary")
        await websocket.send_json({"binary": binary}, mode="binary")
        await websocket.close()

    @app.websocket("/ws/params/{room}")
    async def params(
        websocket: WebSocket,
        room: int,
        token: Annotated[str, Query()],
        x_client: Annotated[str | None, Header()] = None,
        session: Annotated[str | None, Cookie()] = None,
    ) -> None:
        await websocket.accept()
        await websocket.send_json({"room": room, "token": token, "x_client": x_client, "session": session})
        await websocket.close(code=1000, reason="done")

    def require_auth(websocket: WebSocket, authorization: Annotated[str | None, Header()] = None) -> str:
        if authorization != "Bearer ok":
            raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="unauthorized")
        return authorization

    @app.websocket("/ws/auth")
    async def auth(websocket: WebSocket, auth: Annotated[str, Depends(require_auth)]) -> None:
        await websocket.accept()
        await websocket.send_text(f"authorized with {auth}")
        await websocket.close()

    @app.websocket("/ws/deny")
    async def deny(websocket: WebSocket) -> None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION)

    @app.websocket("/ws/deny-exception")
    async def deny_exception(websocket: WebSocket) -> None:
        raise WebSocketException(code=4003, reason="not allowed")

    @app.websocket("/ws/deny-response")
    async def deny_response(websocket: WebSocket) -> None:
        # The ASGI "websocket.http.response" extension: a full HTTP response instead of 403.
        await websocket.send_denial_response(
            JSONResponse(
                {"detail": "go away"},
                status_code=401,
                headers={"WWW-Authenticate": "Token"},
            )
        )

    @app.websocket("/ws/deny-plain")
    async def deny_plain(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("teapot denial", status_code=418))

    @app.websocket("/ws/error-before-accept")
    async def error_before_accept(websocket: WebSocket) -> None:
        raise RuntimeError("failed before accept")

    @app.websocket("/ws/error-after-accept")
    async def error_after_accept(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("about to fail")
        raise RuntimeError("failed after accept")

    @app.websocket("/ws/return-without-close")
    async def return_without_close(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("returning")

    @app.websocket("/ws/disconnect/{key}")
    async def disconnect(websocket: WebSocket, key: str) -> None:
        await websocket.accept()
        received: list[str] = []
        try:
            while True:
                received.append(await websocket.receive_text())
                await websocket.send_text(f"got {len(received)}")
        except WebSocketDisconnect as exc:
            with lock:
                disconnects[key] = {
                    "code": exc.code,
                    "reason": exc.reason,
                    "received": received,
                }

    @app.get("/ws/disconnects/{key}")
    def get_disconnect(key: str) -> dict[str, Any] | None:
        with lock:
            return disconnects.get(key)

    @app.websocket("/ws/many")
    async def many(websocket: WebSocket) -> None:
        await websocket.accept()
        count = int(await websocket.receive_text())
        for i in range(count):
            await websocket.send_text(f"message {i}")
        await websocket.send_bytes(b"\x00" * 100_000)
        await websocket.close(code=1000)

    @app.get("/http-route")
    async def http_route() -> dict[str, str]:
        return {"http": "ok"}

    return app
