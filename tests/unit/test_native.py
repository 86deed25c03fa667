"""The native tier on apps built for it: each request is answered by stock FastAPI in process
(Starlette's TestClient) and by the engine (ours), and must be the same; the engine's counters
say which tier answered."""

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import starlette.testclient
from fastapi import APIRouter, BackgroundTasks, Body, Cookie, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from fastrapi_compat.plan.compiler import compile_app
from fastrapi_compat.testclient import TestClient

IGNORED = {"date", "transfer-encoding"}


def _served(client: TestClient) -> dict[str, int]:
    from fastrapi_compat.testing.loopback import engine_stats

    return engine_stats()


def _headers(response: Any) -> list[tuple[str, str]]:
    return sorted(((k, v) for k, v in response.headers.multi_items() if k not in IGNORED), key=lambda kv: kv[0])


def same(app: FastAPI, method: str, url: str, *, native: bool = True, **kwargs: Any) -> Any:
    """Sends one request to stock FastAPI and to the engine; asserts identical answers and the
    tier that answered; returns the engine's response."""
    stock = starlette.testclient.TestClient(app, raise_server_exceptions=False)
    engine = TestClient(app, raise_server_exceptions=False)
    expected = stock.request(method, url, **kwargs)
    before = _served(engine)
    got = engine.request(method, url, **kwargs)
    after = _served(engine)
    assert got.status_code == expected.status_code, got.text
    # Compared as the differential tests compare (hyper may write names in another order;
    # the values of one name keep theirs).
    assert _headers(got) == _headers(expected)
    assert got.content == expected.content
    assert after["native"] - before["native"] == (1 if native else 0), "tier"
    return got


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []
    secret: str = Field(default="s", exclude=True)


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/plain")
    async def plain() -> dict[str, Any]:
        return {"hello": "world", "n": 1, "f": 1.5, "none": None, "uni": "é"}

    @app.get("/items/{item_id}")
    def read_item(
        item_id: int,
        q: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        tags: Annotated[list[str], Query()] = [],  # noqa: B006 - what FastAPI apps write
        user_agent: Annotated[str | None, Header()] = None,
        x_token: Annotated[list[str] | None, Header()] = None,
        session: Annotated[str | None, Cookie()] = None,
        alias_q: Annotated[str | None, Query(alias="item-query")] = None,
    ) -> dict[str, Any]:
        return {
            "item_id": item_id,
            "q": q,
            "limit": limit,
            "tags": tags,
            "ua": user_agent,
            "x_token": x_token,
            "session": session,
            "alias_q": alias_q,
        }

    @app.post("/items", response_model=Item, status_code=201)
    async def create(item: Item) -> Any:
        return item

    @app.put("/items/{item_id}")
    async def update(
        item_id: int, item: Item, importance: Annotated[int, Body()], note: Annotated[str, Body(embed=False)] = ""
    ) -> Any:
        return {"item_id": item_id, "item": item, "importance": importance}

    @app.post("/embed")
    async def embed(item: Annotated[Item, Body(embed=True)]) -> Item:
        return item

    @app.get("/exclude", response_model=Item, response_model_exclude_unset=True)
    async def exclude() -> Any:
        return {"name": "a", "price": 2}

    @app.get("/html", response_class=HTMLResponse)
    async def html() -> str:
        return "<b>hi</b>"

    @app.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("plain", headers={"x-a": "1"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.delete("/nothing", status_code=204)
    async def nothing() -> None:
        return None

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail={"why": "tea"}, headers={"x-tea": "yes"})

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("boom")

    def common(q: str | None = None, limit: int = 5) -> dict[str, Any]:
        return {"q": q, "limit": limit}

    async def user(token: Annotated[str, Header()] = "anon") -> str:
        return token

    @app.get("/deps")
    async def deps(
        c: Annotated[dict[str, Any], Depends(common)], u: Annotated[str, Depends(user)], request: Request
    ) -> Any:
        return {"c": c, "u": u, "path": request.url.path}

    calls: list[str] = []

    def shared(page: int = 1) -> int:
        calls.append("shared")
        return page

    async def level1(p: Annotated[int, Depends(shared)], size: Annotated[int, Query(gt=0)] = 10) -> dict[str, int]:
        return {"page": p, "size": size}

    def level1b(p: Annotated[int, Depends(shared)], x_key: Annotated[str, Header()] = "k") -> str:
        return f"{x_key}:{p}"

    async def uncached(p: Annotated[int, Depends(shared, use_cache=False)]) -> int:
        return p

    @app.get("/flatdeps")
    async def flatdeps(
        a: Annotated[dict[str, int], Depends(level1)],
        b: Annotated[str, Depends(level1b)],
        c: Annotated[int, Depends(uncached)],
        q: int = 0,
    ) -> Any:
        return {"a": a, "b": b, "c": c, "q": q}

    app.state.calls = calls

    router = APIRouter(prefix="/r", dependencies=[Depends(user)])

    @router.get("/{name}")
    async def in_router(name: str, request: Request) -> Any:
        return {"name": name, "route": request.scope["route"].path}

    app.include_router(router, prefix="/api")
    return app


CASES = [
    ("GET", "/plain", {}),
    (
        "GET",
        "/items/3?q=x&limit=5&tags=a&tags=b&item-query=z",
        {"headers": {"x-token": "t1", "cookie": "session=s; other=1"}},
    ),
    ("GET", "/items/3?limit=0", {}),
    ("GET", "/items/3?q=a%20b&limit=5&tags=x%2Cy", {}),
    ("GET", "/items/3?q=a+b&tags=&tags=z", {}),
    ("GET", "/items/3?q=&limit=", {}),
    ("GET", "/items/3?q&tags", {}),
    ("GET", "/items/3?q=1&q=2&&limit=3&limit=4", {}),
    ("GET", "/items/3?q=caf%C3%A9&item-query=%ZZ", {}),
    ("GET", "/items/3?q=a=b=c", {}),
    ("GET", "/items/x?limit=abc", {}),
    ("POST", "/items", {"json": {"name": "n", "price": 1, "tags": ["t"]}}),
    ("POST", "/items", {"json": {"name": "n"}}),
    ("POST", "/items", {"content": b'{"name": ', "headers": {"content-type": "application/json"}}),
    ("POST", "/items", {"content": b'{"name": "n", "price": 1}', "headers": {"content-type": "text/plain"}}),
    (
        "POST",
        "/items",
        {"content": b'{"name": "n", "price": 1}', "headers": {"content-type": "application/vnd.api+json"}},
    ),
    ("POST", "/items", {}),
    ("PUT", "/items/2", {"json": {"item": {"name": "n", "price": 1}, "importance": 3}}),
    ("PUT", "/items/2", {"json": {"item": {"name": "n", "price": 1}}}),
    ("POST", "/embed", {"json": {"item": {"name": "n", "price": 1}}}),
    ("POST", "/embed", {"json": {"name": "n", "price": 1}}),
    ("GET", "/exclude", {}),
    ("GET", "/html", {}),
    ("GET", "/text", {}),
    ("GET", "/stream", {}),
    ("DELETE", "/nothing", {}),
    ("GET", "/teapot", {}),
    ("GET", "/boom", {}),
    ("GET", "/deps?q=1&limit=2", {"headers": {"token": "tok"}}),
    ("GET", "/flatdeps?page=3&size=2&q=1", {"headers": {"x-key": "K"}}),
    ("GET", "/flatdeps?page=x&size=0&q=y", {}),
    ("GET", "/deps?limit=x", {}),
    ("GET", "/api/r/thing", {}),
    ("HEAD", "/openapi.json", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/docs", {}),
]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return make_app()


@pytest.mark.parametrize(("method", "url", "kwargs"), CASES, ids=[f"{m} {u}" for m, u, _ in CASES])
def test_native_answers_like_stock(app: FastAPI, method: str, url: str, kwargs: dict[str, Any]) -> None:
    same(app, method, url, **kwargs)


def test_not_found_method_not_allowed_and_redirects_are_native(app: FastAPI) -> None:
    """The router's answers to requests no route takes (issue 21; tests/differential/test_misses.py)."""
    same(app, "GET", "/nowhere")
    same(app, "POST", "/plain")
    same(app, "GET", "/items/3/", follow_redirects=False)  # redirect_slashes


def test_exception_handlers_by_class_and_status_and_500() -> None:
    app = FastAPI()

    class Oops(Exception):
        pass

    @app.exception_handler(Oops)
    async def oops(request: Request, exc: Oops) -> JSONResponse:
        return JSONResponse({"oops": request.url.path}, status_code=409)

    @app.exception_handler(404)
    def not_found(request: Request, exc: Exception) -> PlainTextResponse:  # sync handler: threadpool
        return PlainTextResponse("custom 404", status_code=404)

    @app.exception_handler(KeyError)
    async def key_error(request: Request, exc: KeyError) -> None:
        raise HTTPException(404)  # handled again, by the 404 handler (ExceptionMiddleware's level)

    @app.exception_handler(500)
    async def server_error(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(f"500: {exc}", status_code=500)

    @app.get("/oops")
    async def raise_oops() -> None:
        raise Oops()

    @app.get("/missing")
    def raise_404() -> None:
        raise HTTPException(404)

    @app.get("/key")
    async def raise_key() -> None:
        raise KeyError("k")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("crash")

    for url in ("/oops", "/missing", "/key", "/crash"):
        same(app, "GET", url)
    with pytest.raises(RuntimeError, match="crash"):
        TestClient(app).get("/crash")  # raise_server_exceptions, as Starlette's client


def test_debug_traceback_page_is_served() -> None:
    app = FastAPI(debug=True)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("debug crash")

    got = TestClient(app, raise_server_exceptions=False).get("/crash", headers={"accept": "text/html"})
    assert got.status_code == 500 and "debug crash" in got.text


def test_dependency_overrides_are_honoured_per_request(app: FastAPI) -> None:
    dependant = next(r for r in app.routes if getattr(r, "path", "") == "/deps")
    common = dependant.dependant.dependencies[0].call
    client = TestClient(app)
    app.dependency_overrides[common] = lambda: {"overridden": True}
    try:
        assert client.get("/deps").json()["c"] == {"overridden": True}
    finally:
        app.dependency_overrides.clear()
    assert client.get("/deps").json()["c"] == {"q": None, "limit": 5}


def test_flat_plan_dependency_tree_and_overrides() -> None:
    app = make_app()
    route = next(r for r in app.routes if getattr(r, "path", "") == "/flatdeps")
    plan = next(p for p in compile_app(app).plans if p.route is route)
    assert plan.flat is not None and len(plan.flat.node.deps) == 3
    client = TestClient(app)
    before = len(app.state.calls)
    assert client.get("/flatdeps?page=2").json()["a"] == {"page": 2, "size": 10}
    # ``shared`` runs once for the two cached uses and once for the uncached one, per request
    assert len(app.state.calls) - before == 2
    level1 = route.dependant.dependencies[0].call
    app.dependency_overrides[level1] = lambda: {"over": 1}
    try:
        assert client.get("/flatdeps").json()["a"] == {"over": 1}
    finally:
        app.dependency_overrides.clear()
    assert client.get("/flatdeps").json()["a"] == {"page": 1, "size": 10}


def test_routes_added_later_are_served_natively() -> None:
    app = FastAPI()
    client = TestClient(app)
    assert client.get("/late").status_code == 404

    @app.get("/late")
    async def late() -> str:
        return "late"

    before = _served(client)["native"]
    assert client.get("/late").json() == "late"
    assert _served(client)["native"] == before + 1


def test_route_app_replaced_while_running_is_followed() -> None:
    app = FastAPI()

    @app.get("/v")
    async def first() -> int:
        return 1

    client = TestClient(app)
    assert client.get("/v").json() == 1
    route = app.router.routes[-1]
    app.router.routes.remove(route)

    @app.get("/v")
    async def second() -> int:
        return 2

    assert client.get("/v").json() == 2
    assert client.get("/v").json() == 2


def test_background_tasks_run_after_the_response() -> None:

    app = FastAPI()
    done: list[str] = []

    @app.post("/task")
    async def task(tasks: BackgroundTasks) -> str:
        tasks.add_task(done.append, "ran")
        return "queued"

    assert TestClient(app).post("/task").json() == "queued"
    assert done == ["ran"]


def test_yield_dependencies_exit_in_order() -> None:
    app = FastAPI()
    events: list[str] = []

    async def outer() -> Iterator[str]:
        events.append("outer enter")
        yield "o"
        events.append("outer exit")

    def inner(o: Annotated[str, Depends(outer)]) -> Iterator[str]:
        events.append("inner enter")
        yield o + "i"
        events.append("inner exit")

    @app.get("/y")
    async def endpoint(v: Annotated[str, Depends(inner)]) -> str:
        events.append("endpoint")
        return v

    assert TestClient(app).get("/y").json() == "oi"
    assert events == ["outer enter", "inner enter", "endpoint", "inner exit", "outer exit"]


def test_explain_reasons() -> None:
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware

    async def passthrough(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    app = FastAPI()
    app.add_middleware(CORSMiddleware, allow_origins=["*"])

    @app.get("/a")
    async def a() -> None: ...

    compiled = compile_app(app)
    assert {r.path: r.reason for r in compiled.routes}["/a"] == ""
    assert [(m.name, m.native) for m in compiled.middleware] == [("CORSMiddleware", True)]
    app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    compiled = compile_app(app)
    route = {r.path: r for r in compiled.routes}["/a"]
    assert (route.tier, route.reason, route.under) == ("native", "", "under 1 Python middleware: BaseHTTPMiddleware")
    assert [(m.name, m.native, m.reason) for m in compiled.middleware] == [
        ("BaseHTTPMiddleware", False, "runs in Python, around the native routes"),
        ("CORSMiddleware", True, "runs in Rust, inside BaseHTTPMiddleware"),
    ]

    class Custom(APIRouter):
        def matches(self, scope: Any) -> Any:
            return super().matches(scope)

    app = FastAPI()
    router = Custom()

    @router.get("/b")
    async def b() -> None: ...

    app.include_router(router)
    app.mount("/static", FastAPI())
    routes = {r.path: (r.tier, r.reason) for r in compile_app(app).routes}
    assert routes["/b"] == ("asgi", "router class Custom overrides matches")
    assert routes["/static"] == ("asgi", "mounted app FastAPI")
    assert routes["/openapi.json"] == ("native", "")


def test_telemetry_probe_follows_configuration_changes() -> None:
    from fastrapi_compat.plan import internals

    app = FastAPI()
    probe = internals.telemetry_probe(app)
    assert probe is not None
    assert probe() is app._native_telemetry.enabled() is False
    original = app._native_telemetry.config
    app._native_telemetry.config = {**original, "tracer_provider": object()}  # configured on the app
    try:
        assert probe() is app._native_telemetry.enabled() is True
    finally:
        app._native_telemetry.config = original
    assert probe() is False


def test_validation_handler_reads_the_body_the_route_read() -> None:
    from fastapi.exceptions import RequestValidationError

    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def handler(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"raw": (await request.body()).decode(), "errors": len(exc.errors())}, status_code=422)

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    same(app, "POST", "/items", json={"name": "n"})
    same(app, "POST", "/items", content=b"{bad json", headers={"content-type": "application/json"})


def test_chunked_body_reaches_a_flat_route() -> None:
    app = FastAPI()

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "n", '
        yield b'"price": 2}'

    json_type = {"content-type": "application/json"}
    stock = starlette.testclient.TestClient(app).post("/items", content=chunks(), headers=json_type)
    got = TestClient(app).post("/items", content=chunks(), headers=json_type)
    assert (
        (got.status_code, got.content)
        == (stock.status_code, stock.content)
        == (200, b'{"name":"n","price":2.0,"tags":[]}')
    )
