"""An app written against ``fastrapi_compat`` (the one-import change), not plain ``fastapi``."""

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field

from fastrapi_compat import (
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
)


class Order(BaseModel):
    item: str
    quantity: int = Field(gt=0)
    note: str | None = None


class OrderOut(BaseModel):
    id: int
    item: str
    quantity: int


def get_db() -> dict[int, OrderOut]:
    return {1: OrderOut(id=1, item="apple", quantity=3)}


def current_user(x_user: Annotated[str | None, Header()] = None) -> str:
    if x_user is None:
        raise HTTPException(
            status_code=401,
            detail="who are you?",
            headers={"WWW-Authenticate": "X-User"},
        )
    return x_user


def _routes(app: FastAPI) -> None:
    @app.get("/")
    async def root() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/sync")
    def sync_root() -> dict[str, str]:
        return {"hello": "sync"}

    @app.get("/orders/{order_id}", response_model=OrderOut)
    def get_order(order_id: int, db: Annotated[dict[int, OrderOut], Depends(get_db)]) -> Any:
        if order_id not in db:
            raise HTTPException(status_code=404, detail="order not found")
        return db[order_id]

    @app.post("/orders", status_code=201)
    async def create_order(order: Order, user: Annotated[str, Depends(current_user)]) -> dict[str, Any]:
        return {"order": order, "by": user}

    @app.get("/search")
    async def search(q: Annotated[list[str] | None, Query()] = None, limit: int = 10) -> dict[str, Any]:
        return {"q": q, "limit": limit}

    @app.get("/whoami")
    async def whoami(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
        return {"user": user}

    @app.get("/request")
    async def request_route(request: Request, response: Response) -> dict[str, Any]:
        response.headers["X-Seen-Path"] = request.url.path
        assert request.client is not None
        return {"client": request.client.host, "query": str(request.query_params)}


def create_app() -> FastAPI:
    app = FastAPI(title="compat")
    _routes(app)
    return app


def create_app_with_middleware() -> FastAPI:
    """User middleware in Python around the routes: ``@app.middleware("http")`` and pure ASGI."""
    app = FastAPI(title="compat with middleware")
    _routes(app)

    @app.middleware("http")
    async def add_header(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Handled-By"] = "http-middleware"
        assert time.perf_counter() >= started
        return response

    class RequestIdMiddleware:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return

            async def send_with_id(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message.setdefault("headers", [])
                    message["headers"] = [
                        *message["headers"],
                        (b"x-request-path", scope["path"].encode()),
                    ]
                await send(message)

            await self.app(scope, receive, send_with_id)

    app.add_middleware(RequestIdMiddleware)
    return app
