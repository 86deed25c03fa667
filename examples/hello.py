"""The smallest app: ``fastrapi-compat run examples.hello:app``.

The only difference from a stock FastAPI app is the import of ``FastAPI``.
"""

from fastrapi_compat import FastAPI

app = FastAPI(title="Hello")


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Hello, world"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, int | str | None]:
    return {"item_id": item_id, "q": q}


if __name__ == "__main__":
    app.run()
