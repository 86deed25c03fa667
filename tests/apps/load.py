"""Small routes for the load test: each answer is derived from its request, so mix-ups show."""

from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel


class Payload(BaseModel):
    client: int
    seq: int
    text: str


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/async/{client}/{seq}")
    async def async_route(client: int, seq: int, tag: str = "") -> dict[str, Any]:
        return {"client": client, "seq": seq, "tag": tag, "sum": client * 1000 + seq}

    @app.get("/sync/{client}/{seq}")
    def sync_route(client: int, seq: int) -> dict[str, Any]:
        return {"client": client, "seq": seq, "kind": "sync"}

    @app.post("/echo")
    async def echo(payload: Payload) -> Payload:
        return payload

    @app.get("/conn/{client}/{seq}")
    async def conn(client: int, seq: int, request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"client": client, "seq": seq, "port": request.client.port}

    return app
