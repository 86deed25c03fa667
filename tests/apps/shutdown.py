"""Shutdown (issue 22): a quick route, a slow one, an endless stream, and a lifespan that says
when it ends, for SIGINT/SIGTERM while connections are idle, half-sent or in flight."""

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import StreamingResponse


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        print("lifespan shutdown ran", file=sys.stderr, flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        print("slow started", file=sys.stderr, flush=True)
        await asyncio.sleep(1.0)
        return {"slow": "done"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    return app
