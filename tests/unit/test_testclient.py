"""``fastrapi_compat.testclient`` needs only what a FastAPI user has: ``websockets`` is imported
when a websocket test runs, and its absence then is one clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
