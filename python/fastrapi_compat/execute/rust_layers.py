"""Starlette's standard middleware run in Rust inside the app's Python middleware.

When native routes run under the app's own stack (a pure-ASGI class, ``BaseHTTPMiddleware``,
``@app.middleware("http")``...), each run of consecutive ``CORSMiddleware``, ``GZipMiddleware``,
``TrustedHostMiddleware``, ``HTTPSRedirectMiddleware`` and ``SessionMiddleware`` entries of
``user_middleware`` is replaced in that stack by one :class:`RustLayers`: the engine's own layer
code (``native/middleware``, the one the native tier runs) driven by the ASGI scope and
messages. The Python middleware outside see the scope and messages Starlette's classes would
have given them (the preflight answer, the CORS headers, the session cookie, the gzip'd body),
in the same order; a request the engine leaves to Starlette (``enter`` answers None) and every
non-``http`` scope goes through the original instances, which stay linked below it.

:func:`install` finds the runs in a stack built by Starlette's own ``build_middleware_stack``.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.exceptions import ExceptionMiddleware

from fastrapi_compat._native import LayerCall, MiddlewareStack
from fastrapi_compat.execute.call_next import DirectCallNext
from fastrapi_compat.plan.middleware import Layer

Message = dict[str, Any]


class RustLayers:
    """A run of native-capable middleware (``python``: its outermost instance, whose chain of
    ``app`` leads to ``last``, the innermost) served by the engine's ``stack``."""

    __slots__ = ("gzip", "last", "python", "responds", "sessions", "stack")

    def __init__(self, python: Any, last: Any, stack: MiddlewareStack, kinds: list[str]) -> None:
        self.python = python
        self.last = last
        self.stack = stack
        self.sessions = "session" in kinds
        self.gzip = "gzip" in kinds
        # TrustedHost and HTTPSRedirect alone leave the response as it is (no send wrapper)
        self.responds = bool({"cors", "gzip", "session"} & set(kinds))

    @property
    def app(self) -> Any:
        """The next layer down, shared with the Python instances (the stack is walked and
        relinked through ``app``)."""
        return self.last.app

    @app.setter
    def app(self, app: Any) -> None:
        self.last.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.python(scope, receive, send)
            return
        entered = self.stack.enter(scope)
        if entered is None:  # a case the engine leaves to Starlette's classes
            await self.python(scope, receive, send)
            return
        if type(entered) is list:  # answered by a layer: a preflight, a redirect, a 400
            for message in entered:
                await send(message)
            return
        if not self.responds:
            await self.last.app(scope, receive, send)
            return
        call: LayerCall = entered  # type: ignore[assignment]
        await self.last.app(scope, receive, _Responder(call, send, scope if self.sessions else None, self.gzip))


class _Responder:
    """The ``send`` the layers below get: each message through the response phases."""

    __slots__ = ("call", "gzip", "held", "scope", "send", "started")

    def __init__(self, call: LayerCall, send: Any, scope: dict[str, Any] | None, gzip: bool) -> None:
        self.call = call
        self.send = send
        self.scope = scope  # set when a SessionMiddleware reads scope["session"] at the start
        self.gzip = gzip
        self.held: Message | None = None
        self.started = False  # a GZipMiddleware acts on this response's body

    def _start(self, start: Message, body: bytes, more_body: bool) -> bytes:
        """The layers' response phase on ``start`` (its headers replaced in place), given the
        first body chunk; returns that chunk as the layers leave it (gzip'd or not)."""
        session = None if self.scope is None else self.scope["session"]
        start["headers"], out = self.call.start(start["status"], start["headers"], body, more_body, session)
        return out

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = message.setdefault("headers", [])
            if self.gzip and self.call.holds(message["status"], headers):
                self.held = message  # GZipMiddleware decides with the first body message
                return
            self._start(message, b"", True)
            await self.send(message)
        elif kind == "http.response.body":
            held = self.held
            if held is not None:
                self.held = None
                self.started = True
                body = message.get("body", b"")
                out = self._start(held, body, message.get("more_body", False))
                if out != body:
                    message["body"] = out
                await self.send(held)
                await self.send(message)
            elif self.started:  # GZipResponder's later chunks: always given a body
                message["body"] = self.call.chunk(message.get("body", b""), message.get("more_body", False))
                await self.send(message)
            else:
                await self.send(message)
        else:
            held = self.held
            if held is not None:  # e.g. pathsend: the start goes first, unchanged by GZip
                self.held = None
                self._start(held, b"", False)
                await self.send(held)
            await self.send(message)


def _chain(stack: Any, router: Any) -> list[Any]:
    """The stack's layers from the outside in, down to (not including) the router."""
    chain: list[Any] = []
    seen: set[int] = set()
    layer = stack
    while layer is not None and layer is not router and id(layer) not in seen:
        seen.add(id(layer))
        chain.append(layer)
        layer = getattr(layer, "app", None)
    return chain


Run = tuple[Any, Any, Any, list[Any]]  # (parent layer, outermost instance, innermost, specs)


def _runs(app: Any, layers: list[Layer]) -> list[Run] | None:
    """Where each run of native ``layers`` goes in the app's built stack, or None when the
    stack is not the one Starlette and FastAPI build for ``user_middleware`` (the entries in
    order, right outside its ``ExceptionMiddleware``) or already has them. Changes nothing."""
    router = getattr(app, "router", None)
    chain = _chain(app.middleware_stack, router)
    if any(type(layer) is RustLayers for layer in chain):
        return None
    entries = list(getattr(app, "user_middleware", None) or [])
    if len(entries) != len(layers) or not any(layer.spec is not None for layer in layers):
        return None
    bare = [layer.layer if type(layer) is DirectCallNext else layer for layer in chain]
    end = next((i for i, layer in enumerate(bare) if isinstance(layer, ExceptionMiddleware)), -1)
    first = end - len(entries)
    if first < 1:  # the entries sit right outside ExceptionMiddleware, inside another layer
        return None
    users = bare[first:end]
    for instance, entry, layer in zip(users, entries, layers):
        # a Python middleware given as a factory function makes an instance of any class; the
        # layers of each native run are Starlette's own classes, checked where they must be
        if type(instance) is not entry.cls and (layer.spec is not None or isinstance(entry.cls, type)):
            return None
    runs: list[Run] = []
    index = 0
    while index < len(layers):
        if layers[index].spec is None:
            index += 1
            continue
        stop = index
        while stop < len(layers) and layers[stop].spec is not None:
            stop += 1
        specs = [layer.spec for layer in layers[index:stop] if layer.spec is not None]
        parent = chain[first + index - 1]  # the layer whose app is the run's first instance
        runs.append((parent, users[index], users[stop - 1], specs))
        index = stop
    return runs


def placeable(app: Any, layers: list[Layer]) -> bool:
    """Whether :func:`install` puts (or has put) ``layers``' native runs in the app's built
    stack: when not, Starlette's own classes in it serve every request."""
    chain = _chain(app.middleware_stack, getattr(app, "router", None))
    return any(type(layer) is RustLayers for layer in chain) or bool(_runs(app, layers))


def install(app: Any, layers: list[Layer]) -> int:
    """Replaces each run of native ``layers`` (``user_middleware``'s, outermost first) in the
    app's built stack by a :class:`RustLayers`; returns how many runs. Nothing changes when
    :func:`_runs` finds no place for them."""
    runs = _runs(app, layers) or []
    for parent, outermost, innermost, specs in runs:
        parent.app = RustLayers(outermost, innermost, MiddlewareStack(specs), [spec[0] for spec in specs])
    return len(runs)
