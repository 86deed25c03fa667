"""Apps for GZipMiddleware's differential tests: one app per group of options.

Every app has the same routes: bodies of a size given in the path, streams whose chunking is
given in the query string, every kind of content type, already-encoded and partial responses,
files (``FileResponse``), empty statuses. The bodies are deterministic pseudo-text, so that
compression levels give different bytes.
"""

import atexit
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


@cache
def text(size: int, seed: int = 0) -> bytes:
    """``size`` bytes of deterministic, moderately compressible text."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += f"{rng.choice(WORDS)} {rng.randrange(1000)} ".encode()
        if rng.random() < 0.1:
            out += b"\n"
    return bytes(out[:size])


@cache
def files() -> Path:
    """The files ``FileResponse`` serves, shared by both servers (same mtime, same ETag)."""
    root = Path(tempfile.mkdtemp(prefix="gzip-diff-"))
    atexit.register(shutil.rmtree, root, True)
    sizes = {
        "small.txt": 100,
        "medium.txt": 10_000,
        "chunk.txt": 64 * 1024,  # exactly FileResponse.chunk_size: a second, empty chunk
        "big.txt": 200_000,
        "empty.txt": 0,
    }
    for name, size in sizes.items():
        (root / name).write_bytes(text(size, seed=size))
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + text(2000, seed=7))
    (root / "data.json").write_bytes(b'{"k": "' + text(3000, seed=3) + b'"}')
    return root


class Payload(BaseModel):
    name: str
    values: list[int]


def _routes(app: FastAPI) -> None:
    @app.api_route("/text/{size}", methods=["GET", "HEAD"])
    async def text_body(size: int, seed: int = 0) -> Response:
        return PlainTextResponse(text(size, seed))

    @app.get("/json/{count}")
    async def json_body(count: int) -> list[dict[str, Any]]:
        return [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(count)]

    @app.get("/media/{size}")
    async def media(size: int, media_type: str = Query(alias="type")) -> Response:
        return Response(text(size), headers={"content-type": media_type})

    @app.get("/no-content-type/{size}")
    async def no_content_type(size: int) -> Response:
        return Response(text(size))

    @app.get("/stream")
    def stream(
        chunks: int = 3,
        size: int = 400,
        empty_first: bool = False,
        empty_between: bool = False,
        media_type: str = "text/plain",
    ) -> StreamingResponse:
        def generate() -> Iterator[bytes]:
            if empty_first:
                yield b""
            for i in range(chunks):
                yield text(size, seed=i)
                if empty_between:
                    yield b""

        return StreamingResponse(generate(), media_type=media_type)

    @app.get("/stream-length/{size}")
    async def stream_with_length(size: int) -> StreamingResponse:
        body = text(size)

        async def generate() -> AsyncIterator[bytes]:
            yield body[: size // 2]
            yield body[size // 2 :]

        return StreamingResponse(generate(), media_type="text/plain", headers={"content-length": str(size)})

    @app.get("/encoded/{size}")
    async def encoded(size: int, encoding: str = "br") -> Response:
        return Response(text(size), media_type="text/plain", headers={"Content-Encoding": encoding})

    @app.get("/partial/{size}")
    async def partial(size: int) -> Response:
        return Response(
            text(size),
            status_code=206,
            media_type="text/plain",
            headers={"Content-Range": f"bytes 0-{size - 1}/{size * 2}"},
        )

    @app.get("/status/{code}")
    async def status(code: int, size: int = 0) -> Response:
        return Response(text(size), status_code=code, media_type="text/plain")

    @app.get("/vary/{size}")
    async def vary(size: int, existing: str = "Cookie") -> Response:
        return PlainTextResponse(text(size), headers={"Vary": existing})

    @app.get("/two-vary/{size}")
    async def two_vary(size: int) -> Response:
        response = PlainTextResponse(text(size))
        response.raw_headers.append((b"vary", b"Cookie"))
        response.raw_headers.append((b"vary", b"User-Agent"))
        return response

    @app.api_route("/file/{name}", methods=["GET", "HEAD"])
    async def file(name: str) -> FileResponse:
        return FileResponse(files() / name)

    @app.get("/http-error/{size}")
    async def http_error(size: int) -> None:
        raise HTTPException(status_code=409, detail=text(size).decode())

    @app.post("/payload")
    async def payload(body: Payload) -> Payload:
        return body

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unhandled")

    @app.get("/request-echo")
    async def request_echo(request: Request) -> Response:
        ae = request.headers.getlist("accept-encoding")
        return PlainTextResponse(f"accept-encoding={ae!r}\n".encode() * 40)


def _app(*layers: dict[str, Any]) -> FastAPI:
    app = FastAPI()
    _routes(app)
    for options in layers:
        app.add_middleware(GZipMiddleware, **options)
    return app


def create_default_app() -> FastAPI:
    """``GZipMiddleware()``: minimum_size=500, compresslevel=9, default exclusions."""
    return _app({})


def create_level1_app() -> FastAPI:
    return _app({"compresslevel": 1})


def create_level6_app() -> FastAPI:
    return _app({"compresslevel": 6, "minimum_size": 100})


def create_min0_app() -> FastAPI:
    """``minimum_size=0``: even an empty body is compressed (``len(b"") < 0`` is false)."""
    return _app({"minimum_size": 0})


def create_min1_app() -> FastAPI:
    return _app({"minimum_size": 1})


def create_exclude_app() -> FastAPI:
    """Custom ``exclude_content_types`` (normalised: lower case, parameters dropped)."""
    return _app(
        {
            "minimum_size": 10,
            "exclude_content_types": (
                "text/plain",
                "Application/X-Custom; charset=utf-8",
                "image/*",
            ),
        }
    )


def create_double_app() -> FastAPI:
    """Two GZipMiddleware: the inner one (minimum_size=1000), the outer one (10)."""
    return _app({"minimum_size": 1000, "compresslevel": 1}, {"minimum_size": 10})
