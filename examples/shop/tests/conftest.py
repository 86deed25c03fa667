from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from examples.shop.main import app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app) as client:  # runs the lifespan
        yield client


@pytest.fixture
def async_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test")
