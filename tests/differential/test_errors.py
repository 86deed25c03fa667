"""HTTPException, custom exception handlers (by class and status code) and unhandled errors."""

from __future__ import annotations

import httpx
import pytest
from apps import errors
from support.compare import PairClients, Req

from .conftest import pair_fixture

pair = pair_fixture(errors.create_app)
pair_500 = pair_fixture(errors.create_app_with_500_handler)

REQUESTS = [
    Req("GET", "/http-exception"),
    Req("GET", "/http-exception-dict"),
    Req("GET", "/http-exception-401"),
    Req("GET", "/http-exception-no-detail"),
    Req("GET", "/http-exception-204", id="HTTPException 204 has no body"),
    Req("GET", "/http-exception-304", id="HTTPException 304 has no body"),
    Req("GET", "/starlette-exception"),
    Req("GET", "/conflict", id="handler by status code"),
    Req("GET", "/raise-404", id="404 handler for raised HTTPException"),
    Req("GET", "/no-such-route", id="404 handler for unmatched route"),
    Req("POST", "/ok", id="405 not handled by 404 handler"),
    Req("GET", "/teapot/earl%20grey", id="handler by class"),
    Req("GET", "/sub-teapot", id="handler by base class"),
    Req("GET", "/validate/x?q=y", id="custom validation handler"),
    Req("GET", "/validate/1?q=2"),
    Req("GET", "/dependency-error"),
    Req("GET", "/unhandled", id="unhandled async 500"),
    Req("GET", "/unhandled-sync", id="unhandled sync 500"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_errors(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_http_exception_headers(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/http-exception"))
    assert answer.status == 400
    assert answer.header("x-error") == "There goes my error"
    assert answer.json() == {"detail": "bad thing"}


def test_server_survives_unhandled_errors(pair: PairClients) -> None:
    for _ in range(3):
        answer = pair.compare(Req("GET", "/unhandled"))
        assert answer.status == 500
        assert answer.body == b"Internal Server Error"
        assert pair.compare(Req("GET", "/ok")).json() == {"ok": True}


@pytest.mark.parametrize("req", [Req("GET", "/unhandled"), Req("GET", "/ok")], ids=Req.label)
def test_exception_handler_for_500(pair_500: PairClients, req: Req) -> None:
    pair_500.compare(req)


def test_custom_500_body(pair_500: PairClients) -> None:
    answer = pair_500.compare(Req("GET", "/unhandled"))
    assert answer.json() == {"error": "UnhandledError", "message": "custom 500"}


def test_invalid_response_header_value_drops_the_connection(pair: PairClients) -> None:
    """uvicorn counts the response as started before it checks the header values: an invalid
    one raises in the app and the connection is closed without an answer. The engine too
    (not a 500), and it keeps serving."""
    outcomes = []
    for server in (pair.pair.reference, pair.pair.engine):
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/teapot/a%0Db")  # the 418 handler's X-Teapot gets a carriage return
            outcomes.append(client.get("/ok").status_code)
    assert outcomes == [200, 200]
