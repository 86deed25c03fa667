"""``EngineTransport``/``AsyncEngineTransport`` against ``httpx.ASGITransport``: same requests, same
answers (status, headers, body), same scope promises and error semantics, through the engine."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastapi import (
    BackgroundTasks,
    Body,
    FastAPI,
    Form,
    Header,
    HTTPException,
    Query,
    Request,
)
from fastapi.responses import PlainTextResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel

from fastrapi_compat.testclient import (
    AsyncEngineTransport,
    EngineTransport,
    TestClient,
    engine_stats,
)

ASGITransport = httpx.ASGITransport
request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def make_app() -> FastAPI:
    app = FastAPI()
    app.state.finished = []

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None, limit: int = Query(10, le=100)) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.post("/items", status_code=201)
    async def create_item(item: Item, x_token: str = Header("none")) -> dict[str, Any]:
        return {"item": item.model_dump(), "token": x_token}

    @app.put("/items/{item_id}")
    def replace_item(item_id: int, item: Annotated[Item, Body(embed=True)]) -> Item:
        return item

    @app.post("/form")
    async def form(name: str = Form(), size: int = Form(1)) -> dict[str, Any]:
        return {"name": name, "size": size}

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        body = await request.body()
        return PlainTextResponse(f"{len(body)}:{body[:16]!r}", headers={"x-len": str(len(body))})

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout", headers={"x-pot": "1"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(5):
                yield f"chunk {index}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/redirect")
    async def redirect() -> RedirectResponse:
        return RedirectResponse("/items/1?q=moved")

    @app.get("/cookie")
    async def cookie(request: Request) -> PlainTextResponse:
        response = PlainTextResponse(request.cookies.get("seen", "first"))
        response.set_cookie("seen", "yes")
        return response

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("boom")

    @app.post("/later")
    async def later(tasks: BackgroundTasks) -> dict[str, bool]:
        async def finish() -> None:
            await anyio.sleep(0.05)
            app.state.finished.append(True)

        tasks.add_task(finish)
        return {"queued": True}

    @app.get("/scope")
    async def scope(request: Request) -> dict[str, Any]:
        s = request.scope
        return {
            "type": s["type"],
            "scheme": s["scheme"],
            "server": list(s["server"]),
            "client": list(s["client"]),
            "root_path": s["root_path"],
            "path": s["path"],
            "raw_path": s["raw_path"].decode(),
            "query_string": s["query_string"].decode(),
            "has_state": "state" in s,
            "has_extensions": "extensions" in s,
            "headers": [[k.decode(), v.decode()] for k, v in s["headers"]],
            "var": request_var.get(),
        }

    return app


def _answer(response: httpx.Response) -> tuple[int, dict[str, list[str]], bytes]:
    """Status, headers and body bytes. Headers are compared as the differential suite does: a
    multiset across names, in order within one name (the engine writes ``content-length`` after
    the other headers, as hyper does; the HTTP semantics do not depend on that order)."""
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name, []).append(value)
    return response.status_code, dict(sorted(headers.items())), response.content


async def _exchange(transport: httpx.AsyncBaseTransport, base_url: str, calls: list[dict[str, Any]]) -> list[Any]:
    answers: list[Any] = []
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        for call in calls:
            response = await client.request(**call)
            answers.append(_answer(response))
    return answers


CALLS: list[dict[str, Any]] = [
    {"method": "GET", "url": "/items/3?q=a%20b&limit=7"},
    {"method": "GET", "url": "/items/abc"},
    {"method": "GET", "url": "/items/3?limit=1000"},
    {"method": "HEAD", "url": "/items/3"},
    {
        "method": "POST",
        "url": "/items",
        "json": {"name": "kb", "price": 9.5, "tags": ["a"]},
        "headers": {"x-token": "t"},
    },
    {"method": "POST", "url": "/items", "json": {"name": "kb"}},
    {"method": "POST", "url": "/items", "content": b"{not json", "headers": {"content-type": "application/json"}},
    {"method": "PUT", "url": "/items/2", "json": {"item": {"name": "x", "price": 1}}},
    {"method": "POST", "url": "/form", "data": {"name": "n", "size": "3"}},
    {"method": "POST", "url": "/form", "data": {"size": "x"}},
    {"method": "POST", "url": "/echo", "content": b"x" * 300_000},
    {"method": "GET", "url": "/teapot"},
    {"method": "GET", "url": "/stream"},
    {"method": "GET", "url": "/redirect"},
    {"method": "GET", "url": "/cookie"},
    {"method": "GET", "url": "/cookie"},
    {"method": "GET", "url": "/nowhere"},
    {"method": "DELETE", "url": "/items/1"},
    {"method": "GET", "url": "/scope?x=%2F&y=%C3%A9", "headers": {"x-multi": "1", "X-Other": "two"}},
    {"method": "GET", "url": "/openapi.json"},
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("base_url", "options"),
    [
        ("http://test", {}),
        ("https://example.org:8443", {"root_path": "/api", "client": ("10.1.2.3", 4567)}),
    ],
)
async def test_same_answers_as_asgi_transport(base_url: str, options: dict[str, Any]) -> None:
    app = make_app()
    expected = await _exchange(ASGITransport(app=app, **options), base_url, CALLS)
    served_before = engine_stats()["http"]
    actual = await _exchange(AsyncEngineTransport(app=app, **options), base_url, CALLS)
    for call, want, got in zip(CALLS, expected, actual, strict=True):
        assert got == want, call
    assert engine_stats()["http"] - served_before == len(CALLS)


@pytest.mark.anyio
async def test_streaming_request_body() -> None:
    app = make_app()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 1000

    answers = []
    for transport in (ASGITransport(app=app), AsyncEngineTransport(app=app)):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/echo", content=body())
            answers.append(_answer(response))
    assert answers[0] == answers[1]
    assert answers[1][2].startswith(b"4000:")


def test_sync_transport_same_answers() -> None:
    app = make_app()
    calls = [call for call in CALLS if call["method"] != "POST" or "content" not in call or len(call["content"]) < 100]
    expected = asyncio.run(_exchange(ASGITransport(app=app), "http://test", calls))
    with httpx.Client(transport=EngineTransport(app), base_url="http://test") as client:
        for call, want in zip(calls, expected, strict=True):
            response = client.request(**call)
            assert _answer(response) == want, call


@pytest.mark.anyio
async def test_app_exception_is_raised_in_the_caller() -> None:
    app = make_app()
    async with httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as client:
        with pytest.raises(ValueError, match="^boom$"):
            await client.get("/boom")
        assert (await client.get("/items/1")).status_code == 200  # the engine stays up


async def _raises_before_start(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("before start")


async def _raises_mid_body(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    raise KeyError("mid body")


async def _no_response(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _incomplete(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})


async def _outcome(transport: httpx.AsyncBaseTransport, method: str) -> tuple[Any, ...]:
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        try:
            response = await client.request(method, "/")
        except Exception as exc:  # noqa: BLE001 - which exception is the point
            return ("raised", type(exc))
        return ("response", *_answer(response))


@pytest.mark.anyio
@pytest.mark.parametrize("raise_app_exceptions", [True, False])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("app", [_raises_before_start, _raises_mid_body, _no_response, _incomplete, make_app()])
async def test_error_semantics(app: Any, method: str, raise_app_exceptions: bool) -> None:
    """Exceptions before and during the response, and apps that break the protocol: raised, or
    answered (500 with no body; what was sent), exactly as ASGITransport does."""
    path_app = app
    if isinstance(app, FastAPI):  # FastAPI's ServerErrorMiddleware answers 500, then re-raises

        async def path_app(scope: Any, receive: Any, send: Any) -> None:
            scope = dict(scope, path="/boom", raw_path=b"/boom")
            await app(scope, receive, send)

    stock = await _outcome(ASGITransport(app=path_app, raise_app_exceptions=raise_app_exceptions), method)
    engine = await _outcome(AsyncEngineTransport(app=path_app, raise_app_exceptions=raise_app_exceptions), method)
    assert engine == stock


@pytest.mark.anyio
async def test_background_tasks_done_when_the_response_returns() -> None:
    app = make_app()
    async with httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as client:
        assert (await client.post("/later")).json() == {"queued": True}
        assert app.state.finished == [True]


class Chunks(httpx.AsyncByteStream):
    """A request body the test hands over chunk by chunk, remembering what was read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = iter(chunks)
        self.consumed: list[bytes] = []

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        for chunk in self.chunks:
            self.consumed.append(chunk)
            return chunk
        raise StopAsyncIteration


@pytest.mark.anyio
@pytest.mark.parametrize("content_length", [None, "2", "6", "invalid"])
async def test_requests_http_cannot_carry_as_they_are(content_length: str | None) -> None:
    """No Host header and a Content-Length that does not match the body (or is no number):
    ASGITransport passes them through; the engine gets valid HTTP and the app the same scope."""
    app = FastAPI()

    @app.post("/")
    async def echo(request: Request) -> dict[str, Any]:
        headers = [[k.decode(), v.decode()] for k, v in request.scope["headers"]]
        return {"headers": headers, "body": (await request.body()).decode()}

    answers = []
    for transport in (ASGITransport(app=app), AsyncEngineTransport(app=app)):
        headers = {"content-type": "text/plain"}
        if content_length is not None:
            headers["content-length"] = content_length
        async with httpx.AsyncClient(transport=transport) as client:
            request = httpx.Request("POST", "http://test/", stream=Chunks([b"123", b"456"]), headers=headers)
            answers.append(_answer(await client.send(request)))
    assert answers[0] == answers[1]
    assert b'"body":"123456"' in answers[1][2]


@pytest.mark.anyio
async def test_request_body_is_read_as_the_app_asks() -> None:
    app = FastAPI()

    @app.post("/")
    async def first_chunk(request: Request) -> PlainTextResponse:
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                return PlainTextResponse(chunk)
        return PlainTextResponse("")  # pragma: no cover

    consumed = []
    for transport in (ASGITransport(app=app), AsyncEngineTransport(app=app)):
        body = Chunks([b"first", b"second", b"third"])
        async with httpx.AsyncClient(transport=transport) as client:
            request = httpx.Request("POST", "http://test/", stream=body, headers={"transfer-encoding": "chunked"})
            assert (await client.send(request)).text == "first"
        consumed.append(body.consumed)
    assert consumed[0] == consumed[1] == [b"first"]


@pytest.mark.anyio
async def test_app_runs_in_the_callers_task() -> None:
    app = FastAPI()

    @app.get("/")
    async def task() -> int:
        return anyio.get_current_task().id

    for transport in (ASGITransport(app=app), AsyncEngineTransport(app=app)):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/")).json() == anyio.get_current_task().id


@pytest.mark.anyio
@pytest.mark.parametrize("factory", [ASGITransport, AsyncEngineTransport])
async def test_cancellation_crosses_both_ways(factory: Callable[..., httpx.AsyncBaseTransport]) -> None:
    """Cancelling the caller cancels the app; the app cancelling the caller's scope ends the
    request, as in one task."""
    events: list[str] = []
    entered = anyio.Event()
    caller_scope = anyio.CancelScope()
    app = FastAPI()

    @app.get("/forever")
    async def forever() -> None:
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            events.append("endpoint cancelled")

    @app.get("/cancel-caller")
    async def cancel_caller() -> str:
        caller_scope.cancel()
        await anyio.lowlevel.checkpoint()
        events.append("not reached")  # pragma: no cover
        return "no"  # pragma: no cover

    async with httpx.AsyncClient(transport=factory(app=app), base_url="http://test") as client:

        async def call(*, task_status: Any) -> None:
            with anyio.CancelScope() as scope:
                task_status.started(scope)
                await client.get("/forever")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                scope = await group.start(call)
                await entered.wait()
                scope.cancel()
            with caller_scope:
                await client.get("/cancel-caller")
    assert events == ["endpoint cancelled"]
    assert caller_scope.cancelled_caught


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_app_runs_on_the_callers_loop_in_its_context(anyio_backend: str) -> None:
    """As under ASGITransport: loop-bound objects made by the test work in the app, and the
    app sees the caller's contextvars."""
    app = FastAPI()
    ready = asyncio.Event()  # bound to the test's loop on first use

    @app.get("/")
    async def root() -> dict[str, Any]:
        ready.set()
        return {"same_loop": asyncio.get_running_loop() is test_loop, "var": request_var.get()}

    test_loop = asyncio.get_running_loop()
    token = request_var.set("from the test")
    try:
        async with httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as client:
            waiter = asyncio.ensure_future(ready.wait())
            assert (await client.get("/")).json() == {"same_loop": True, "var": "from the test"}
            await asyncio.wait_for(waiter, 5)
    finally:
        request_var.reset(token)


@pytest.mark.anyio
async def test_works_in_an_httpx2_client() -> None:
    httpx2 = pytest.importorskip("httpx2")
    app = make_app()
    async with httpx2.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as client:
        response = await client.get("/items/5?q=z")
        assert isinstance(response, httpx2.Response)
        assert response.json() == {"item_id": 5, "q": "z", "limit": 10}
    with httpx2.Client(transport=EngineTransport(app), base_url="http://test") as sync_client:
        assert sync_client.get("/stream").text.count("chunk") == 5


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_trio_caller(anyio_backend: str) -> None:
    pytest.importorskip("trio")
    app = make_app()
    async with httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as client:
        assert (await client.get("/items/2")).json() == {"item_id": 2, "q": None, "limit": 10}
        with pytest.raises(ValueError, match="boom"):
            await client.get("/boom")


@pytest.mark.parametrize("factory", [TestClient, EngineTransport, AsyncEngineTransport])
@pytest.mark.parametrize("not_an_app", [None, "main:app", object()])
def test_not_an_asgi_app_is_one_clear_error(factory: Callable[[Any], Any], not_an_app: Any) -> None:
    with pytest.raises(TypeError, match=r"expected an ASGI application") as info:
        factory(not_an_app)
    assert "\n" not in str(info.value)


def test_lifespan_failure_surfaces_in_the_test_as_with_starlette() -> None:
    from starlette.testclient import TestClient as StarletteTestClient

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("database unreachable")
        yield

    app = FastAPI(lifespan=lifespan)
    for client_class in (StarletteTestClient, TestClient):
        with pytest.raises(RuntimeError, match="database unreachable"), client_class(app):
            pass


def test_testclient_keeps_starlettes_scope_promises() -> None:
    """The side channel refactor: TestClient's scope is still Starlette's."""
    from starlette.testclient import TestClient as StarletteTestClient

    app = make_app()
    answers = []
    for client_class in (StarletteTestClient, TestClient):
        with client_class(app, base_url="https://example.org:8443", root_path="/r", client=("1.2.3.4", 5)) as client:
            answers.append(client.get("/scope?a=1").json())
    assert answers[0] == answers[1]
    assert answers[1]["server"] == ["example.org", 8443]
    assert answers[1]["has_state"] and answers[1]["has_extensions"]


def test_engine_serves_from_its_own_thread() -> None:
    """The requests really go through the engine (not in process): the app runs on the engine's
    loop thread, and the engine counts them."""
    app = FastAPI()

    @app.get("/")
    async def root() -> str:
        return threading.current_thread().name

    before = engine_stats()["http"]
    with httpx.Client(transport=EngineTransport(app), base_url="http://test") as client:
        assert client.get("/").json() == "fastrapi-testclient"
    assert engine_stats()["http"] == before + 1
