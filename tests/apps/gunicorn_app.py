"""An app for ``gunicorn -k fastrapi_compat.workers.GunicornWorker`` (tests/reliability/
test_gunicorn.py): which worker answered, a slow request, and a lifespan whose shutdown is seen."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    mark("lifespan-shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/pid")
def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


def mark(what: str) -> None:
    marks = os.environ.get("GUNICORN_APP_MARKS")
    if marks:
        with open(marks, "a") as out:
            out.write(f"{what} {os.getpid()}\n")


@app.get("/slow")
async def slow(seconds: float = 1.0) -> dict[str, float]:
    mark("slow-start")
    await asyncio.sleep(seconds)
    return {"slept": seconds}
