"""Apps whose Python middleware are not plain classes with an ``app`` attribute: what the
engine makes of their built stack (:func:`fastrapi_compat.execute.under.fit`) must be what it
does and what ``explain`` says.

- ``create_factory``: a Python middleware added as a factory function (Starlette takes any
  callable), outside ``CORSMiddleware``: CORS runs in Rust inside it.
- ``create_two_layer_factory``: a factory making two nested layers, inside ``CORSMiddleware``:
  the stack is not laid out as ``user_middleware`` says, so CORS stays in Python (Starlette's).
- ``create_hidden_app``: a pure-ASGI class keeping its app as ``self.inner``: the native router
  cannot be put under it, so the whole app is served by the ASGI tier.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ORIGIN = "https://app.example"


class Tag:
    """A pure-ASGI middleware adding ``x-tag: <name>`` to each HTTP response."""

    def __init__(self, app: Any, name: str = "tag") -> None:
        self.app = app
        self.name = name.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-tag", self.name))
            await send(message)

        await self.app(scope, receive, tagged)


class HiddenApp:
    """Like :class:`Tag`, but the next app is ``self.inner``: nothing walks through it."""

    def __init__(self, app: Any) -> None:
        self.inner = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await Tag(self.inner, "hidden")(scope, receive, send)


def make_tag(app: Any) -> Tag:
    return Tag(app, "factory")


def make_two_tags(app: Any) -> Tag:
    return Tag(Tag(app, "inner"), "outer")


#: Starlette's CORSMiddleware with its options, as ``add_middleware`` takes them.
CORS = (CORSMiddleware, {"allow_origins": [ORIGIN], "allow_methods": ["GET"]})


def _app(*middleware: Any) -> FastAPI:
    """An app with ``middleware`` (a factory, or a class and its options) added in order:
    the last one outermost."""
    app = FastAPI()
    for entry in middleware:
        factory, options = entry if isinstance(entry, tuple) else (entry, {})
        app.add_middleware(factory, **options)

    @app.get("/item")
    async def item() -> dict[str, int]:
        return {"id": 1}

    return app


def create_factory() -> FastAPI:
    return _app(CORS, make_tag)


def create_two_layer_factory() -> FastAPI:
    return _app(make_two_tags, CORS)


def create_hidden_app() -> FastAPI:
    return _app(CORS, HiddenApp)


factory = create_factory()
two_layer_factory = create_two_layer_factory()
hidden_app = create_hidden_app()
