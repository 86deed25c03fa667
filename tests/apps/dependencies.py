"""Dependencies: yield (sync and async, both scopes), caching, classes, security, background tasks.

Each app instance records events in ``app.state`` so tests can observe, through a second
request, what ran after the response (yield exits, background tasks).
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    Security,
)
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
    SecurityScopes,
)


class Pagination:
    def __init__(self, skip: int = 0, limit: Annotated[int, Query(le=50)] = 10) -> None:
        self.skip = skip
        self.limit = limit


def create_app() -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()
    events: dict[str, list[str]] = {}
    counters: dict[str, int] = {"calls": 0}

    def record(key: str, event: str) -> None:
        with lock:
            events.setdefault(key, []).append(event)

    def request_key(x_key: Annotated[str, Header()] = "default") -> str:
        return x_key

    def sync_resource(key: Annotated[str, Depends(request_key)]) -> Iterator[str]:
        record(key, "sync enter")
        try:
            yield "sync-resource"
        except HTTPException as exc:
            record(key, f"sync saw HTTPException {exc.status_code}")
            raise
        finally:
            record(key, "sync exit")

    async def async_resource(
        key: Annotated[str, Depends(request_key)],
        sync_value: Annotated[str, Depends(sync_resource)],
    ) -> AsyncIterator[str]:
        record(key, f"async enter after {sync_value}")
        try:
            yield "async-resource"
        finally:
            await asyncio.sleep(0)
            record(key, "async exit")

    async def function_scoped(
        key: Annotated[str, Depends(request_key)],
    ) -> AsyncIterator[str]:
        record(key, "function enter")
        yield "function-scoped"
        record(key, "function exit")

    @app.get("/yield")
    async def yield_route(
        key: Annotated[str, Depends(request_key)],
        value: Annotated[str, Depends(async_resource)],
    ) -> dict[str, Any]:
        record(key, "endpoint")
        return {"value": value, "events_so_far": list(events.get(key, []))}

    @app.get("/yield-sync-endpoint")
    def yield_sync_endpoint(
        key: Annotated[str, Depends(request_key)],
        value: Annotated[str, Depends(sync_resource)],
    ) -> dict[str, Any]:
        record(key, "sync endpoint")
        return {"value": value}

    @app.get("/yield-function-scope")
    async def yield_function_scope(
        key: Annotated[str, Depends(request_key)],
        value: Annotated[str, Depends(function_scoped, scope="function")],
    ) -> dict[str, Any]:
        record(key, "endpoint")
        return {"value": value}

    @app.get("/yield-http-error")
    async def yield_http_error(
        key: Annotated[str, Depends(request_key)],
        value: Annotated[str, Depends(sync_resource)],
    ) -> None:
        record(key, "endpoint raising")
        raise HTTPException(status_code=409, detail=f"conflict with {value}")

    @app.get("/events/{key}")
    def get_events(key: str) -> list[str]:
        with lock:
            return list(events.get(key, []))

    def counted() -> int:
        counters["calls"] += 1
        return counters["calls"]

    def uses_counted(n: Annotated[int, Depends(counted)]) -> int:
        return n

    @app.get("/cache")
    def cache(
        a: Annotated[int, Depends(counted)],
        b: Annotated[int, Depends(uses_counted)],
        c: Annotated[int, Depends(counted, use_cache=False)],
    ) -> dict[str, bool]:
        return {"a_is_b": a == b, "c_is_new": c == a + 1}

    @app.get("/class-dep")
    async def class_dep(page: Annotated[Pagination, Depends()]) -> dict[str, int]:
        return {"skip": page.skip, "limit": page.limit}

    def verify_token(x_token: Annotated[str, Header()]) -> None:
        if x_token != "secret":
            raise HTTPException(status_code=400, detail="X-Token header invalid")

    @app.get("/guarded", dependencies=[Depends(verify_token)])
    async def guarded() -> dict[str, str]:
        return {"guarded": "ok"}

    bearer = HTTPBearer()
    basic = HTTPBasic()
    api_key = APIKeyHeader(name="X-API-Key")
    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"read": "Read", "write": "Write"})

    @app.get("/bearer")
    async def bearer_route(
        creds: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    ) -> dict[str, str]:
        return {"scheme": creds.scheme, "token": creds.credentials}

    @app.get("/basic")
    async def basic_route(
        creds: Annotated[HTTPBasicCredentials, Depends(basic)],
    ) -> dict[str, str]:
        return {"username": creds.username, "password": creds.password}

    @app.get("/api-key")
    async def api_key_route(key: Annotated[str, Depends(api_key)]) -> dict[str, str]:
        return {"key": key}

    def scoped_user(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> dict[str, Any]:
        return {"token": token, "scopes": security_scopes.scopes}

    @app.get("/oauth2")
    async def oauth2_route(
        user: Annotated[dict[str, Any], Security(scoped_user, scopes=["read"])],
    ) -> dict[str, Any]:
        return user

    def write_record(key: str, message: str) -> None:
        record(key, f"task: {message}")

    async def async_write_record(key: str, message: str) -> None:
        await asyncio.sleep(0)
        record(key, f"async task: {message}")

    def task_in_dependency(background_tasks: BackgroundTasks, key: Annotated[str, Depends(request_key)]) -> str:
        background_tasks.add_task(write_record, key, "from dependency")
        return key

    @app.post("/background/{message}")
    async def background(
        message: str,
        background_tasks: BackgroundTasks,
        key: Annotated[str, Depends(task_in_dependency)],
    ) -> dict[str, str]:
        background_tasks.add_task(write_record, key, message)
        background_tasks.add_task(async_write_record, key, message)
        return {"scheduled": message}

    @app.get("/request-info/{item}")
    async def request_info(item: str, request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {
            "url": str(request.url),
            "base_url": str(request.base_url),
            "path": request.url.path,
            "query": request.url.query,
            "scheme": request.url.scheme,
            "hostname": request.url.hostname,
            "method": request.method,
            "client_host": request.client.host,
            "path_params": request.path_params,
            "query_params": list(request.query_params.multi_items()),
            "headers": list(request.headers.items()),
            "http_version": request.scope["http_version"],
            "type": request.scope["type"],
            "asgi_version": request.scope["asgi"]["version"],
            "root_path": request.scope.get("root_path"),
            "server_host": request.scope["server"][0] if request.scope.get("server") else None,
            "url_for": str(request.url_for("request_info", item="other")),
        }

    @app.get("/request-sync")
    def request_sync(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {
            "client_host": request.client.host,
            "url": str(request.url),
            "thread_ok": True,
        }

    return app
