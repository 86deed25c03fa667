"""Responses: response_model filtering, response classes, redirects, streaming, files, cookies."""

import asyncio
import datetime
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import ResponseValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel


class UserIn(BaseModel):
    username: str
    password: str
    email: str
    full_name: str | None = None


class UserOut(BaseModel):
    username: str
    email: str
    full_name: str | None = None


class Item(BaseModel):
    name: str
    description: str | None = None
    price: float
    tax: float = 10.5
    tags: list[str] = []


ITEMS: dict[str, dict[str, Any]] = {
    "foo": {"name": "Foo", "price": 50.2},
    "bar": {"name": "Bar", "description": "The bartenders", "price": 62, "tax": 20.2},
    "baz": {"name": "Baz", "description": None, "price": 50.2, "tax": 10.5, "tags": []},
}

FIXED_EXPIRES = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def create_app(file_path: Path, static_dir: Path) -> FastAPI:
    app = FastAPI()

    @app.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
    async def create_user(user: UserIn) -> Any:
        return user

    @app.get("/items/{item_id}", response_model=Item, response_model_exclude_unset=True)
    async def read_item(item_id: str) -> Any:
        return ITEMS[item_id]

    @app.get(
        "/items/{item_id}/name",
        response_model=Item,
        response_model_include={"name", "description"},
    )
    async def read_item_name(item_id: str) -> Any:
        return ITEMS[item_id]

    @app.get("/items/{item_id}/public", response_model=Item, response_model_exclude={"tax"})
    async def read_item_public(item_id: str) -> Any:
        return ITEMS[item_id]

    @app.get(
        "/items/{item_id}/defaults",
        response_model=Item,
        response_model_exclude_defaults=True,
    )
    async def read_item_no_defaults(item_id: str) -> Any:
        return ITEMS[item_id]

    @app.get("/items/{item_id}/none", response_model=Item, response_model_exclude_none=True)
    async def read_item_no_none(item_id: str) -> Any:
        return ITEMS[item_id]

    @app.get("/annotated")
    def annotated() -> UserOut:
        return UserIn(username="u", password="secret", email="u@example.com")  # type: ignore[return-value]

    @app.get("/list-model", response_model=list[Item])
    async def list_model() -> Any:
        return list(ITEMS.values())

    @app.get("/invalid-response", response_model=Item)
    async def invalid_response() -> Any:
        return {"name": "missing price"}

    @app.get("/invalid-response/detail", response_model=Item)
    async def invalid_response_detail() -> Any:
        return {"name": "bad price", "price": "abc", "tags": [1, None]}

    @app.exception_handler(ResponseValidationError)
    async def response_validation(request: Request, exc: ResponseValidationError) -> JSONResponse:
        """What the error carries, for the routes under ``/invalid-response/detail``."""
        if request.url.path != "/invalid-response/detail":
            raise exc  # no handler, as far as the client can tell: a plain 500
        return JSONResponse(
            {
                "errors": jsonable_encoder(exc.errors()),
                "body": jsonable_encoder(exc.body),
                "str": str(exc),
                "context": repr(exc.__context__),
                "cause": repr(exc.__cause__),
            },
            status_code=500,
        )

    @app.get("/plain", response_class=PlainTextResponse)
    async def plain() -> str:
        return "plain text \u2603"

    @app.get("/html", response_class=HTMLResponse)
    async def html() -> str:
        return "<h1>Hello</h1>"

    @app.get("/json-custom")
    async def json_custom() -> JSONResponse:
        return JSONResponse(
            {"message": "custom", "unicode": "\u00e9\u2603"},
            status_code=202,
            headers={"X-Custom": "1", "Cache-Control": "no-store"},
        )

    @app.get("/response-param")
    async def response_param(response: Response) -> dict[str, str]:
        response.headers["X-From-Param"] = "yes"
        response.status_code = 203
        response.set_cookie("flavor", "choco")
        return {"ok": "param"}

    @app.get("/cookies")
    async def cookies() -> Response:
        response = JSONResponse({"cookies": 3})
        response.set_cookie("a", "1")
        response.set_cookie(
            "b",
            "two words",
            httponly=True,
            samesite="strict",
            path="/x",
            domain="example.com",
        )
        response.set_cookie("c", "3", secure=True, expires=FIXED_EXPIRES)
        return response

    @app.get("/delete-cookie")
    async def delete_cookie() -> Response:
        response = PlainTextResponse("deleted")
        response.delete_cookie("old", path="/x")
        response.set_cookie("new", "v")
        return response

    @app.get("/no-content", status_code=204)
    async def no_content() -> None:
        return None

    @app.get("/not-modified")
    async def not_modified() -> Response:
        return Response(status_code=304, headers={"ETag": '"abc"'})

    @app.get("/bytes")
    async def raw_bytes() -> Response:
        return Response(content=bytes(range(256)), media_type="application/octet-stream")

    @app.get("/empty-media-type")
    async def empty_media_type() -> Response:
        return Response(content=b"no type")

    @app.get("/big")
    async def big(n: int = 1024 * 1024) -> Response:
        return Response(content=b"x" * n, media_type="text/plain")

    @app.get("/teapot")
    async def teapot() -> Response:
        return PlainTextResponse("short and stout", status_code=418)

    @app.get("/custom-status")
    async def custom_status() -> Response:
        return PlainTextResponse("unknown status", status_code=599)

    @app.get("/redirect")
    async def redirect() -> RedirectResponse:
        return RedirectResponse("/items/foo")

    @app.get("/redirect-301")
    async def redirect_301() -> RedirectResponse:
        return RedirectResponse("https://example.com/a b?q=\u00e9", status_code=301)

    @app.get("/redirect-absolute", response_class=RedirectResponse, status_code=302)
    async def redirect_absolute() -> str:
        return "http://example.org/target"

    @app.get("/stream-sync")
    def stream_sync() -> StreamingResponse:
        def numbers() -> Iterator[bytes]:
            for i in range(10):
                yield f"line {i}\n".encode()

        return StreamingResponse(numbers(), media_type="text/plain")

    @app.get("/stream-async")
    async def stream_async() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for i in range(5):
                await asyncio.sleep(0)
                yield f"chunk-{i};"

        return StreamingResponse(chunks(), media_type="text/event-stream", headers={"X-Stream": "async"})

    @app.get("/stream-big")
    async def stream_big() -> StreamingResponse:
        async def blocks() -> AsyncIterator[bytes]:
            for i in range(16):
                yield bytes([65 + i]) * 65536

        return StreamingResponse(blocks(), media_type="application/octet-stream")

    @app.get("/stream-empty")
    async def stream_empty() -> StreamingResponse:
        async def nothing() -> AsyncIterator[bytes]:
            if False:  # pragma: no cover
                yield b""

        return StreamingResponse(nothing())

    @app.get("/stream-with-length")
    async def stream_with_length() -> StreamingResponse:
        async def two() -> AsyncIterator[bytes]:
            yield b"12345"
            yield b"67890"

        return StreamingResponse(two(), headers={"Content-Length": "10"})

    @app.get("/stream-error")
    async def stream_error() -> StreamingResponse:
        async def broken() -> AsyncIterator[bytes]:
            yield b"first part;"
            raise RuntimeError("generator failed mid-stream")

        return StreamingResponse(broken(), media_type="text/plain")

    @app.get("/file")
    async def file() -> FileResponse:
        return FileResponse(file_path)

    @app.get("/file-download")
    async def file_download() -> FileResponse:
        return FileResponse(file_path, filename="report \u00e9t\u00e9.txt", media_type="text/plain")

    @app.get("/file-inline")
    async def file_inline() -> FileResponse:
        return FileResponse(file_path, filename="inline.txt", content_disposition_type="inline")

    @app.api_route("/file-head", methods=["GET", "HEAD"])
    async def file_head() -> FileResponse:
        return FileResponse(file_path)

    @app.get("/file-missing")
    async def file_missing() -> FileResponse:
        return FileResponse(file_path.with_name("does-not-exist.txt"))

    app.mount("/static", StaticFiles(directory=static_dir, html=True), name="static")
    return app
