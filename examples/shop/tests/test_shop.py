import asyncio

import httpx
from fastapi.testclient import TestClient

from examples.shop.main import Database, ItemIn, app, get_db


def test_platform_route(client: TestClient) -> None:
    assert client.get("/_platform").json() == {"service": "shop", "framework": "platform"}


def test_route_added_during_lifespan(client: TestClient) -> None:
    assert client.get("/ready").json() == {"ready": True}


def test_create_then_read(client: TestClient) -> None:
    created = client.post("/items", json={"name": "lamp", "price": 20, "tags": ["home"]})
    assert created.status_code == 201
    item = created.json()
    assert item == {"name": "lamp", "price": 20.0, "tags": ["home"], "id": item["id"]}
    assert client.get(f"/items/{item['id']}").json() == item


def test_validation_errors(client: TestClient) -> None:
    response = client.post("/items", json={"name": "", "price": -1})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "name"], ["body", "price"]]
    assert client.get("/items?limit=0").status_code == 422


def test_not_found_keeps_headers(client: TestClient) -> None:
    response = client.get("/items/999")
    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}
    assert response.headers["x-item"] == "999"


def test_dependency_override(client: TestClient) -> None:
    fake = Database()
    fake.add(ItemIn(name="fake", price=2))
    app.dependency_overrides[get_db] = lambda: fake
    try:
        assert [i["name"] for i in client.get("/items").json()] == ["fake"]
    finally:
        app.dependency_overrides.clear()
    assert "fake" not in [i["name"] for i in client.get("/items").json()]


def test_library_route_class_and_lifespan_state(client: TestClient) -> None:
    response = client.get("/reports/summary")
    assert response.headers["x-handled-by"] == "TimedRoute"
    assert response.json()["started_by"] == "lifespan"


def test_async_client_with_asgi_transport(client: TestClient, async_client: httpx.AsyncClient) -> None:
    async def main() -> list[int]:
        async with async_client as c:
            first = await c.get("/items/1")
            missing = await c.get("/items/12345")
            return [first.status_code, missing.status_code]

    assert asyncio.run(main()) == [200, 404]
