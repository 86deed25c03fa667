"""The request object of the native tier: :class:`NativeCall`, one request of a native route
(its lazily made scope, the engine's request, ``send``/``respond``), and :func:`prepare_scope`,
the scope keys Starlette's app, router and route would have set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from fastrapi_compat._native import HTTPProtocol
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.plans import lookup_handler

if TYPE_CHECKING:
    from fastrapi_compat.plan.plans import Plan

Undefined = internals.Undefined


Respond = Callable[[int, list[tuple[bytes, bytes]], Any], None]


Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


plain_call = Response.__call__


class NativeCall:
    """One request on a native route. ``scope`` is the request's full ASGI scope (built by the
    engine, adjusted by the listener's handler), or made by ``make_scope(call)`` the first time
    it is needed: a flat plan that reads only path and plain query parameters never needs it.
    ``respond`` answers with a whole response in one call (None: every response goes through
    ``send``); ``send`` is ASGI ``send``; ``protocol`` is the engine's request when the engine
    may run the app's middleware around it (None otherwise): ``ServerErrorMiddleware``'s 500
    skips them, and an error the session middleware met opening the session is raised where
    Starlette raises it."""

    __slots__ = (
        "_scope",
        "body",
        "make_scope",
        "path_params",
        "plan",
        "protocol",
        "receive",
        "request",
        "respond",
        "send",
        "started",
    )

    def __init__(
        self,
        plan: Plan,
        scope: dict[str, Any] | None,
        receive: Any,
        send: Send,
        respond: Respond | None,
        protocol: HTTPProtocol | None,
        path_params: dict[str, Any] | None = None,
        make_scope: Callable[[NativeCall], dict[str, Any]] | None = None,
    ) -> None:
        self.plan = plan
        self.protocol = protocol
        self._scope = scope
        self.make_scope = make_scope
        self.path_params: dict[str, Any] = scope.get("path_params", {}) if scope is not None else path_params  # type: ignore[assignment]
        self.receive = receive
        self.send = send
        self.respond = respond
        self.started = False
        self.request: Request | None = None  # the Request a flat plan made, if any
        self.body: bytes | None = None  # the body, when taken whole from the engine

    @property
    def scope(self) -> dict[str, Any]:
        scope = self._scope
        if scope is None:
            assert self.make_scope is not None
            scope = self._scope = self.make_scope(self)
            self.make_scope = None
        return scope

    def query_string(self) -> bytes:
        if self._scope is None and self.protocol is not None:
            return self.protocol.query_string
        return self.scope["query_string"]  # type: ignore[no-any-return]

    def method_and_root(self) -> tuple[str, str]:
        if self._scope is None and self.protocol is not None:
            return self.protocol.method, self.protocol.root_path
        scope = self.scope
        return scope["method"], scope.get("root_path", "")

    def header(self, name: str) -> str | None:
        """``request.headers.get(name)`` (``name`` in lower case)."""
        if self._scope is None and self.protocol is not None:
            return self.protocol.header(name)
        return self.conn().headers.get(name)

    def take_body(self) -> bytes | None:
        """The whole body when the engine has already read it (then ``conn()`` gives a
        ``Request`` with that body, as the one FastAPI's handler read would be), else None."""
        if self.protocol is None or self.request is not None:
            return None
        body = self.body = self.protocol.take_body()
        return body

    def conn(self) -> Request:
        """The ``Request`` exception handlers get: the one the route used, as in
        ``request_response`` (its body already read), else a new one."""
        if self.request is None:
            request = self.request = Request(self.scope, self.receive, self.tracking_send)
            if self.body is not None:
                internals.set_request_body(request, self.body)
        return self.request

    def lookup_handler(self, exc: Exception) -> Any:
        """The handler Starlette's exception wrapper picks for ``exc``, or None: from the
        tables in the scope (the app's ``ExceptionMiddleware`` put its own there), else the
        plan's (the same tables, when the engine stood in for that middleware)."""
        scope = self._scope
        tables = scope.get("starlette.exception_handlers") if scope is not None else None
        if tables is None:
            return self.plan.runtime.lookup_handler(exc)
        return lookup_handler(tables[0], tables[1], exc)

    async def tracking_send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def send_response(self, response: Response) -> None:
        if self.respond is not None and type(response).__call__ is plain_call:
            self.started = True
            self.respond(response.status_code, response.raw_headers, response.body)
            if response.background is not None:
                await response.background()
        else:
            await response(self.scope, self.receive, self.tracking_send)


def prepare_scope(
    plan: Plan,
    scope: dict[str, Any],
    raw_params: dict[str, str] | None,
    path_params: dict[str, Any] | None = None,
    *,
    under: bool = False,
) -> None:
    """The keys Starlette's app, router and matched route add to the scope (``path_params``:
    the converted ``raw_params``, when already made). ``under``: the app's own stack ran
    (under :mod:`fastrapi_compat.execute.under`) and set the app and its
    ``ExceptionMiddleware``'s handler tables (an SDK may have wrapped them: Sentry does)."""
    runtime = plan.runtime
    if not under:
        scope["app"] = runtime.app
        scope["starlette.exception_handlers"] = (runtime.exception_handlers, runtime.status_handlers)
    if "router" not in scope:
        scope["router"] = runtime.router
    if plan.fastapi_scope is not None and internals.SCOPE_KEY is not None:
        scope.setdefault(internals.SCOPE_KEY, {}).update(plan.fastapi_scope)
    if not plan.matched:  # no route: the router sets nothing more before its 404 or redirect
        return
    scope["endpoint"] = plan.endpoint
    scope["path_params"] = path_params if path_params is not None else plan.path_params(raw_params or {})
    if plan.route is not None:
        scope["route"] = plan.route
