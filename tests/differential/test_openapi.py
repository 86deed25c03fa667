"""/openapi.json, /docs, /redoc, and the same with a root_path."""

import pytest
from apps import openapi
from support.compare import PairClients, Req

from .conftest import pair_fixture

pair = pair_fixture(openapi.create_app)
pair_no_docs = pair_fixture(openapi.create_app_without_docs)
pair_root = pair_fixture(openapi.create_app, root_path="/api/v2")

REQUESTS = [
    Req("GET", "/openapi.json"),
    Req("GET", "/docs"),
    Req("GET", "/redoc"),
    Req("GET", "/docs/oauth2-redirect"),
    Req("HEAD", "/openapi.json"),
    Req("POST", "/openapi.json", id="POST openapi 405"),
    Req("GET", "/private", id="route hidden from schema still served"),
    Req("GET", "/where/here?q=1"),
]

# The client speaks to the server as a proxy would, without the prefix; prefixed paths are
# compared too (uvicorn prepends root_path to scope["path"], so they do not match).
ROOT_PATH_REQUESTS = [
    *REQUESTS,
    Req("GET", "/api/v2/openapi.json", id="prefixed openapi"),
    Req("GET", "/api/v2/docs", id="prefixed docs"),
    Req("GET", "/api/v2/where/here?q=1", id="prefixed route"),
    Req("GET", "/api/v2", id="root path itself"),
    Req("GET", "/api/v2x/where/here", id="root path prefix without slash"),
    Req("GET", "/things/", id="route without root path"),
    Req("GET", "/api/v2/things", id="redirect under root path"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=Req.label)
def test_openapi_and_docs(pair: PairClients, req: Req) -> None:
    pair.compare(req)


@pytest.mark.parametrize("req", [*REQUESTS, Req("GET", "/ok")], ids=Req.label)
def test_without_docs(pair_no_docs: PairClients, req: Req) -> None:
    pair_no_docs.compare(req)


@pytest.mark.parametrize("req", ROOT_PATH_REQUESTS, ids=Req.label)
def test_root_path(pair_root: PairClients, req: Req) -> None:
    pair_root.compare(req)


def test_schema_content(pair: PairClients) -> None:
    schema = pair.compare(Req("GET", "/openapi.json")).json()
    assert schema["info"] == {
        "title": "Differential API",
        "description": "Schema **compared** byte for byte \u2603",
        "version": "1.2.3",
    }
    assert "/private" not in schema["paths"]
    assert schema["paths"]["/things/{thing_id}"]["get"]["deprecated"] is True


def test_root_path_in_schema_and_docs(pair_root: PairClients) -> None:
    schema = pair_root.compare(Req("GET", "/openapi.json")).json()
    assert schema["servers"] == [{"url": "/api/v2"}]
    docs = pair_root.compare(Req("GET", "/docs"))
    assert b"/api/v2/openapi.json" in docs.body
    # uvicorn's root_path means "a proxy stripped this prefix": the client asks for /where/...,
    # and scope["path"] (so request.url) gets the prefix back.
    where = pair_root.compare(Req("GET", "/where/here")).json()
    assert where["root_path"] == "/api/v2"
    assert where["scope_path"] == "/api/v2/where/here"
    assert where["url"] == "http://127.0.0.1:<PORT>/api/v2/where/here"
    assert where["url_for"] == "http://127.0.0.1:<PORT>/api/v2/where/x"
