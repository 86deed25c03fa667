"""The FastrAPI 0.2.11 equivalent of :mod:`bench.apps.fastapi_app` (FastrAPI's own API).

Same paths, parameters, bodies and answers. Every endpoint and dependency is a ``def``:
in FastrAPI 0.2.11 ``async def`` endpoints answer 500, so ``/plain`` here is not the
``async def`` it is in the FastAPI app (the table says so).

FastrAPI has no ASGI interface; it serves itself::

    python -m bench.apps.fastrapi_app --host 127.0.0.1 --port 8000 [--extra-routes 10]
"""

import argparse
from typing import Optional

from fastrapi import Depends, FastrAPI
from pydantic import BaseModel

DEFAULT_EXTRA_ROUTES = 10


class ItemIn(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class ItemOut(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


def get_settings():
    return {"page_size": 25}


def get_paging(page: int = 1, settings: dict = Depends(get_settings)):  # noqa: B008
    return {"page": page, "size": settings["page_size"]}


def get_db():
    return {"dsn": "sqlite:///bench.db"}


def get_user(user: str = "anon", db: dict = Depends(get_db)):  # noqa: B008
    return {"name": user, "db": db["dsn"]}


def _add_extra_routes(app: FastrAPI, count: int) -> None:
    for index in range(count):
        if index % 2 == 0:

            def static_route():
                return {"route": "static"}

            static_route.__name__ = f"static_route_{index}"
            app.get(f"/extra/{index}")(static_route)
        else:

            def param_route(item_id: int):
                return {"item_id": item_id}

            param_route.__name__ = f"param_route_{index}"
            app.get(f"/extra/{index}/{{item_id}}")(param_route)


def create_app(extra_routes: int = DEFAULT_EXTRA_ROUTES) -> FastrAPI:
    app = FastrAPI(title="fastrapi-compat benchmark")
    _add_extra_routes(app, extra_routes)

    @app.get("/plain")
    def plain():  # async def in the FastAPI app; 500s in FastrAPI 0.2.11
        return {"message": "Hello, World", "ok": True}

    @app.get("/sync")
    def sync():
        return {"message": "Hello from a thread", "ok": True}

    @app.get("/items/{item_id}")
    def read_item(item_id: int, q: Optional[str] = None, limit: int = 10):  # noqa: UP045
        return {"item_id": item_id, "q": q, "limit": limit}

    @app.post("/items", response_model=ItemOut)
    def create_item(item: ItemIn):
        return {"id": 1, "name": item.name, "price": item.price, "tags": item.tags}

    @app.get("/deps")
    def deps(paging: dict = Depends(get_paging)):  # noqa: B008
        return paging

    @app.get("/deps-def")
    def deps_def(current: dict = Depends(get_user)):  # noqa: B008
        return current

    @app.get("/big")
    def big():
        return [{"id": i, "name": f"item-{i}", "price": i * 1.25, "active": i % 2 == 0} for i in range(100)]

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the FastrAPI benchmark app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--extra-routes", type=int, default=DEFAULT_EXTRA_ROUTES)
    args = parser.parse_args()
    create_app(args.extra_routes).serve(args.host, args.port)


if __name__ == "__main__":
    main()
