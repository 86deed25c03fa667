"""Routes whose answers differ between FastAPI generations of request handling, each one a
shape flat plans take: defaults validated or not, an empty or type-less body, a response
model serialized to JSON bytes or to Python first, a lone parameter model, sync and async
endpoints, header aliases, list parameters, and dependency trees."""

from typing import Annotated

from fastapi import Body, Depends, FastAPI, Header, Query
from pydantic import BaseModel, Field


class Item(BaseModel):
    name: str
    price: float
    note: str | None = None


class Out(BaseModel):
    name: str
    price: float
    ratio: float = 0.5
    label: str = Field("x", alias="Label")
    note: str | None = None


class Paging(BaseModel):
    limit: int = Field(10, gt=0)
    offset: int = 0


def base(scale: float = 2) -> dict[str, float]:
    return {"scale": scale}


async def level(b: Annotated[dict[str, float], Depends(base)], step: int = 1) -> dict[str, object]:
    return {"base": b, "step": step}


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/defaults")
    async def defaults(ratio: float = 1, count: int = 3, flag: bool = 0, name: str | None = None) -> dict[str, object]:  # type: ignore[assignment]
        return {"ratio": ratio, "count": count, "flag": flag, "name": name}

    @app.get("/defaults-sync")
    def defaults_sync(ratio: float = 1, words: Annotated[list[str], Query()] = ["a"]) -> dict[str, object]:  # noqa: B006
        return {"ratio": ratio, "words": words}

    @app.get("/lists")
    async def lists(
        n: Annotated[list[int] | None, Query()] = None, x_tag: Annotated[list[str] | None, Header()] = None
    ) -> dict[str, object]:
        return {"n": n, "x_tag": x_tag}

    @app.get("/headers")
    async def headers(
        user_agent: Annotated[str, Header()] = "none", x_count: Annotated[int, Header()] = 0
    ) -> dict[str, object]:
        return {"ua": user_agent, "count": x_count}

    @app.post("/item")
    async def item(item: Item) -> Item:
        return item

    @app.post("/item-optional")
    async def item_optional(item: Item | None = None) -> dict[str, object]:
        return {"item": item}

    @app.post("/embedded")
    async def embedded(item: Annotated[Item, Body(embed=True)], count: Annotated[int, Body()] = 1) -> dict[str, object]:
        return {"item": item, "count": count}

    @app.post("/out", response_model=Out)
    async def out(item: Item) -> object:
        return {"name": item.name, "price": item.price, "Label": "é", "note": item.note}

    @app.post("/out-none", response_model=Out, response_model_exclude_none=True, status_code=201)
    async def out_none(item: Item) -> object:
        return {"name": item.name, "price": item.price, "note": item.note}

    @app.get("/out-sync", response_model=Out)
    def out_sync(price: float = 3) -> object:
        return {"name": "sync", "price": price}

    @app.get("/out-invalid", response_model=Out)
    async def out_invalid() -> object:
        return {"name": "bad"}

    @app.get("/paging")
    async def paging(p: Annotated[Paging, Query()]) -> Paging:
        return p

    @app.get("/deps")
    async def deps(
        value: Annotated[dict[str, object], Depends(level)], again: Annotated[dict[str, float], Depends(base)]
    ) -> dict[str, object]:
        return {"value": value, "again": again}

    @app.get("/deps-sync")
    def deps_sync(b: Annotated[dict[str, float], Depends(base)]) -> dict[str, object]:
        return {"b": b}

    return app
