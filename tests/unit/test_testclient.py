"""``fastrapi_compat.testclient`` needs only what a FastAPI user has: ``websockets`` is imported
when a websocket test runs, and its absence then is one clear error. And a websocket test sees
what it sees with Starlette's ``TestClient`` where a real socket would differ."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient as StarletteTestClient

from fastrapi_compat.testclient import TestClient

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["websockets"] = None  # as if not installed: any import of it fails

    from fastapi import FastAPI, WebSocket
    from fastrapi_compat.testclient import TestClient

    app = FastAPI()

    @app.get("/")
    async def root():
        return {"ok": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()

    client = TestClient(app)
    assert client.get("/").json() == {"ok": True}
    try:
        with client.websocket_connect("/ws"):
            pass
    except ImportError as exc:
        print("ImportError:", exc)
    else:
        print("no error")
    """
)


def test_http_without_websockets_and_one_clear_error_for_a_websocket() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "ImportError: websocket_connect through the engine needs the websockets package: pip install websockets"
    )


def _send_after_the_client_closed(client_class: type) -> list[str]:
    """An app that sends once the client has gone (it waits for the disconnect, so the order is
    fixed): what it saw, and whether the client's ``with`` raised."""
    seen: list[str] = []
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        message = await websocket.receive()
        seen.append(message["type"])
        await websocket.send_text("too late")  # the client is gone
        seen.append("sent")

    client = client_class(app)
    try:
        with client.websocket_connect("/ws") as session:
            seen.append(session.receive_text())
    except Exception as exc:  # what the test would see
        seen.append(f"raised {type(exc).__name__}")
    return seen


def test_a_send_after_the_client_closed_does_not_fail_the_test_as_on_stock() -> None:
    # Over the engine's socket the late send fails (ClientDisconnected -> WebSocketDisconnect
    # 1006, as under uvicorn); Starlette's in-memory client takes it. The test sees what it sees
    # on stock: no error (opentelemetry-instrumentation-fastapi's suite hit this race).
    stock = _send_after_the_client_closed(StarletteTestClient)
    assert stock == ["hello", "websocket.disconnect", "sent"]
    engine = _send_after_the_client_closed(TestClient)
    assert engine[:2] == ["hello", "websocket.disconnect"]
    assert "raised WebSocketDisconnect" not in engine and all(not s.startswith("raised") for s in engine), engine


def test_an_app_error_after_the_client_closed_still_fails_the_test() -> None:
    def run(client_class: type) -> str:
        app = FastAPI()

        @app.websocket("/ws")
        async def ws(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.receive()
            raise RuntimeError("app bug")

        try:
            with client_class(app).websocket_connect("/ws"):
                pass
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert run(StarletteTestClient) == run(TestClient) == "app bug"
