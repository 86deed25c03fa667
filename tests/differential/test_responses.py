"""response_model filtering, response classes, redirects, streaming, files and static files."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from apps import responses
from support.compare import PairClients, Req
from support.native_middleware import expect_native
from support.servers import server_pair

FILE_CONTENT = b"".join(b"line %04d of the served file\n" % i for i in range(2000))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairClients]:
    # Both servers serve the same files, so ETag and Last-Modified (from stat) agree.
    root = tmp_path_factory.mktemp("responses")
    file_path = root / "served.txt"
    file_path.write_bytes(FILE_CONTENT)
    static = root / "static"
    (static / "sub").mkdir(parents=True)
    (static / "index.html").write_text("<p>index</p>")
    (static / "sub" / "index.html").write_text("<p>sub index</p>")
    (static / "style.css").write_text("body { color: red; }\n")
    (static / "data.json").write_text('{"static": true}')
    (static / "404.html").write_text("<p>custom not found</p>")
    create_app = functools.partial(responses.create_app, Path(file_path), static)
    with server_pair(create_app) as servers:
        clients = PairClients(servers)
        try:
            yield clients
        finally:
            clients.close()


MODEL_REQUESTS = [
    Req(
        "POST",
        "/users",
        json={"username": "u", "password": "secret", "email": "u@example.com"},
    ),
    Req("GET", "/items/foo", id="exclude_unset foo"),
    Req("GET", "/items/bar", id="exclude_unset bar"),
    Req("GET", "/items/baz", id="exclude_unset baz explicit defaults"),
    Req("GET", "/items/bar/name", id="include"),
    Req("GET", "/items/bar/public", id="exclude"),
    Req("GET", "/items/baz/defaults", id="exclude_defaults"),
    Req("GET", "/items/baz/none", id="exclude_none"),
    Req("GET", "/annotated", id="return annotation filters password"),
    Req("GET", "/list-model"),
    Req("GET", "/invalid-response", id="response validation error 500"),
    Req("GET", "/invalid-response/detail", id="response validation error, its errors and context"),
]

RESPONSE_REQUESTS = [
    Req("GET", "/plain"),
    Req("GET", "/html"),
    Req("GET", "/json-custom"),
    Req("GET", "/response-param"),
    Req("GET", "/cookies", id="several set-cookie in order"),
    # delete_cookie sends expires=<now>: mask the clock.
    Req("GET", "/delete-cookie", mask=(r"expires=[^;]+",)),
    Req("GET", "/no-content"),
    Req("GET", "/not-modified"),
    Req("GET", "/bytes"),
    Req("GET", "/empty-media-type"),
    Req("GET", "/big", id="1 MiB response"),
    Req("GET", "/big?n=0", id="empty response"),
    Req("GET", "/teapot"),
    Req("GET", "/custom-status", id="unregistered status code"),
    Req("GET", "/redirect"),
    Req("GET", "/redirect-301", id="redirect with unicode and space"),
    Req("GET", "/redirect-absolute", id="response_class redirect"),
    Req("HEAD", "/plain", id="HEAD on FastAPI GET route"),
]

STREAM_REQUESTS = [
    Req("GET", "/stream-sync"),
    Req("GET", "/stream-async"),
    Req("GET", "/stream-big", id="1 MiB in 16 chunks"),
    Req("GET", "/stream-empty"),
    Req("GET", "/stream-with-length", id="streaming with content-length"),
]

FILE_REQUESTS = [
    Req("GET", "/file"),
    Req("GET", "/file-download", id="download with unicode filename"),
    Req("GET", "/file-inline"),
    Req("GET", "/file-head"),
    Req("HEAD", "/file-head", id="HEAD file"),
    Req("GET", "/file", headers={"range": "bytes=0-99"}, id="range first 100"),
    Req("GET", "/file", headers={"range": "bytes=-50"}, id="range suffix"),
    Req("GET", "/file", headers={"range": "bytes=100-"}, id="range open end"),
    Req("GET", "/file", headers={"range": "bytes=999999-"}, id="range not satisfiable"),
    Req("GET", "/file", headers={"range": "lines=1-2"}, id="range bad unit"),
    Req(
        "GET",
        "/file",
        headers={"range": "bytes=0-9", "if-range": '"not-the-etag"'},
        id="if-range mismatch",
    ),
    Req("GET", "/file-missing"),
]

STATIC_REQUESTS = [
    Req("GET", "/static/style.css"),
    Req("GET", "/static/data.json"),
    Req("GET", "/static/"),
    Req("GET", "/static", id="mount root without slash"),
    Req("GET", "/static/sub", id="html dir without slash redirects"),
    Req("GET", "/static/sub/"),
    Req("GET", "/static/nope.txt", id="custom 404.html"),
    Req("GET", "/static/../apps/responses.py", id="traversal"),
    Req("GET", "/static/%2e%2e/%2e%2e/etc/passwd", id="encoded traversal"),
    Req("POST", "/static/style.css", id="POST to static 405"),
    Req("HEAD", "/static/style.css"),
]


@pytest.mark.parametrize("req", MODEL_REQUESTS, ids=Req.label)
def test_response_model(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", MODEL_REQUESTS, ids=Req.label)
def test_response_model_routes_are_native(pair: PairClients, request: pytest.FixtureRequest, req: Req) -> None:
    """The ``async`` response_model routes run FastAPI's serialization steps in the flat plan."""
    expect_native(pair, req, request)


@pytest.mark.parametrize("req", RESPONSE_REQUESTS, ids=Req.label)
def test_response_classes(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", STREAM_REQUESTS, ids=Req.label)
def test_streaming(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", FILE_REQUESTS, ids=Req.label)
def test_files(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", STATIC_REQUESTS, ids=Req.label)
def test_static_files(pair: PairClients, req: Req) -> None:
    pair.compare(req)


def test_response_model_filters_secrets(pair: PairClients) -> None:
    answer = pair.compare(MODEL_REQUESTS[0])
    assert answer.status == 201
    assert answer.json() == {
        "username": "u",
        "email": "u@example.com",
        "full_name": None,
    }


def test_set_cookie_order(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/cookies"))
    cookies = answer.header_groups()["set-cookie"]
    assert [c.split("=", 1)[0] for c in cookies] == ["a", "b", "c"]


def test_streams_are_chunked(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/stream-sync"))
    assert answer.header("transfer-encoding") == "chunked"
    assert answer.body == b"".join(b"line %d\n" % i for i in range(10))


def test_stream_error_after_start(pair: PairClients) -> None:
    """The generator fails after the headers went out: both servers abort the body."""
    answer = pair.compare(Req("GET", "/stream-error"))
    assert answer.status == 200
    assert answer.error is not None


def test_conditional_static(pair: PairClients) -> None:
    first = pair.compare(Req("GET", "/static/style.css"))
    etag = first.header("etag")
    assert etag
    answer = pair.compare(Req("GET", "/static/style.css", headers={"if-none-match": etag}))
    assert answer.status == 304


def test_file_body(pair: PairClients) -> None:
    answer = pair.compare(Req("GET", "/file"))
    assert answer.body == FILE_CONTENT
    ranged = pair.compare(Req("GET", "/file", headers={"range": "bytes=10-19"}))
    assert ranged.status == 206
    assert ranged.body == FILE_CONTENT[10:20]
