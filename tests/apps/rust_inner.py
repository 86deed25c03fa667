"""Apps whose Starlette standard middleware sit inside their own Python middleware (issue 21:
the engine runs those in Rust there, :mod:`fastrapi_compat.execute.rust_layers`).

Outside in: ``Recorder`` (pure ASGI: writes down every message it passes on, whole, and the
scope's ``session`` once the app returned), optionally ``Reader`` (``@app.middleware("http")``:
reads the response's headers before passing it on, and writes them down), then either the
*body* layers (``SessionMiddleware``, ``CORSMiddleware``, ``GZipMiddleware``) or the *host*
layers (``TrustedHostMiddleware``, ``HTTPSRedirectMiddleware``). ``GET /seen`` answers with the
record; the differential test compares it between uvicorn + stock FastAPI and the engine, so
the order of headers in each message and the bytes of each body are compared too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

SECRET = "inner-secret"
GOOD = "https://good.example"
#: ``.<timestamp>.<signature>`` of a session cookie: the clock's, masked in the record.
SIGNATURE = re.compile(r"\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?=;)")
BIG = "".join(f"line {i} of a body worth compressing\n" for i in range(200))


class Teapot(Exception):
    pass


def seen(app: Any) -> list[Any]:
    return app.state.seen  # type: ignore[no-any-return]


def _text(value: bytes) -> str:
    return SIGNATURE.sub(".<signed>", value.decode("latin-1"))


class Recorder:
    """Records each message whole (headers in order, body bytes as hex, ``more_body``), what
    the app raised, and the session the app left in the scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/seen":
            await self.app(scope, receive, send)
            return
        messages: list[Any] = []

        async def sending(message: dict[str, Any]) -> None:
            entry: dict[str, Any] = {"keys": sorted(message)}
            for key, value in message.items():
                if key == "headers":
                    entry[key] = [[_text(bytes(k)), _text(bytes(v))] for k, v in value]
                elif isinstance(value, bytes):
                    entry[key] = value.hex()
                else:
                    entry[key] = value
            messages.append(entry)
            await send(message)

        raised = None
        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            raised = type(exc).__name__
            raise
        finally:
            session = scope.get("session")
            seen(scope["app"]).append(
                {
                    "by": "recorder",
                    "path": scope["path"],
                    "messages": messages,
                    "raised": raised,
                    "session": None if session is None else [type(session).__name__, dict(session)],
                }
            )


def _routes(app: FastAPI) -> None:
    @app.get("/plain")
    async def plain() -> Response:
        return Response(b"plain", media_type="text/plain", headers={"x-route": "plain", "vary": "Accept"})

    @app.get("/big")
    async def big() -> PlainTextResponse:
        return PlainTextResponse(BIG, headers={"x-route": "big"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(4):
                await asyncio.sleep(0)
                yield BIG[i * 500 : (i + 1) * 500].encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/encoded")
    async def encoded() -> Response:
        return Response(BIG.encode(), media_type="text/plain", headers={"content-encoding": "identity"})

    @app.get("/image")
    async def image() -> Response:
        return Response(BIG.encode(), media_type="image/png")

    @app.get("/session")
    async def read_session(request: Request) -> dict[str, Any]:
        return {"session": dict(request.session)}

    @app.post("/session")
    async def bump_session(request: Request) -> dict[str, Any]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @app.delete("/session")
    async def clear_session(request: Request) -> dict[str, Any]:
        request.session.clear()
        return {"cleared": True}

    @app.get("/teapot")
    async def teapot() -> None:
        raise Teapot()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> PlainTextResponse:
        tasks.add_task(lambda: seen(app).append({"by": "background", "event": "ran"}))
        return PlainTextResponse(BIG)

    @app.get("/seen")
    async def get_seen() -> list[Any]:
        return seen(app)

    @app.delete("/seen")
    async def clear_seen() -> None:
        seen(app).clear()


def _app(layers: str, reader: bool) -> FastAPI:
    """``layers``: ``body``, ``hosts``, or ``split`` (CORS outermost, then the recorder, then
    GZip: two runs of Rust layers, one on each side of a Python middleware)."""
    app = FastAPI()
    app.state.seen = []
    _routes(app)

    @app.exception_handler(Teapot)
    async def on_teapot(request: Request, exc: Teapot) -> JSONResponse:
        return JSONResponse({"teapot": True}, status_code=418)

    if layers == "split":
        app.add_middleware(GZipMiddleware, minimum_size=100)
        app.add_middleware(Recorder)
        app.add_middleware(CORSMiddleware, allow_origins=[GOOD], allow_methods=["GET"], expose_headers=["x-route"])
        return app
    if layers == "body":
        app.add_middleware(GZipMiddleware, minimum_size=100)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[GOOD],
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["x-a"],
            expose_headers=["x-route"],
        )
        app.add_middleware(SessionMiddleware, secret_key=SECRET)
    else:
        app.add_middleware(HTTPSRedirectMiddleware)
        hosts = ["good.example", "*.trusted.example", "www.moved.example"]
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    if reader:

        @app.middleware("http")
        async def read_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            response = await call_next(request)
            if request.url.path != "/seen":
                headers = [[_text(k), _text(v)] for k, v in response.headers.raw]
                seen(request.app).append({"by": "reader", "status": response.status_code, "headers": headers})
            response.headers["x-read"] = str(len(response.headers.raw))
            return response

    app.add_middleware(Recorder)
    return app


def create_body_recorded() -> FastAPI:
    """Recorder, then Session, CORS and GZip."""
    return _app("body", reader=False)


def create_body_read() -> FastAPI:
    """Recorder, the header-reading ``@app.middleware("http")``, then Session, CORS and GZip."""
    return _app("body", reader=True)


def create_split() -> FastAPI:
    """CORS, Recorder, GZip: Rust layers around and inside a Python middleware."""
    return _app("split", reader=False)


def create_hosts_recorded() -> FastAPI:
    """Recorder, then TrustedHost and HTTPSRedirect."""
    return _app("hosts", reader=False)


def create_hosts_read() -> FastAPI:
    """Recorder, the header-reading ``@app.middleware("http")``, then TrustedHost and HTTPSRedirect."""
    return _app("hosts", reader=True)
