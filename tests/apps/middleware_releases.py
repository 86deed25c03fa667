"""Apps for the older-Starlette middleware tests (``tests/releases/``): options every release
from 0.38 on takes, on routes whose answers exercise where the releases differ (``Vary``
values of their own, streamed and already-encoded bodies, event streams, partial content,
sessions read, written and emptied).
"""

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.httpsredirect import HTTPSRedirectMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.middleware.sessions import SessionMiddleware

SECRET = "release-secret"
WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu "


def text(size: int) -> bytes:
    return (WORDS * (size // len(WORDS) + 1))[:size]


def _routes(app: FastAPI) -> None:
    @app.get("/text/{size}")
    def text_body(size: int) -> Response:
        return PlainTextResponse(text(size))

    @app.get("/json")
    async def json_body() -> dict[str, Any]:
        return {"items": [{"id": i, "name": f"item {i}"} for i in range(40)]}

    @app.get("/stream")
    def stream(chunks: int = 3, size: int = 1000) -> StreamingResponse:
        def parts() -> Iterator[bytes]:
            for i in range(chunks):
                yield text(size + i)

        return StreamingResponse(parts(), media_type="text/plain")

    @app.get("/media")
    def media(type: str, size: int = 2000) -> Response:
        return Response(text(size), media_type=type)

    @app.get("/encoded")
    def encoded() -> Response:
        return Response(text(2000), headers={"content-encoding": "identity"})

    @app.get("/partial")
    def partial() -> Response:
        return Response(text(2000), status_code=206, media_type="text/plain")

    @app.get("/vary")
    def vary(request: Request) -> Response:
        response = PlainTextResponse(text(int(request.query_params.get("size", "2000"))))
        for value in request.query_params.getlist("v"):
            response.headers.append("vary", value)
        return response


def _session_routes(app: FastAPI) -> None:
    @app.get("/session/set")
    def set_value(request: Request, key: str = "k", value: str = "v") -> dict[str, Any]:
        request.session[key] = value
        return dict(request.session)

    @app.get("/session/get")
    def get_value(request: Request) -> dict[str, Any]:
        return dict(request.session)

    @app.get("/session/clear")
    def clear(request: Request) -> dict[str, Any]:
        request.session.clear()
        return {}

    @app.get("/session/none")
    def untouched() -> dict[str, Any]:
        return {}


def create_cors_gzip_app() -> FastAPI:
    """The bench's stack: CORS outside GZip; listed origins, a regex, credentials off."""
    app = FastAPI()
    _routes(app)
    app.add_middleware(GZipMiddleware, minimum_size=100)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["https://a.example"],
        allow_origin_regex=r"https://[a-z]+\.regex\.example",
        allow_methods=["GET", "POST"],
        allow_headers=["x-custom"],
        expose_headers=["x-exposed"],
        max_age=100,
    )
    return app


def create_star_app() -> FastAPI:
    """``"*"`` origins without credentials, GZip at level 1 (another gzip header byte)."""
    app = FastAPI()
    _routes(app)
    app.add_middleware(GZipMiddleware, minimum_size=500, compresslevel=1)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    return app


def create_credentials_app() -> FastAPI:
    """``"*"`` origins with credentials; sessions inside (their ``Vary``, if any, first)."""
    app = FastAPI()
    _routes(app)
    _session_routes(app)
    app.add_middleware(SessionMiddleware, secret_key=SECRET)
    app.add_middleware(GZipMiddleware)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True)
    return app


def create_hosts_app() -> FastAPI:
    app = FastAPI()
    _routes(app)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com", "*.example.org", "Mixed.Example"])
    return app


def create_redirect_app() -> FastAPI:
    app = FastAPI()
    _routes(app)
    app.add_middleware(HTTPSRedirectMiddleware)
    return app


def create_session_app() -> FastAPI:
    app = FastAPI()
    _session_routes(app)
    app.add_middleware(SessionMiddleware, secret_key=SECRET, max_age=0, same_site="strict")
    return app


class SawMiddleware:
    """A pure-ASGI middleware outside the standard ones: its response start names the headers
    and status it was sent (``x-outer-saw``), so what the layers inside it did, and in which
    order, is on the wire."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = b",".join(name for name, _ in headers)
                saw = b"%d:%s" % (message["status"], names)
                message = {**message, "headers": [*headers, (b"x-outer-saw", saw)]}
            await send(message)

        await self.app(scope, receive, sending)


def create_inner_cors_gzip_app() -> FastAPI:
    """The CORS + GZip app under a pure-ASGI middleware: the standard ones run inside it."""
    app = create_cors_gzip_app()
    app.add_middleware(SawMiddleware)
    return app
