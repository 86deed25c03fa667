"""``async def`` endpoints whose dependencies are plain ``def`` functions (run in the thread
pool; the engine solves a run of them in one hop): the order they run in, caching, errors,
contextvars, the thread they run on, and ``yield`` dependencies' exit order beside them."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request

tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")
scratch: contextvars.ContextVar[str] = contextvars.ContextVar("scratch", default="unset")


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def log() -> list[str]:
    """The request's event list (cached: one per request)."""
    return []


Log = Annotated[list[str], Depends(log)]


def get_db(events: Log) -> dict[str, Any]:
    events.append(f"db on_loop={_on_loop()}")
    return {"db": "conn", "thread": threading.get_ident()}


def get_user(events: Log, db: Annotated[dict[str, Any], Depends(get_db)], user: str = "anon") -> dict[str, Any]:
    events.append(f"user {user} tenant={tenant.get()} scratch={scratch.get()}")
    scratch.set("set-by-user")  # in a copy of the context: never seen by what follows
    if user == "forbidden":
        raise HTTPException(403, "no")
    if user == "crash":
        raise RuntimeError("boom")
    return {"name": user, "db": db["db"]}


async def set_tenant(events: Log, x_tenant: Annotated[str, Header()] = "t0") -> str:
    tenant.set(x_tenant)
    events.append(f"tenant {x_tenant}")
    return x_tenant


def get_flags(events: Log, limit: Annotated[int, Query(ge=1)] = 5) -> dict[str, Any]:
    events.append(f"flags {limit} scratch={scratch.get()}")
    return {"limit": limit}


def counted(events: Log) -> int:
    events.append(f"counted tenant={tenant.get()}")
    return len(events)


def _log_of(request: Request, key: str) -> list[str]:
    """The app's own event log for ``key`` (each server of a pair has its own app)."""
    logs: dict[str, list[str]] = request.app.state.events
    return logs.setdefault(key, [])


def audit_sync(request: Request, events: Log, key: Annotated[str, Header()] = "none"):  # type: ignore[no-untyped-def]
    _log_of(request, key).append("sync yield enter")
    events.append("audit enter")
    yield "audit"
    _log_of(request, key).append("sync yield exit")


async def audit_async(request: Request, key: Annotated[str, Header()] = "none"):  # type: ignore[no-untyped-def]
    _log_of(request, key).append("async yield enter")
    yield "audit-async"
    _log_of(request, key).append("async yield exit")


def create_app() -> FastAPI:
    app = FastAPI()
    app.state.events = {}

    @app.get("/user")
    async def read_user(events: Log, user: Annotated[dict[str, Any], Depends(get_user)]) -> dict[str, Any]:
        return {"user": user, "events": events, "on_loop": _on_loop()}

    @app.get("/lead-param")
    async def lead_param(
        events: Log, flags: Annotated[dict[str, Any], Depends(get_flags)], page: int = 1
    ) -> dict[str, Any]:
        # the def dependencies run first, on a pool thread; the endpoint's own query
        # parameter is read after them (its errors after theirs)
        return {"events": events, "flags": flags, "page": page}

    @app.get("/thread")
    async def thread(db: Annotated[dict[str, Any], Depends(get_db)]) -> dict[str, Any]:
        # the dependency ran on another thread than this endpoint's (the loop's)
        return {"other_thread": db["thread"] != threading.get_ident()}

    @app.get("/order")
    async def order(
        events: Log,
        user: Annotated[dict[str, Any], Depends(get_user)],
        flags: Annotated[dict[str, Any], Depends(get_flags)],
        tenant_name: Annotated[str, Depends(set_tenant)],
        again: Annotated[dict[str, Any], Depends(get_user)],
        flags2: Annotated[dict[str, Any], Depends(get_flags)],
        first: Annotated[int, Depends(counted)],
        second: Annotated[int, Depends(counted, use_cache=False)],
    ) -> dict[str, Any]:
        return {"events": events, "user": user, "flags": flags, "tenant": tenant_name, "counts": [first, second]}

    @app.get("/yield")
    async def with_yield(
        request: Request,
        events: Log,
        user: Annotated[dict[str, Any], Depends(get_user)],
        audit: Annotated[str, Depends(audit_sync)],
        audit2: Annotated[str, Depends(audit_async)],
        flags: Annotated[dict[str, Any], Depends(get_flags)],
        key: Annotated[str, Header()] = "none",
    ) -> dict[str, Any]:
        _log_of(request, key).append("endpoint")
        return {"events": events, "user": user, "audit": [audit, audit2], "flags": flags}

    @app.get("/events/{key}")
    async def events_of(request: Request, key: str) -> list[str]:
        return _log_of(request, key)

    return app
