"""Apps for TrustedHostMiddleware's differential tests: one app per group of options."""

from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from pydantic import BaseModel


class Note(BaseModel):
    text: str


def _routes(app: FastAPI) -> None:
    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/notes", status_code=201)
    def create_note(note: Note) -> Note:
        return note

    @app.get("/echo/{rest:path}")
    async def echo(rest: str, request: Request) -> dict[str, Any]:
        return {
            "rest": rest,
            "host": request.headers.getlist("host"),
            "url": str(request.url),
        }

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        host = websocket.headers.get("host", "")
        await websocket.send_text(f"host={host.rsplit(':', 1)[0]}")
        await websocket.close()


def _app(**options: Any) -> FastAPI:
    app = FastAPI()
    _routes(app)
    app.add_middleware(TrustedHostMiddleware, **options)
    return app


def create_exact_app() -> FastAPI:
    """Exact names (one in mixed case), IP literals; ``www.other.org`` for the redirect."""
    return _app(
        allowed_hosts=[
            "example.com",
            "API.Example.COM",
            "127.0.0.1",
            "[::1]",
            "www.other.org",
        ]
    )


def create_wildcard_app() -> FastAPI:
    return _app(allowed_hosts=["*.example.com", "www.example.org", "127.0.0.1"])


def create_no_redirect_app() -> FastAPI:
    return _app(allowed_hosts=["www.example.com"], www_redirect=False)


def create_any_app() -> FastAPI:
    """``"*"`` among other names: anything goes, even an invalid or missing Host."""
    return _app(allowed_hosts=["example.com", "*"])


def create_default_app() -> FastAPI:
    """``TrustedHostMiddleware()``: ``allowed_hosts=None`` means ``["*"]``."""
    return _app()
