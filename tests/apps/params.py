"""Path, query, header and cookie parameters: conversion, aliases, lists, validation errors."""

import enum
import uuid
from typing import Annotated

from fastapi import Cookie, FastAPI, Header, Path, Query, Request
from pydantic import BaseModel, Field


class Color(str, enum.Enum):
    red = "red"
    green = "green"


class FilterParams(BaseModel):
    limit: int = Field(10, gt=0, le=100)
    offset: int = 0
    tags: list[str] = []


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int, q: str | None = None, short: bool = False) -> dict[str, object]:
        return {"item_id": item_id, "q": q, "short": short}

    @app.get("/floats/{value}")
    async def floats(value: float) -> dict[str, float]:
        return {"value": value}

    @app.get("/names/{name}")
    async def names(name: str) -> dict[str, str]:
        return {"name": name}

    @app.get("/files/{file_path:path}")
    async def files(file_path: str) -> dict[str, str]:
        return {"file_path": file_path}

    @app.get("/uuids/{ident}")
    async def uuids(ident: uuid.UUID) -> dict[str, str]:
        return {"ident": str(ident), "version": str(ident.version)}

    @app.get("/conv-int/{n:int}")
    async def conv_int(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/colors/{color}")
    async def colors(color: Color) -> dict[str, str]:
        return {"color": color.value}

    @app.get("/bounded/{n}")
    async def bounded(n: Annotated[int, Path(ge=1, le=10)]) -> dict[str, int]:
        return {"n": n}

    @app.get("/users/{user_id}/posts/{post_id}")
    async def user_post(user_id: int, post_id: str) -> dict[str, object]:
        return {"user_id": user_id, "post_id": post_id}

    @app.get("/search")
    async def search(
        q: Annotated[str, Query(min_length=2, max_length=10)],
        page: int = 1,
        size: Annotated[int, Query(alias="page-size")] = 20,
        exact: bool = False,
    ) -> dict[str, object]:
        return {"q": q, "page": page, "size": size, "exact": exact}

    @app.get("/tags")
    async def tags(
        tag: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
        n: Annotated[list[int] | None, Query()] = None,
    ) -> dict[str, object]:
        return {"tag": tag, "n": n}

    @app.get("/last")
    async def last(v: str) -> dict[str, str]:
        return {"v": v}

    @app.get("/filters")
    async def filters(f: Annotated[FilterParams, Query()]) -> FilterParams:
        return f

    @app.get("/raw-query")
    async def raw_query(request: Request) -> dict[str, object]:
        return {
            "query": request.url.query,
            "items": request.query_params.multi_items(),
            "path": request.url.path,
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "scope_path": request.scope["path"],
        }

    @app.get("/echo-path/{rest:path}")
    async def echo_path(rest: str, request: Request) -> dict[str, str]:
        return {
            "rest": rest,
            "scope_path": request.scope["path"],
            "raw_path": request.scope["raw_path"].decode("latin-1"),
        }

    @app.get("/headers")
    async def headers(
        user_agent: Annotated[str | None, Header()] = None,
        x_token: Annotated[str | None, Header()] = None,
        x_tag: Annotated[list[str] | None, Header()] = None,
        strange_header: Annotated[str | None, Header(convert_underscores=False)] = None,
        aliased: Annotated[str | None, Header(alias="X-Custom-Alias")] = None,
    ) -> dict[str, object]:
        return {
            "user_agent": user_agent,
            "x_token": x_token,
            "x_tag": x_tag,
            "strange_header": strange_header,
            "aliased": aliased,
        }

    @app.get("/required-header")
    async def required_header(x_api_key: Annotated[str, Header()]) -> dict[str, str]:
        return {"x_api_key": x_api_key}

    @app.get("/int-header")
    async def int_header(x_count: Annotated[int, Header()]) -> dict[str, int]:
        return {"x_count": x_count}

    @app.get("/cookies")
    async def cookies(
        session: Annotated[str | None, Cookie()] = None,
        theme: Annotated[str, Cookie(alias="ui-theme")] = "light",
        visits: Annotated[int | None, Cookie()] = None,
    ) -> dict[str, object]:
        return {"session": session, "theme": theme, "visits": visits}

    @app.get("/required-cookie")
    async def required_cookie(token: Annotated[str, Cookie()]) -> dict[str, str]:
        return {"token": token}

    @app.get("/mixed/{kind}")
    def mixed(
        kind: Color,
        limit: Annotated[int, Query(gt=0)],
        x_trace: Annotated[str, Header()],
        sid: Annotated[str, Cookie()],
    ) -> dict[str, object]:
        return {"kind": kind, "limit": limit, "x_trace": x_trace, "sid": sid}

    return app
