"""``async def`` endpoints whose ``def`` dependencies hop to a worker thread (the engine's pool
on the native tier, anyio's under FastAPI): errors and their headers, contextvars set by an
earlier dependency, ``anyio.from_thread`` inside them, blocking ones (the loop keeps serving),
the dependency cache, and trees that mix ``async`` and ``def`` functions."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Annotated, Any

import anyio.from_thread
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from apps.def_deps import Log, _on_loop

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
local: contextvars.ContextVar[str] = contextvars.ContextVar("local", default="unset")

Events = Log  # the request's event list, one per request


async def set_request_id(log: Events, x_request_id: Annotated[str, Header()] = "r0") -> str:
    request_id.set(x_request_id)
    log.append(f"async set {x_request_id}")
    return x_request_id


def read_request_id(log: Events) -> str:
    log.append(f"def read {request_id.get()} local={local.get()} on_loop={_on_loop()}")
    local.set("set-in-def")  # in this function's copy of the context only
    return request_id.get()


def read_again(log: Events) -> str:
    log.append(f"def again {request_id.get()} local={local.get()}")
    return local.get()


class Denied(Exception):
    """Raised by a ``def`` dependency, answered by the app's own handler."""


def guard(log: Events, token: Annotated[str, Header()] = "ok") -> str:
    log.append(f"guard {token}")
    if token == "deny":
        raise HTTPException(401, "not allowed", headers={"WWW-Authenticate": "Bearer"})
    if token == "teapot":
        raise HTTPException(418, {"detail": ["a", "structured", "detail"]})
    if token == "stop":
        raise StopIteration  # what anyio turns into a RuntimeError: 500
    if token == "crash":
        raise ValueError("boom")
    if token == "custom":
        raise Denied(token)
    return token


async def on_the_loop(value: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"value": value, "on_loop": _on_loop()}


def calls_the_loop(log: Events) -> dict[str, Any]:
    anyio.from_thread.check_cancelled()
    result = anyio.from_thread.run(on_the_loop, 7)
    same = anyio.from_thread.run_sync(lambda: 41 + 1)
    log.append(f"from_thread {result['value']} {same}")
    return {"run": result, "run_sync": same, "on_loop": _on_loop()}


def state() -> dict[str, int]:
    """A per-request counter (cached: one per request)."""
    return {"n": 0}


def bump(counter: Annotated[dict[str, int], Depends(state)]) -> int:
    counter["n"] += 1
    return counter["n"]


async def async_leaf(log: Events) -> str:
    log.append("async leaf")
    return "a"


def def_leaf(log: Events) -> str:
    log.append(f"def leaf on_loop={_on_loop()}")
    return "d"


def def_on_async(log: Events, leaf: Annotated[str, Depends(async_leaf)]) -> str:
    log.append(f"def on async {leaf} on_loop={_on_loop()} id={request_id.get()}")
    return leaf + "d"


async def async_on_def(log: Events, leaf: Annotated[str, Depends(def_leaf)]) -> str:
    log.append(f"async on def {leaf}")
    return leaf + "a"


def def_on_both(
    log: Events,
    upper: Annotated[str, Depends(def_on_async)],
    other: Annotated[str, Depends(async_on_def)],
    leaf: Annotated[str, Depends(def_leaf, use_cache=False)],
) -> str:
    log.append(f"def on both {upper} {other} {leaf}")
    return upper + other + leaf


class Gate:
    """A blocked dependency's state, shared by the requests of one key."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.release = threading.Event()


def _gate(request: Request, key: str) -> Gate:
    gates: dict[str, Gate] = request.app.state.gates
    with request.app.state.gates_lock:
        return gates.setdefault(key, Gate())


def blocked(request: Request, key: str) -> bool:
    """Blocks its worker thread until ``/release/{key}``: served meanwhile only if the loop is
    not blocked."""
    gate = _gate(request, key)
    gate.waiting.set()
    return gate.release.wait(10)


def sleeps(ms: int = 20) -> int:
    time.sleep(ms / 1000)
    return ms


def create_app() -> FastAPI:
    app = FastAPI()
    app.state.gates = {}
    app.state.gates_lock = threading.Lock()

    @app.exception_handler(Denied)
    async def denied(request: Request, exc: Denied) -> JSONResponse:
        return JSONResponse({"denied": str(exc), "path": request.url.path}, status_code=409, headers={"x-denied": "1"})

    @app.get("/context")
    async def context(
        log: Events,
        rid: Annotated[str, Depends(set_request_id)],
        read: Annotated[str, Depends(read_request_id)],
        again: Annotated[str, Depends(read_again)],
    ) -> dict[str, Any]:
        return {"rid": rid, "read": read, "again": again, "events": log, "local": local.get()}

    @app.get("/guarded")
    async def guarded(log: Events, token: Annotated[str, Depends(guard)], rid: Annotated[str, Depends(read_again)]):
        return {"token": token, "events": log}

    @app.get("/from-thread")
    async def from_thread(log: Events, got: Annotated[dict[str, Any], Depends(calls_the_loop)]) -> dict[str, Any]:
        return {"got": got, "events": log}

    @app.get("/cache")
    async def cache(
        first: Annotated[int, Depends(bump)],
        cached: Annotated[int, Depends(bump)],
        fresh: Annotated[int, Depends(bump, use_cache=False)],
        fresh2: Annotated[int, Depends(bump, use_cache=False)],
        counter: Annotated[dict[str, int], Depends(state)],
    ) -> dict[str, Any]:
        return {"values": [first, cached, fresh, fresh2], "n": counter["n"]}

    @app.get("/mixed")
    async def mixed(
        log: Events,
        rid: Annotated[str, Depends(set_request_id)],
        both: Annotated[str, Depends(def_on_both)],
        leaf: Annotated[str, Depends(def_leaf)],
        again: Annotated[str, Depends(def_on_async)],
    ) -> dict[str, Any]:
        return {"both": both, "leaf": leaf, "again": again, "events": log}

    @app.get("/blocked")
    async def wait(released: Annotated[bool, Depends(blocked)]) -> dict[str, bool]:
        return {"released": released}

    @app.get("/waiting/{key}")
    async def waiting(request: Request, key: str) -> dict[str, bool]:
        return {"waiting": _gate(request, key).waiting.is_set()}

    @app.get("/release/{key}")
    async def release(request: Request, key: str) -> dict[str, bool]:
        _gate(request, key).release.set()
        return {"released": True}

    @app.get("/sleep")
    async def sleep(slept: Annotated[int, Depends(sleeps)], log: Events) -> dict[str, int]:
        return {"slept": slept}

    return app
