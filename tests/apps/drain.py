"""Traffic while servers stop, restart or recycle (issue 22): ``/work/{rid}`` answers after a
few milliseconds with the worker's pid and writes ``pid rid`` to ``$DRAIN_LOG`` when it starts
(so a test knows which requests an app began), and the lifespan shutdown writes
``pid shutdown`` there."""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


def _note(text: str) -> None:
    path = os.environ.get("DRAIN_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {text}\n".encode())
        finally:
            os.close(fd)


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        _note("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/work/{rid}")
    async def work(rid: int) -> dict[str, int]:
        _note(str(rid))
        await asyncio.sleep(0.003)
        return {"pid": os.getpid(), "rid": rid}

    @app.get("/pid")
    async def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app
