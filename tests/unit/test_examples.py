"""The example apps, served by the engine (``ServerThread``) and driven over HTTP with httpx."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from fastrapi_compat.serve.server import ServerThread

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Imports ``examples/<name>.py`` by path, so the repository root never goes on sys.path
    (that would shadow the installed package with the source folder)."""
    module_name = f"_fastrapi_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def crud() -> Iterator[httpx.Client]:
    """A fresh CRUD app (fresh store, seeded by its lifespan) behind the engine."""
    app = load_example("crud").app
    with (
        ServerThread(app, host="127.0.0.1", port=0) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as client,
    ):
        yield client


def test_hello() -> None:
    app = load_example("hello").app
    with ServerThread(app, host="127.0.0.1", port=0) as server:
        assert server.port > 0
        response = httpx.get(server.url + "/", timeout=10.0)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.content == b'{"message":"Hello, world"}'
        assert httpx.get(server.url + "/items/7", timeout=10.0).json() == {"item_id": 7, "q": None}


def test_list_is_seeded_by_lifespan(crud: httpx.Client) -> None:
    page = crud.get("/items").json()
    assert page["total"] == 3
    assert [item["name"] for item in page["items"]] == ["Keyboard", "Mouse", "Editor licence"]
    assert (page["offset"], page["limit"]) == (0, 10)


def test_pagination_and_filter(crud: httpx.Client) -> None:
    page = crud.get("/items", params={"offset": 1, "limit": 1}).json()
    assert [item["id"] for item in page["items"]] == [2]
    assert page["total"] == 3
    hardware = crud.get("/items", params={"tag": "hardware"}).json()
    assert [item["id"] for item in hardware["items"]] == [1, 2]


def test_create_get_update_delete(crud: httpx.Client) -> None:
    created = crud.post("/items", json={"name": "Pen", "price": 2.5, "tags": ["office"]})
    assert created.status_code == 201
    item = created.json()
    assert item == {"name": "Pen", "price": 2.5, "tags": ["office"], "id": 4}

    assert crud.get("/items/4").json() == item
    assert crud.get("/items").json()["total"] == 4

    replaced = crud.put("/items/4", json={"name": "Pencil", "price": 1})
    assert replaced.status_code == 200
    assert replaced.json() == {"name": "Pencil", "price": 1.0, "tags": [], "id": 4}

    patched = crud.patch("/items/4", json={"tags": ["office", "cheap"]})
    assert patched.json() == {"name": "Pencil", "price": 1.0, "tags": ["office", "cheap"], "id": 4}

    deleted = crud.delete("/items/4")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert crud.get("/items/4").status_code == 404
    assert crud.get("/items").json()["total"] == 3


def test_not_found(crud: httpx.Client) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = {"name": "x", "price": 1} if method in ("PUT", "PATCH") else None
        response = crud.request(method, "/items/99", json=body)
        assert response.status_code == 404, method
        assert response.json() == {"detail": "Item 99 not found"}


def test_conflict(crud: httpx.Client) -> None:
    response = crud.post("/items", json={"name": "Mouse", "price": 1})
    assert response.status_code == 409
    assert response.json() == {"detail": "An item named 'Mouse' exists"}


@pytest.mark.parametrize(
    ("method", "url", "body", "location"),
    [
        ("POST", "/items", {"name": "", "price": 1}, ["body", "name"]),
        ("POST", "/items", {"name": "Cup", "price": 0}, ["body", "price"]),
        ("POST", "/items", {"price": 1}, ["body", "name"]),
        ("PUT", "/items/1", {"name": "Cup"}, ["body", "price"]),
        ("GET", "/items/abc", None, ["path", "item_id"]),
        ("GET", "/items?limit=0", None, ["query", "limit"]),
        ("GET", "/items?offset=-1", None, ["query", "offset"]),
    ],
)
def test_validation_errors(crud: httpx.Client, method: str, url: str, body: object, location: list[str]) -> None:
    response = crud.request(method, url, json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [location]


def test_invalid_json_body(crud: httpx.Client) -> None:
    response = crud.post("/items", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_cors(crud: httpx.Client) -> None:
    origin = {"Origin": "http://localhost:3000"}
    preflight = crud.options("/items", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    simple = crud.get("/health", headers=origin)
    assert simple.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = crud.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_openapi_lists_the_routes(crud: httpx.Client) -> None:
    schema = crud.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/items", "/items/{item_id}", "/health"}
    assert set(schema["paths"]["/items/{item_id}"]) == {"get", "put", "patch", "delete"}
