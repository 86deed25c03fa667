"""The Rust route mirror picks the route Starlette's router picks, on real FastAPI apps."""

from __future__ import annotations

import uuid

import pytest
from fastapi import APIRouter, FastAPI
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles

from fastrapi_compat._native import RouteMirror
from fastrapi_compat.plan.compiler import compile_app


def tricky_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/me")
    def me() -> dict[str, str]:
        return {}

    @app.get("/users/{user_id}")
    def user(user_id: str) -> dict[str, str]:
        return {}

    @app.post("/users/{user_id:int}")
    def update(user_id: int) -> dict[str, str]:
        return {}

    @app.get("/files/{path:path}")
    def files(path: str) -> dict[str, str]:
        return {}

    @app.get("/ids/{item:uuid}")
    def ids(item: uuid.UUID) -> dict[str, str]:
        return {}

    @app.get("/price/{x:float}")
    def price(x: float) -> dict[str, str]:
        return {}

    @app.api_route("/multi", methods=["GET", "PUT"])
    def multi() -> dict[str, str]:
        return {}

    @app.put("/users/me")
    def put_me() -> dict[str, str]:
        return {}

    @app.get("/trailing/")
    def trailing() -> dict[str, str]:
        return {}

    @app.get("/ünïcode/{name}")
    def uni(name: str) -> dict[str, str]:
        return {}

    app.router.routes.append(Mount("/static", app=StaticFiles(directory=".", check_dir=False)))
    return app


PATHS = [
    "/users/me",
    "/users/42",
    "/users/abc",
    "/users/",
    "/users",
    "/users/a/b",
    "/files/a/b/c.txt",
    "/files/",
    "/files",
    "/ids/123e4567-e89b-12d3-a456-426614174000",
    "/ids/nope",
    "/price/1.5",
    "/price/2",
    "/price/1.",
    "/multi",
    "/trailing/",
    "/trailing",
    "/ünïcode/x",
    "/static/app.js",
    "/static",
    "/nowhere",
    "/users/me\n",
    "/",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD"]


def starlette_choice(app: FastAPI, method: str, path: str) -> int | None:
    """Index of the first route Starlette fully matches (what the router would run)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
    for index, route in enumerate(app.router.routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return index
    return None


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", PATHS)
def test_mirror_agrees_with_starlette(method: str, path: str) -> None:
    app = tricky_app()
    specs = compile_app(app).mirror
    assert len(specs) == len(app.router.routes)  # no included routers here: one spec each
    # Every route "native" with its own index as plan, so a lookup names the winning route.
    mirror = RouteMirror([(p, prefix, m, s, i) for i, (p, prefix, m, s, _) in enumerate(specs)])
    found = mirror.lookup(method, path)
    expected = starlette_choice(app, method, path)
    assert (found[0] if found else None) == expected
    if found is not None and not isinstance(app.router.routes[expected], Mount):
        # (A mount consumes its `path` capture to build the child scope: no params to compare.)
        _, scope = app.router.routes[expected].matches(
            {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
        )
        raw = {k: str(v) for k, v in scope.get("path_params", {}).items()}
        convertors = app.router.routes[expected].param_convertors
        assert {k: str(convertors[k].convert(v)) for k, v in found[1].items()} == raw


def test_included_router_prefix_goes_to_the_asgi_tier() -> None:
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/ping")
    def ping() -> dict[str, str]:
        return {}

    app.include_router(router)
    compiled = compile_app(app)
    mirror = RouteMirror([(p, prefix, m, s, 0) for p, prefix, m, s, _ in compiled.mirror])
    assert [r.path for r in compiled.routes if r.path == "/api/ping"] == ["/api/ping"]
    # Pessimistic but never wrong: nothing under the prefix is claimed by a later route.
    assert mirror.lookup("GET", "/api/ping") is None or mirror.lookup("GET", "/api/ping")[0] == 0


def test_a_pattern_rust_cannot_compile_is_an_error() -> None:
    with pytest.raises(ValueError, match="route 0"):
        RouteMirror([("^/(?P<x>a(?=b))$", "/", None, None, 1)])
