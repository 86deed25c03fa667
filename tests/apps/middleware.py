"""Starlette's CORSMiddleware and GZipMiddleware, which the engine may run natively."""

from collections.abc import AsyncIterator, Iterator

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import PlainTextResponse, StreamingResponse


def _cors_routes(app: FastAPI) -> None:
    @app.get("/data")
    async def data() -> dict[str, str]:
        return {"data": "value"}

    @app.post("/data")
    async def post_data() -> dict[str, str]:
        return {"posted": "value"}

    @app.get("/vary")
    async def vary() -> Response:
        return PlainTextResponse("vary", headers={"Vary": "Accept-Language", "X-Exposed": "e"})

    @app.get("/error")
    async def error() -> None:
        from fastapi import HTTPException

        raise HTTPException(status_code=400, detail="cors on errors")


def create_cors_app() -> FastAPI:
    app = FastAPI()
    _cors_routes(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["https://good.example", "http://localhost:3000"],
        allow_methods=["GET", "POST"],
        allow_headers=["X-Custom", "Content-Type"],
        allow_credentials=True,
        expose_headers=["X-Exposed"],
        max_age=600,
    )
    return app


def create_cors_wildcard_app() -> FastAPI:
    app = FastAPI()
    _cors_routes(app)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    return app


def create_cors_regex_app() -> FastAPI:
    app = FastAPI()
    _cors_routes(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=r"https://.*\.example\.org",
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    return app


def create_gzip_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(GZipMiddleware, minimum_size=500, compresslevel=6)

    @app.get("/small")
    async def small() -> PlainTextResponse:
        return PlainTextResponse("x" * 499)

    @app.get("/exact")
    async def exact() -> PlainTextResponse:
        return PlainTextResponse("y" * 500)

    @app.get("/large-json")
    async def large_json() -> list[dict[str, object]]:
        return [{"id": i, "name": f"item {i}", "tags": ["a", "b", "c"]} for i in range(200)]

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def lines() -> Iterator[bytes]:
            for i in range(100):
                yield f"streamed line {i} with some padding to compress\n".encode()

        return StreamingResponse(lines(), media_type="text/plain")

    @app.get("/stream-small")
    async def stream_small() -> StreamingResponse:
        async def tiny() -> AsyncIterator[bytes]:
            yield b"tiny"

        return StreamingResponse(tiny(), media_type="text/plain")

    @app.get("/event-stream")
    async def event_stream() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            for i in range(50):
                yield f"data: event {i} padded padded padded\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/already-encoded")
    async def already_encoded() -> Response:
        return Response(b"z" * 1000, headers={"Content-Encoding": "br"}, media_type="text/plain")

    @app.get("/with-vary")
    async def with_vary() -> Response:
        return PlainTextResponse("v" * 1000, headers={"Vary": "Cookie"})

    @app.get("/empty")
    async def empty() -> Response:
        return Response(status_code=204)

    @app.head("/head-large")
    @app.get("/head-large")
    async def head_large() -> PlainTextResponse:
        return PlainTextResponse("h" * 2000)

    return app
