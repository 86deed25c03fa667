"""Errors: HTTPException with headers, custom handlers by class and by status code, 500s."""

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class TeapotError(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


class SubTeapotError(TeapotError):
    pass


class UnhandledError(Exception):
    pass


def create_app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(TeapotError)
    async def teapot_handler(request: Request, exc: TeapotError) -> JSONResponse:
        return JSONResponse(
            status_code=418,
            content={"message": f"{exc.name} is a teapot", "path": request.url.path},
            headers={"X-Teapot": exc.name},
        )

    @app.exception_handler(409)
    async def conflict_handler(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse(f"conflict handler: {exc.detail}", status_code=409)

    @app.exception_handler(404)
    async def not_found_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"custom_404": request.url.path, "detail": exc.detail}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {
                "errors": [{"loc": list(e["loc"]), "type": e["type"]} for e in exc.errors()],
                "custom": True,
            },
            status_code=400,
        )

    @app.get("/http-exception")
    async def http_exception() -> None:
        raise HTTPException(
            status_code=400,
            detail="bad thing",
            headers={"X-Error": "There goes my error"},
        )

    @app.get("/http-exception-dict")
    async def http_exception_dict() -> None:
        raise HTTPException(status_code=422, detail={"code": 7, "items": ["a", "\u00e9"]})

    @app.get("/http-exception-401")
    def http_exception_401() -> None:
        raise HTTPException(
            status_code=401,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.get("/http-exception-no-detail")
    async def http_exception_no_detail() -> None:
        raise HTTPException(status_code=503)

    @app.get("/http-exception-204")
    async def http_exception_204() -> None:
        raise HTTPException(status_code=204)

    @app.get("/http-exception-304")
    async def http_exception_304() -> None:
        raise HTTPException(status_code=304, headers={"ETag": '"v1"'})

    @app.get("/starlette-exception")
    async def starlette_exception() -> None:
        raise StarletteHTTPException(status_code=403, detail="starlette says no")

    @app.get("/conflict")
    async def conflict() -> None:
        raise HTTPException(status_code=409, detail="already exists")

    @app.get("/raise-404")
    async def raise_404() -> None:
        raise HTTPException(status_code=404, detail="item gone")

    @app.get("/teapot/{name}")
    async def teapot(name: str) -> None:
        raise TeapotError(name)

    @app.get("/sub-teapot")
    def sub_teapot() -> None:
        raise SubTeapotError("subclass")

    @app.get("/validate/{n}")
    async def validate(n: int, q: int = 0) -> dict[str, int]:
        return {"n": n, "q": q}

    @app.get("/unhandled")
    async def unhandled() -> None:
        raise UnhandledError("boom")

    @app.get("/unhandled-sync")
    def unhandled_sync() -> None:
        raise ZeroDivisionError("sync boom")

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    def failing_dependency() -> None:
        raise HTTPException(status_code=403, detail="dependency refused", headers={"X-Dep": "1"})

    @app.get("/dependency-error", dependencies=[Depends(failing_dependency)])
    async def dependency_error() -> None:
        return None

    return app


def create_app_with_500_handler() -> FastAPI:
    """An ``Exception`` handler becomes ServerErrorMiddleware's handler (the error still propagates)."""
    app = FastAPI()

    @app.exception_handler(Exception)
    async def everything(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=500)

    @app.get("/unhandled")
    async def unhandled() -> None:
        raise UnhandledError("custom 500")

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return app
