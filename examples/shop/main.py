"""The shop service. Serve it with ``fastrapi-compat run examples.shop.main:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from examples.shop.platform import PlatformApp, TimedRoute


class ItemIn(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class Item(ItemIn):
    id: int


class Database:
    """An in-memory stand-in for a real database."""

    def __init__(self) -> None:
        self.items: dict[int, Item] = {}

    def add(self, item: ItemIn) -> Item:
        stored = Item(id=len(self.items) + 1, **item.model_dump())
        self.items[stored.id] = stored
        return stored


def get_db(request: Request) -> Database:
    return request.app.state.db


async def pagination(
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, int]:
    return {"offset": offset, "limit": limit}


@asynccontextmanager
async def lifespan(app: PlatformApp) -> AsyncIterator[dict[str, Any]]:
    app.state.db = Database()
    app.state.db.add(ItemIn(name="starter", price=1.5))

    # Added while the app starts (as plugins and libraries do): served like the others.
    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    yield {"started_by": "lifespan"}


items = APIRouter(prefix="/items", tags=["items"])


@items.get("", response_model=list[Item])
async def list_items(
    db: Annotated[Database, Depends(get_db)], page: Annotated[dict[str, int], Depends(pagination)]
) -> Any:
    values = list(db.items.values())
    return values[page["offset"] : page["offset"] + page["limit"]]


@items.get("/{item_id}", response_model=Item)
async def read_item(item_id: int, db: Annotated[Database, Depends(get_db)]) -> Any:
    if item_id not in db.items:
        raise HTTPException(status_code=404, detail="Item not found", headers={"x-item": str(item_id)})
    return db.items[item_id]


@items.post("", response_model=Item, status_code=201)
async def create_item(item: ItemIn, db: Annotated[Database, Depends(get_db)]) -> Any:
    return db.add(item)


reports = APIRouter(prefix="/reports", route_class=TimedRoute)


@reports.get("/summary")
def summary(request: Request) -> dict[str, Any]:
    db: Database = request.app.state.db
    return {"items": len(db.items), "started_by": request.state.started_by}


app = PlatformApp(service="shop", lifespan=lifespan)
app.include_router(items)
app.include_router(reports)
