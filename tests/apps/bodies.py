"""Request bodies: JSON models, forms, multipart uploads, big and chunked bodies, request.stream()."""

import hashlib
from typing import Annotated, Any

from fastapi import Body, FastAPI, File, Form, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field


class Image(BaseModel):
    url: str
    name: str | None = None


class Item(BaseModel):
    name: str
    price: float = Field(gt=0)
    tags: list[str] = []
    image: Image | None = None
    description: str | None = None


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    full_name: str = Field(alias="fullName")
    age: int


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: int


class Login(BaseModel):
    username: str
    password: str
    remember: bool = False


def _digest(data: bytes) -> dict[str, Any]:
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class EchoBody(Exception):
    """Raised after the body was read: its handler reads the body again from the request."""


def create_app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(EchoBody)
    async def echo_body(request: Request, exc: EchoBody) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse({"raw": (await request.body()).decode(), "json": await request.json()}, status_code=409)

    @app.post("/echo-in-handler")
    async def echo_in_handler(item: Item) -> None:
        raise EchoBody()

    @app.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"item": item.model_dump(), "total": item.price * 2}

    @app.put("/items/{item_id}")
    def update_item(item_id: int, item: Item, importance: Annotated[int, Body()] = 1) -> dict[str, Any]:
        return {"item_id": item_id, "item": item, "importance": importance}

    @app.post("/embed")
    async def embed(item: Annotated[Item, Body(embed=True)]) -> Item:
        return item

    @app.post("/aliased")
    async def aliased(person: Aliased) -> dict[str, Any]:
        return {
            "by_alias": person.model_dump(by_alias=True),
            "plain": person.model_dump(),
        }

    @app.post("/strict")
    async def strict(body: Strict) -> Strict:
        return body

    @app.post("/any-json")
    async def any_json(payload: Annotated[Any, Body()]) -> dict[str, Any]:
        return {"payload": payload, "type": type(payload).__name__}

    @app.post("/list-body")
    async def list_body(items: list[Item]) -> dict[str, int]:
        return {"count": len(items)}

    @app.post("/dict-body")
    async def dict_body(weights: dict[int, float]) -> dict[int, float]:
        return weights

    @app.post("/optional-body")
    async def optional_body(item: Item | None = None) -> dict[str, Any]:
        return {"item": item}

    @app.post("/form")
    async def form(
        username: Annotated[str, Form()],
        age: Annotated[int, Form()] = 0,
        hobby: Annotated[list[str], Form()] = [],  # noqa: B006
    ) -> dict[str, Any]:
        return {"username": username, "age": age, "hobby": hobby}

    @app.post("/form-model")
    async def form_model(data: Annotated[Login, Form()]) -> Login:
        return data

    @app.post("/file-bytes")
    async def file_bytes(file: Annotated[bytes, File()]) -> dict[str, Any]:
        return _digest(file)

    @app.post("/upload")
    async def upload(file: UploadFile) -> dict[str, Any]:
        content = await file.read()
        return {
            "filename": file.filename,
            "content_type": file.content_type,
            "size": file.size,
            "headers": [[k, v] for k, v in file.headers.items()],
            **_digest(content),
        }

    @app.post("/upload-sync")
    def upload_sync(file: UploadFile) -> dict[str, Any]:
        content = file.file.read()
        return {"filename": file.filename, **_digest(content)}

    @app.post("/uploads")
    async def uploads(
        files: list[UploadFile],
        note: Annotated[str, Form()],
        flag: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        out = []
        for upload in files:
            out.append({"filename": upload.filename, **_digest(await upload.read())})
        return {"note": note, "flag": flag, "files": out}

    @app.post("/optional-upload")
    async def optional_upload(file: UploadFile | None = None) -> dict[str, Any]:
        if file is None:
            return {"file": None}
        return {"file": file.filename}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {
            "content_type": request.headers.get("content-type"),
            "content_length": request.headers.get("content-length"),
            "transfer_encoding": request.headers.get("transfer-encoding"),
            **_digest(body),
        }

    @app.post("/stream")
    async def stream(request: Request) -> dict[str, Any]:
        digest = hashlib.sha256()
        total = 0
        async for chunk in request.stream():
            assert isinstance(chunk, bytes)
            digest.update(chunk)
            total += len(chunk)
        return {"length": total, "sha256": digest.hexdigest()}

    @app.post("/json-after-body")
    async def json_after_body(request: Request) -> dict[str, Any]:
        body = await request.body()
        data = await request.json()
        return {"length": len(body), "data": data}

    @app.post("/echo-bytes")
    async def echo_bytes(request: Request) -> Any:
        from fastapi import Response

        return Response(await request.body(), media_type="application/octet-stream")

    return app
