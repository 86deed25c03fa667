"""Apps for SessionMiddleware's differential tests: one app per group of options.

All apps share one secret, so a cookie written by one server (or by the test itself, with
itsdangerous) is read by the other. Routes read, write, modify and clear ``request.session``
(they need ``Request``); ``/untouched/{item_id}`` is a typed route that never touches it.
"""

from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import Secret
from starlette.middleware.sessions import SessionMiddleware

SECRET = "differential-session-secret"


class Values(BaseModel):
    values: dict[str, Any]


def _routes(app: FastAPI) -> None:
    @app.get("/session")
    async def read(request: Request) -> dict[str, Any]:
        return dict(request.session)

    @app.get("/session/{key}")
    async def read_key(key: str, request: Request) -> dict[str, Any]:
        return {"key": key, "value": request.session.get(key)}

    @app.post("/session/{key}")
    async def write(key: str, value: str, request: Request) -> dict[str, Any]:
        request.session[key] = value
        return dict(request.session)

    @app.put("/session")
    async def update(body: Values, request: Request) -> dict[str, Any]:
        request.session.update(body.values)
        return dict(request.session)

    @app.delete("/session/{key}")
    async def delete(key: str, request: Request) -> dict[str, Any]:
        popped = request.session.pop(key, None)
        return {"popped": popped, "session": dict(request.session)}

    @app.post("/clear")
    async def clear(request: Request) -> dict[str, Any]:
        request.session.clear()
        return {}

    @app.post("/setdefault/{key}")
    async def setdefault(key: str, value: str, request: Request) -> dict[str, Any]:
        request.session.setdefault(key, value)
        return dict(request.session)

    @app.post("/same/{key}")
    async def same(key: str, request: Request) -> dict[str, Any]:
        request.session[key] = request.session.get(key)  # modified, even if equal
        return dict(request.session)

    @app.post("/counter")
    def counter(request: Request) -> dict[str, Any]:
        request.session["count"] = request.session.get("count", 0) + 1
        # mutated in place: persisted because the assignment above marked it modified
        request.session.setdefault("history", []).append(request.session["count"])
        return dict(request.session)

    @app.post("/write-then-http-error")
    async def write_then_http_error(request: Request) -> None:
        request.session["before_error"] = True
        raise HTTPException(status_code=409, detail="conflict")

    @app.post("/write-then-crash")
    async def write_then_crash(request: Request) -> None:
        request.session["before_crash"] = True
        raise RuntimeError("unhandled")

    @app.post("/write-with-cookie")
    async def write_with_cookie(request: Request, response: Response) -> dict[str, str]:
        response.set_cookie("other", "1")
        request.session["with_cookie"] = "yes"
        return {"ok": "yes"}

    @app.get("/read-with-vary")
    async def read_with_vary(request: Request) -> Response:
        return JSONResponse(dict(request.session), headers={"Vary": "Accept-Encoding"})

    @app.get("/untouched/{item_id}")
    async def untouched(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.get("/untouched-sync/{item_id}")
    def untouched_sync(item_id: int, q: str | None = None) -> dict[str, Any]:
        # A ``def`` route with a flat plan: the engine runs it on its thread pool.
        return {"item_id": item_id, "q": q}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(dict(websocket.session))
        await websocket.close()


def _app(**options: Any) -> FastAPI:
    app = FastAPI()
    _routes(app)
    app.add_middleware(SessionMiddleware, **options)
    return app


def create_default_app() -> FastAPI:
    """Defaults: cookie ``session``, 14 days, path ``/``, lax, not secure."""
    return _app(secret_key=SECRET)


def create_custom_app() -> FastAPI:
    """Every option changed; ``max_age=None`` (a browser-session cookie, no expiry check)."""
    return _app(
        secret_key=Secret(SECRET),
        session_cookie="sid",
        max_age=None,
        path="/api",
        same_site="strict",
        https_only=True,
        domain="example.com",
        partitioned=True,
    )


def create_short_app() -> FastAPI:
    """``max_age=60`` and ``same_site="none"``: cookies signed an hour ago are expired."""
    return _app(secret_key=SECRET, max_age=60, same_site="none")
