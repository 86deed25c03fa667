"""OpenAPI schema and the docs pages, plus a route that reports where it thinks it is (root_path)."""

from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Body,
    Depends,
    FastAPI,
    File,
    Form,
    Header,
    Path,
    Query,
    Request,
    UploadFile,
)
from fastapi.security import HTTPBearer, OAuth2PasswordBearer
from pydantic import BaseModel, Field


class Kind(str, Enum):
    book = "book"
    film = "film"


class Tag(BaseModel):
    name: str = Field(description="Tag name", examples=["classic"])


class Thing(BaseModel):
    """A thing, described."""

    id: int
    name: str = Field(min_length=1, max_length=50)
    kind: Kind = Kind.book
    tags: list[Tag] = []
    rating: float | None = Field(default=None, ge=0, le=5)
    meta: dict[str, Any] = {}
    status: Literal["new", "old"] = "new"


class Error(BaseModel):
    message: str


def create_app() -> FastAPI:
    app = FastAPI(
        title="Differential API",
        version="1.2.3",
        description="Schema **compared** byte for byte \u2603",
        openapi_tags=[{"name": "things", "description": "Things and stuff"}],
        swagger_ui_parameters={"deepLinking": False},
    )
    bearer = HTTPBearer(auto_error=False)
    oauth2 = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False)
    router = APIRouter(prefix="/things", tags=["things"], responses={404: {"model": Error}})

    @router.get("/", summary="List things")
    async def list_things(
        kind: Kind | None = None,
        limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 10,
    ) -> list[Thing]:
        return []

    @router.post(
        "/",
        status_code=201,
        response_model=Thing,
        response_description="The created thing",
    )
    async def create_thing(
        thing: Annotated[Thing, Body(examples=[{"id": 1, "name": "Dune"}])],
    ) -> Any:
        return thing

    @router.get("/{thing_id}", deprecated=True)
    async def get_thing(
        thing_id: Annotated[int, Path(title="The ID", gt=0)],
        creds: Annotated[Any, Depends(bearer)],
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> Thing:
        return Thing(id=thing_id, name="x")

    @router.put("/{thing_id}/cover", openapi_extra={"x-custom": {"a": 1}})
    async def upload_cover(thing_id: int, cover: UploadFile, caption: Annotated[str, Form()] = "") -> dict[str, str]:
        return {}

    @router.post("/{thing_id}/raw")
    async def raw_file(thing_id: int, data: Annotated[bytes, File()]) -> dict[str, int]:
        return {"size": len(data)}

    app.include_router(router)

    @app.get("/private", include_in_schema=False)
    async def private() -> dict[str, str]:
        return {"private": "yes"}

    @app.get("/me", tags=["users"], operation_id="read_me")
    async def me(
        token: Annotated[str | None, Depends(oauth2)],
    ) -> dict[str, str | None]:
        return {"token": token}

    @app.get("/where/{part}")
    async def where(part: str, request: Request) -> dict[str, Any]:
        return {
            "url": str(request.url),
            "base_url": str(request.base_url),
            "root_path": request.scope.get("root_path"),
            "scope_path": request.scope["path"],
            "url_for": str(request.url_for("where", part="x")),
            "url_path_for": request.app.url_path_for("where", part="y"),
        }

    return app


def create_app_without_docs() -> FastAPI:
    app = FastAPI(openapi_url=None)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return app
