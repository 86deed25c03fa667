"""Websocket limits (issue 26): an echo that records how each websocket ended, and a sender that
counts the sends that completed, for peers that break the protocol or do not read."""

import asyncio
import threading
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect


def create_app() -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()
    ended: list[dict[str, Any]] = []
    sent = {"count": 0, "error": ""}

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                with lock:
                    ended.append({"code": message.get("code"), "reason": message.get("reason") or ""})
                return
            try:
                if message.get("text") is not None:
                    await websocket.send_text(message["text"])
                else:
                    await websocket.send_bytes(message["bytes"])
            except (WebSocketDisconnect, OSError):
                with lock:
                    ended.append({"code": "send failed", "reason": ""})
                return

    @app.websocket("/flood")
    async def flood(websocket: WebSocket) -> None:
        """Sends 1 MiB messages as fast as ``send`` lets it, to a peer that may not read."""
        await websocket.accept()
        data = b"x" * (1024 * 1024)
        try:
            for _ in range(int(websocket.query_params.get("count", "200"))):
                await websocket.send_bytes(data)
                sent["count"] += 1
        except (WebSocketDisconnect, OSError) as exc:
            sent["error"] = type(exc).__name__
        except asyncio.CancelledError:
            sent["error"] = "cancelled"
            raise

    @app.get("/ended")
    def get_ended() -> list[dict[str, Any]]:
        with lock:
            return list(ended)

    @app.get("/sent")
    def get_sent() -> dict[str, Any]:
        return dict(sent)

    @app.delete("/state")
    def reset() -> None:
        with lock:
            ended.clear()
        sent.update(count=0, error="")

    return app
