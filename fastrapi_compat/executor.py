"""The native tier's executor: serves one request of a native route without Starlette's
middleware chain, router scan or ASGI response messages.

What runs is still FastAPI's own code: the route's request handler, the very function FastAPI
built for the route (body reading, dependencies, validation, the endpoint, serialization), taken
from ``route.app``. Around it this module does, in this order and with the same semantics, what
the layers between the server and that handler would have done for the request: Starlette's
``ServerErrorMiddleware`` (FastAPI's 500), ``ExceptionMiddleware`` and the exception wrapper of
``request_response`` (every ``app.exception_handlers`` entry, by status code and by class), the
``AsyncExitStack`` scopes FastAPI's handler expects, and the router's scope keys. A response whose
body is known (``Response`` and its plain subclasses: JSON, HTML, text, redirects) is handed to
the engine in one call; any other response (streaming, files) is sent through ``send``.

Which apps and routes qualify is decided by :mod:`fastrapi_compat.compiler`; a request for
anything else never reaches this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response

from fastrapi_compat import internals

Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], None]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_plain_call = Response.__call__

RESPONSE_NOT_AWAITED = (
    "Response not awaited. There's a high chance that the "
    "application code is raising an exception and a dependency with yield "
    "has a block with a bare except, or a block with except Exception, "
    "and is not raising the exception again. Read more about it in the "
    "docs: https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/#dependencies-with-yield-and-except"
)


class AppRuntime:
    """What every native request of one app shares: the exception tables exactly as the app's
    middleware stack would have built them (with Starlette's own classes)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.router = app.router
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in app.exception_handlers.items():  # as FastAPI.build_middleware_stack
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        tables = ExceptionMiddleware(app=None, handlers=handlers, debug=app.debug)  # type: ignore[arg-type]
        self.exception_handlers = tables._exception_handlers
        self.status_handlers = tables._status_handlers
        self.server_errors = ServerErrorMiddleware(app=None, handler=error_handler, debug=app.debug)  # type: ignore[arg-type]
        self.telemetry_enabled = internals.telemetry_probe(app)

    def lookup_handler(self, exc: Exception) -> Any:
        """The handler Starlette's exception wrapper would pick for ``exc``, or None."""
        handler = None
        if isinstance(exc, HTTPException):
            handler = self.status_handlers.get(exc.status_code)
        if handler is None:
            for cls in type(exc).__mro__:
                if cls in self.exception_handlers:
                    return self.exception_handlers[cls]
        return handler


class Plan:
    """One native route: its FastAPI handler and the scope keys the router would have set."""

    __slots__ = ("runtime", "route", "route_like", "route_app", "handler", "endpoint", "convertors", "index")

    def __init__(self, runtime: AppRuntime, route: Any, route_like: Any, handler: Any, index: int) -> None:
        self.runtime = runtime
        self.route = route  # the APIRoute (``scope["route"]``)
        self.route_like = route_like
        self.route_app = internals.route_app(route_like)  # checked per request: still the same?
        self.handler = handler
        self.endpoint = route_like.endpoint
        self.convertors = dict(route_like.param_convertors)
        self.index = index

    def path_params(self, raw: dict[str, str]) -> dict[str, Any]:
        convertors = self.convertors
        return {name: convertors[name].convert(value) for name, value in raw.items()}


class NativeCall:
    """One request on a native route. ``scope`` is the request's full ASGI scope (built by the
    engine, adjusted by the listener's handler); ``respond`` answers with a whole response in
    one call (None: every response goes through ``send``); ``send`` is ASGI ``send``."""

    __slots__ = ("plan", "scope", "receive", "send", "respond", "started")

    def __init__(self, plan: Plan, scope: dict[str, Any], receive: Any, send: Send, respond: Respond | None) -> None:
        self.plan = plan
        self.scope = scope
        self.receive = receive
        self.send = send
        self.respond = respond
        self.started = False

    async def tracking_send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def send_response(self, response: Response) -> None:
        if self.respond is not None and type(response).__call__ is _plain_call:
            self.started = True
            self.respond(response.status_code, response.raw_headers, response.body)
            if response.background is not None:
                await response.background()
        else:
            await response(self.scope, self.receive, self.tracking_send)


def prepare_scope(plan: Plan, scope: dict[str, Any], raw_params: dict[str, str]) -> None:
    """The keys Starlette's app, router and matched route add to the scope."""
    runtime = plan.runtime
    scope["app"] = runtime.app
    scope["starlette.exception_handlers"] = (runtime.exception_handlers, runtime.status_handlers)
    if "router" not in scope:
        scope["router"] = runtime.router
    scope["endpoint"] = plan.endpoint
    scope["path_params"] = plan.path_params(raw_params)
    scope["route"] = plan.route


async def run(call: NativeCall) -> None:
    """Serves ``call`` as the app's middleware stack and router would have."""
    runtime = call.plan.runtime
    try:
        try:  # ExceptionMiddleware
            async with AsyncExitStack() as middleware_stack:  # AsyncExitStackMiddleware
                call.scope["fastapi_middleware_astack"] = middleware_stack
                request = Request(call.scope, call.receive, call.tracking_send)
                try:  # request_response's exception wrapper
                    await _handle(call, request)
                except Exception as exc:
                    await _handled(call, request, exc)
        except Exception as exc:
            await _handled(call, Request(call.scope, call.receive, call.tracking_send), exc)
    except Exception as exc:  # ServerErrorMiddleware
        request = Request(call.scope)
        errors = runtime.server_errors
        if errors.debug:
            response = await run_in_threadpool(errors.debug_response, request, exc)
        elif errors.handler is None:
            response = errors.error_response(request, exc)
        elif internals.is_async_callable(errors.handler):
            response = await errors.handler(request, exc)
        else:
            response = await run_in_threadpool(errors.handler, request, exc)
        if not call.started:
            await response(call.scope, call.receive, call.send)
        raise exc


async def _handle(call: NativeCall, request: Request) -> None:
    """FastAPI's ``request_response``: the handler between its two exit stacks."""
    scope = call.scope
    response_awaited = False
    async with AsyncExitStack() as request_stack:
        scope["fastapi_inner_astack"] = request_stack
        async with AsyncExitStack() as function_stack:
            scope["fastapi_function_astack"] = function_stack
            response = await call.plan.handler(request)
        await call.send_response(response)
        response_awaited = True
    if not response_awaited:
        raise internals.FastAPIError(RESPONSE_NOT_AWAITED)


async def _handled(call: NativeCall, request: Request, exc: Exception) -> None:
    """Starlette's exception wrapper: answers with the app's handler for ``exc``, or re-raises."""
    handler = call.plan.runtime.lookup_handler(exc)
    if handler is None:
        raise exc
    if call.started:
        raise RuntimeError("Caught handled exception, but response already started.") from exc
    if internals.is_async_callable(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    if response is not None:
        await call.send_response(response)
    exc.__traceback__ = None
