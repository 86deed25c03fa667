"""Apps for CORSMiddleware's differential tests: one app per group of options.

Every app has the same routes (typed parameters and pydantic models, so the native tier can
serve them, plus a few that use ``Request``) and one ``CORSMiddleware`` added with
``app.add_middleware``.
"""

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel

GOOD = "https://good.example"
LOCAL = "http://localhost:3000"


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def _routes(app: FastAPI) -> None:
    @app.get("/data")
    async def data() -> dict[str, str]:
        return {"data": "value"}

    @app.post("/data")
    async def post_data() -> dict[str, str]:
        return {"posted": "value"}

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.put("/items/{item_id}")
    def replace_item(item_id: int, item: Item) -> dict[str, Any]:
        return {"item_id": item_id, **item.model_dump()}

    @app.post("/items", status_code=201)
    async def create_item(item: Item) -> Item:
        return item

    @app.delete("/items/{item_id}", status_code=204)
    async def delete_item(item_id: int) -> None:
        return None

    @app.get("/only-get")
    async def only_get() -> dict[str, str]:
        return {"only": "get"}

    @app.options("/options-route")
    async def options_route() -> dict[str, str]:
        return {"options": "route"}

    @app.get("/vary")
    async def vary() -> Response:
        return PlainTextResponse("vary", headers={"Vary": "Accept-Language", "X-Exposed": "e"})

    @app.get("/two-vary")
    async def two_vary() -> Response:
        response = PlainTextResponse("two vary headers")
        response.raw_headers.append((b"vary", b"Accept-Language"))
        response.raw_headers.append((b"vary", b"User-Agent"))
        return response

    @app.get("/own-cors-headers")
    async def own_cors_headers() -> Response:
        return PlainTextResponse(
            "own",
            headers={
                "Access-Control-Allow-Origin": "https://own.example",
                "Access-Control-Expose-Headers": "X-Own",
                "Access-Control-Allow-Credentials": "false",
            },
        )

    @app.get("/http-error")
    async def http_error() -> None:
        raise HTTPException(status_code=418, detail="teapot", headers={"X-Error": "yes"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unhandled")

    @app.get("/redirect")
    async def redirect() -> RedirectResponse:
        return RedirectResponse("/data")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.api_route("/echo", methods=["GET", "POST", "PATCH", "HEAD"])
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "origin": request.headers.getlist("origin"),
            "acrm": request.headers.get("access-control-request-method"),
        }


def _app(**options: Any) -> FastAPI:
    app = FastAPI()
    _routes(app)
    app.add_middleware(CORSMiddleware, **options)
    return app


def create_list_app() -> FastAPI:
    """Explicit lists for everything, credentials, exposed headers, ``max_age=0``."""
    return _app(
        allow_origins=[GOOD, LOCAL],
        allow_methods=["GET", "POST", "PUT"],
        # mixed case and a duplicate: Starlette lower-cases and de-duplicates (a set)
        allow_headers=["X-Custom", "content-type", "X-Mixed-Case", "x-custom"],
        allow_credentials=True,
        expose_headers=["X-Exposed", "X-Request-Id"],
        max_age=0,
    )


def create_defaults_app() -> FastAPI:
    """Only ``allow_origins``: methods default to GET, headers to the safelisted ones."""
    return _app(allow_origins=[GOOD])


def create_nothing_app() -> FastAPI:
    """``CORSMiddleware`` with no options at all: no origin is allowed."""
    return _app()


def create_wildcard_app() -> FastAPI:
    return _app(
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Exposed"],
        max_age=3600,
    )


def create_wildcard_credentials_app() -> FastAPI:
    """``"*"`` origins with credentials: the origin is echoed instead of ``*``."""
    return _app(
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        allow_credentials=True,
    )


def create_wildcard_origins_only_app() -> FastAPI:
    """``"*"`` origins, default methods and headers."""
    return _app(allow_origins=["*"], allow_methods=["GET", "DELETE"])


def create_regex_app() -> FastAPI:
    """A regex and a list together; ``.`` and ``\\w`` match non-ASCII characters."""
    return _app(
        allow_origins=["https://listed.example"],
        allow_origin_regex=r"https://.*\.example\.org|https://\w+\.example\.net",
        allow_methods=["GET", "POST"],
        allow_headers=["X-Custom"],
    )


def create_regex_features_app() -> FastAPI:
    """Python-only regex syntax (look-ahead, inline flags) and an alternation at top level."""
    return _app(
        allow_origin_regex=r"(?i:https://(?!evil)[a-z0-9-]+\.example\.com)|http://local(host)?:\d{4}",
        allow_credentials=True,
    )


def create_private_network_app() -> FastAPI:
    return _app(
        allow_origins=[GOOD],
        allow_methods=["GET", "POST"],
        allow_headers=["X-Custom"],
        allow_private_network=True,
    )
