"""Routing: route order, routers and mounts, redirect_slashes both ways, 404/405 with Allow, HEAD."""

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.routing import Route


def _routes(app: FastAPI) -> None:
    @app.get("/users/me")
    async def me() -> dict[str, str]:
        return {"user": "me"}

    @app.get("/users/{user_id}")
    async def user(user_id: str) -> dict[str, str]:
        return {"user": user_id}

    @app.get("/slash/")
    async def with_slash() -> dict[str, str]:
        return {"route": "with slash"}

    @app.get("/noslash")
    async def without_slash() -> dict[str, str]:
        return {"route": "without slash"}

    @app.post("/post-only/")
    async def post_only() -> dict[str, str]:
        return {"route": "post only"}

    @app.get("/methods")
    async def methods_get() -> dict[str, str]:
        return {"method": "GET"}

    @app.put("/methods")
    async def methods_put() -> dict[str, str]:
        return {"method": "PUT"}

    @app.api_route("/multi", methods=["GET", "POST", "DELETE"])
    async def multi(request: Request) -> dict[str, str]:
        return {"method": request.method}

    @app.api_route("/with-head", methods=["GET", "HEAD"])
    async def with_head() -> PlainTextResponse:
        return PlainTextResponse("body for GET and HEAD", headers={"X-Head": "1"})

    @app.options("/options")
    async def options() -> PlainTextResponse:
        return PlainTextResponse("", headers={"Allow": "OPTIONS, GET"})

    @app.patch("/patch/{n}")
    async def patch(n: int) -> dict[str, int]:
        return {"patched": n}

    async def starlette_endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"starlette route {request.method}")

    app.router.routes.append(Route("/starlette", starlette_endpoint, methods=["GET"]))

    router = APIRouter(prefix="/api/v1", tags=["v1"])

    @router.get("/things")
    async def things() -> list[int]:
        return [1, 2, 3]

    @router.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"thing": thing_id}

    @router.get("/")
    async def api_root() -> dict[str, str]:
        return {"api": "root"}

    nested = APIRouter(prefix="/nested")

    @nested.get("/deep/{a}/{b:path}")
    async def deep(a: str, b: str) -> dict[str, str]:
        return {"a": a, "b": b}

    router.include_router(nested)
    app.include_router(router)

    sub = FastAPI()

    @sub.get("/hello")
    async def sub_hello(request: Request) -> dict[str, str]:
        return {
            "sub": "hello",
            "root_path": request.scope.get("root_path", ""),
            "path": request.scope["path"],
            "url_for": str(request.url_for("sub_hello")),
        }

    app.mount("/sub", sub)

    async def raw_asgi(scope, receive, send):  # type: ignore[no-untyped-def]
        body = f"raw asgi {scope['method']} {scope['path']} root={scope.get('root_path', '')}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    app.mount("/raw", raw_asgi)


def create_app() -> FastAPI:
    app = FastAPI()
    _routes(app)
    return app


def create_app_no_redirect() -> FastAPI:
    app = FastAPI(redirect_slashes=False)
    _routes(app)
    return app
