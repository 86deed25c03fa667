"""The comparison itself: it must catch real differences and ignore only what it claims to.

Both sides are uvicorn here, serving deliberately different apps, so these tests check the
harness, not the engine.
"""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response
from support.compare import (
    Captured,
    PairClients,
    Req,
    assert_same,
    close,
    compare_ws,
    recv,
)
from support.servers import ServerPair, UvicornThread


def make_app(variant: str) -> FastAPI:
    app = FastAPI()

    @app.get("/same")
    async def same() -> dict[str, str]:
        return {"same": "yes"}

    @app.get("/body")
    async def body() -> dict[str, str]:
        return {"variant": variant}

    @app.get("/status")
    async def status() -> Response:
        return PlainTextResponse("x", status_code=200 if variant == "a" else 201)

    @app.get("/header")
    async def header() -> Response:
        return PlainTextResponse("x", headers={"X-Variant": variant})

    @app.get("/cookie-order")
    async def cookie_order() -> Response:
        response = PlainTextResponse("x")
        names = ["one", "two"] if variant == "a" else ["two", "one"]
        for name in names:
            response.set_cookie(name, "v")
        return response

    @app.get("/header-order")
    async def header_order() -> Response:
        headers = [(b"x-first", b"1"), (b"x-second", b"2")]
        if variant == "b":
            headers.reverse()
        response = PlainTextResponse("x")
        response.raw_headers.extend(headers)
        return response

    @app.get("/url")
    async def url(request: Request) -> Response:
        # Each server's own port appears in the body, in a header and in content-length terms.
        return PlainTextResponse(str(request.url), headers={"Location": str(request.url)})

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"variant {variant}")
        await websocket.close(code=1000 if variant == "a" else 4000)

    return app


@pytest.fixture(scope="module")
def different() -> Iterator[PairClients]:
    with UvicornThread(make_app("a")) as a, UvicornThread(make_app("b")) as b:
        clients = PairClients(ServerPair(a, b, None, None))
        try:
            yield clients
        finally:
            clients.close()


def test_identical_answers_pass(different: PairClients) -> None:
    different.compare(Req("GET", "/same"))


def test_own_port_date_and_server_are_normalised(different: PairClients) -> None:
    answer = different.compare(Req("GET", "/url"))
    assert answer.body == b"http://127.0.0.1:<PORT>/url"
    assert answer.header("location") == "http://127.0.0.1:<PORT>/url"
    assert answer.header("date") is None and answer.header("server") is None


def test_header_order_of_different_names_is_ignored(different: PairClients) -> None:
    different.compare(Req("GET", "/header-order"))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/body", "body:"),
        ("/status", "status:"),
        ("/header", "header 'x-variant'"),
        ("/cookie-order", "header 'set-cookie'"),
    ],
)
def test_differences_are_caught(different: PairClients, path: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        different.compare(Req("GET", path))


def test_websocket_differences_are_caught(different: PairClients) -> None:
    with pytest.raises(AssertionError, match="variant"):
        compare_ws(different.pair, "/ws", [recv(), close()])


def captured(headers: list[tuple[str, str]], body: bytes = b"{}") -> Captured:
    return Captured(status=200, reason="OK", headers=headers, body=body)


def test_same_name_order_matters_other_order_does_not() -> None:
    assert_same("t", captured([("a", "1"), ("b", "2")]), captured([("b", "2"), ("a", "1")]))
    with pytest.raises(AssertionError):
        assert_same("t", captured([("a", "1"), ("a", "2")]), captured([("a", "2"), ("a", "1")]))
    with pytest.raises(AssertionError):
        assert_same("t", captured([("a", "1")]), captured([("a", "1"), ("a", "1")]))


def test_body_difference_is_located() -> None:
    with pytest.raises(AssertionError, match="first difference at byte 3"):
        assert_same("t", captured([], b"abcdef"), captured([], b"abcxef"))
