"""Several of Starlette's standard middleware on one app, in different orders.

``add_middleware`` puts each new middleware *outside* the ones added before, so the
factories below add them innermost first; ``create_constructor_app`` uses
``FastAPI(middleware=[...])`` (first in the list is outermost) plus one ``add_middleware``
(outside all of them). ``create_with_python_middleware_app`` has an ``@app.middleware``
function in the middle of the stack.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.httpsredirect import HTTPSRedirectMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware

SECRET = "differential-stack-secret"
GOOD = "https://good.example"
HOSTS = ["127.0.0.1", "example.com", "www.example.org"]


class Item(BaseModel):
    name: str
    price: float


def text(size: int) -> str:
    return "".join(f"{i % 97} stacked line\n" for i in range(size))[:size]


def _routes(app: FastAPI) -> None:
    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "padding": text(600)}

    @app.post("/items", status_code=201)
    def create_item(item: Item) -> Item:
        return item

    @app.api_route("/big/{size}", methods=["GET", "HEAD"])
    async def big(size: int) -> PlainTextResponse:
        return PlainTextResponse(text(size), headers={"Vary": "User-Agent"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(4):
                yield text(300 + i).encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/session/{key}")
    async def write_session(key: str, value: str, request: Request) -> dict[str, Any]:
        request.session[key] = value
        return {"session": dict(request.session), "padding": text(600)}

    @app.get("/session")
    async def read_session(request: Request) -> dict[str, Any]:
        return dict(request.session)

    @app.get("/http-error")
    async def http_error() -> None:
        raise HTTPException(status_code=409, detail=text(700))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unhandled")


def _cors() -> dict[str, Any]:
    return {
        "allow_origins": [GOOD],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["X-Custom"],
        "allow_credentials": True,
        "expose_headers": ["X-Exposed"],
    }


def _app(*inner_first: tuple[type, dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    _routes(app)
    for cls, options in inner_first:
        app.add_middleware(cls, **options)
    return app


GZIP = (GZipMiddleware, {"minimum_size": 1})
CORS = (CORSMiddleware, _cors())
TRUSTED = (TrustedHostMiddleware, {"allowed_hosts": HOSTS})
SESSIONS = (SessionMiddleware, {"secret_key": SECRET})


def create_gzip_outside_cors_app() -> FastAPI:
    return _app(CORS, GZIP)


def create_cors_outside_gzip_app() -> FastAPI:
    return _app(GZIP, CORS)


def create_full_app() -> FastAPI:
    """Outside in: TrustedHost, CORS, Sessions, GZip."""
    return _app(GZIP, SESSIONS, CORS, TRUSTED)


def create_full_reversed_app() -> FastAPI:
    """Outside in: GZip, Sessions, CORS, TrustedHost."""
    return _app(TRUSTED, CORS, SESSIONS, GZIP)


def create_https_app() -> FastAPI:
    """Outside in: GZip, CORS, TrustedHost, HTTPSRedirect (every request redirected)."""
    return _app((HTTPSRedirectMiddleware, {}), TRUSTED, CORS, GZIP)


def create_constructor_app() -> FastAPI:
    """``FastAPI(middleware=[...])``; then Sessions added outside all of them."""
    app = FastAPI(
        middleware=[
            Middleware(CORSMiddleware, **_cors()),
            Middleware(TrustedHostMiddleware, allowed_hosts=HOSTS),
            Middleware(GZipMiddleware, minimum_size=1, compresslevel=5),
        ]
    )
    _routes(app)
    app.add_middleware(SessionMiddleware, secret_key=SECRET, session_cookie="stack")
    return app


def create_with_python_middleware_app() -> FastAPI:
    """Outside in: CORS, an ``@app.middleware("http")`` function, GZip, Sessions."""
    app = _app(SESSIONS, GZIP)

    @app.middleware("http")
    async def mark(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["X-Python-Middleware"] = response.headers.get("content-encoding", "none")
        return response

    app.add_middleware(CORSMiddleware, **_cors())
    return app
