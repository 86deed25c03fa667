"""A realistic CRUD app: ``fastrapi-compat run examples.crud:app``.

Written as any FastAPI app is (routers, pydantic models, ``Depends`` with ``yield``,
``HTTPException``, CORS, lifespan state); only the ``FastAPI`` import comes from
fastrapi_compat. The "database" is an in-memory store, seeded at startup, and each request
gets a session that undoes its writes if the request fails.
"""

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel, Field

from fastrapi_compat import FastAPI


class ItemIn(BaseModel):
    """What a client sends to create or replace an item."""

    name: str = Field(min_length=1, max_length=100)
    price: float = Field(gt=0)
    tags: list[str] = Field(default_factory=list)


class ItemPatch(BaseModel):
    """A partial update: only the fields sent are changed."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    price: float | None = Field(default=None, gt=0)
    tags: list[str] | None = None


class Item(ItemIn):
    """An item as stored and returned."""

    id: int


class ItemPage(BaseModel):
    """One page of a listing."""

    items: list[Item]
    total: int
    offset: int
    limit: int


class Store:
    """A thread-safe in-memory table of items (sync endpoints run in a thread pool)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[int, Item] = {}
        self.next_id = 1

    def insert(self, data: ItemIn) -> Item:
        with self.lock:
            item = Item(id=self.next_id, **data.model_dump())
            self.rows[item.id] = item
            self.next_id += 1
            return item


class Session:
    """A unit of work over the store: writes apply at once and are undone on failure."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.undo: list[Callable[[], None]] = []

    def find(self, tag: str | None) -> list[Item]:
        with self.store.lock:
            items = sorted(self.store.rows.values(), key=lambda item: item.id)
        return [item for item in items if tag is None or tag in item.tags]

    def get(self, item_id: int) -> Item | None:
        with self.store.lock:
            return self.store.rows.get(item_id)

    def add(self, data: ItemIn) -> Item:
        item = self.store.insert(data)
        self.undo.append(lambda: self._remove(item.id))
        return item

    def put(self, item: Item) -> None:
        with self.store.lock:
            previous = self.store.rows.get(item.id)
            self.store.rows[item.id] = item
        if previous is not None:
            self.undo.append(lambda: self.put(previous))

    def delete(self, item: Item) -> None:
        self._remove(item.id)
        self.undo.append(lambda: self.put(item))

    def rollback(self) -> None:
        while self.undo:
            self.undo.pop()()

    def _remove(self, item_id: int) -> None:
        with self.store.lock:
            self.store.rows.pop(item_id, None)


SEED = [
    ItemIn(name="Keyboard", price=49.5, tags=["hardware"]),
    ItemIn(name="Mouse", price=19.99, tags=["hardware"]),
    ItemIn(name="Editor licence", price=120.0, tags=["software"]),
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    store = Store()
    for data in SEED:
        store.insert(data)
    yield {"store": store}  # lifespan state: copied into every request's ``request.state``


def get_session(request: Request) -> Iterator[Session]:
    """The "database session" dependency: undo this request's writes if it fails."""
    session = Session(request.state.store)
    try:
        yield session
    except Exception:
        session.rollback()
        raise


SessionDep = Annotated[Session, Depends(get_session)]


def get_item_or_404(item_id: int, session: SessionDep) -> Item:
    item = session.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail=f"Item {item_id} not found")
    return item


ItemDep = Annotated[Item, Depends(get_item_or_404)]

router = APIRouter(prefix="/items", tags=["items"])


@router.get("", response_model=ItemPage)
def list_items(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    tag: str | None = None,
) -> ItemPage:
    items = session.find(tag)
    return ItemPage(items=items[offset : offset + limit], total=len(items), offset=offset, limit=limit)


@router.post("", response_model=Item, status_code=status.HTTP_201_CREATED)
def create_item(data: ItemIn, session: SessionDep) -> Item:
    if any(item.name == data.name for item in session.find(None)):
        raise HTTPException(status_code=409, detail=f"An item named {data.name!r} exists")
    return session.add(data)


@router.get("/{item_id}", response_model=Item)
def read_item(item: ItemDep) -> Item:
    return item


@router.put("/{item_id}", response_model=Item)
def replace_item(item: ItemDep, data: ItemIn, session: SessionDep) -> Item:
    updated = Item(id=item.id, **data.model_dump())
    session.put(updated)
    return updated


@router.patch("/{item_id}", response_model=Item)
def update_item(item: ItemDep, patch: ItemPatch, session: SessionDep) -> Item:
    updated = item.model_copy(update=patch.model_dump(exclude_unset=True))
    session.put(updated)
    return updated


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_item(item: ItemDep, session: SessionDep) -> Response:
    session.delete(item)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


app = FastAPI(title="Inventory", version="1.0.0", lifespan=lifespan)
app.add_middleware(
    CORSMiddleware,
    allow_origins=["http://localhost:3000"],
    allow_methods=["*"],
    allow_headers=["*"],
)
app.include_router(router)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    app.run()
