"""What the engine-backed test clients promise beyond answers: they log nothing of their own into
the user's loggers, an app-side cancellation reaches the caller as under ``httpx.ASGITransport``,
and no call waits on the engine forever."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI, WebSocket

from fastrapi_compat.serve.server import ServerThread
from fastrapi_compat.testclient import AsyncEngineTransport, EngineTransport, TestClient

ASGITransport = httpx.ASGITransport


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/item")
    async def item() -> dict[str, bool]:
        logging.getLogger("shop").info("item served")
        return {"ok": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    return app


# -- logging ---------------------------------------------------------------------------------


def _ours(records: list[logging.LogRecord]) -> list[str]:
    """Records of the clients' own HTTP and websocket machinery."""
    return [f"{r.name}: {r.getMessage()}" for r in records if r.name.startswith(("httpcore", "websockets"))]


def test_clients_log_nothing_of_their_own(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app()
    with TestClient(app) as client:
        assert client.get("/item").json() == {"ok": True}
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hi"
    with httpx.Client(transport=EngineTransport(app), base_url="http://test") as sync_client:
        assert sync_client.get("/item").json() == {"ok": True}

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as c:
            assert (await c.get("/item")).json() == {"ok": True}

    asyncio.run(main())
    assert _ours(caplog.records) == []
    # what the app logs is still there, as under ASGITransport
    assert [r.getMessage() for r in caplog.records if r.name == "shop"] == ["item served"] * 3


def test_the_users_own_http_calls_still_log(caplog: pytest.LogCaptureFixture) -> None:
    """Only the loopback calls are quiet: the test's own httpx client logs as usual."""
    caplog.set_level(logging.DEBUG)
    with ServerThread(make_app(), host="127.0.0.1", port=0) as server, httpx.Client() as client:
        assert client.get(server.url + "/item").status_code == 200
    assert any(r.name.startswith("httpcore.") for r in caplog.records)
