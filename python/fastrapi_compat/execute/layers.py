"""The layers around a native route's handler, with Starlette's and FastAPI's semantics:
``ServerErrorMiddleware`` (FastAPI's 500, the debug page, the exception re-raised for the
server or test client), ``ExceptionMiddleware`` and ``request_response``'s exception wrapper
(every ``app.exception_handlers`` entry, by status code and by class), and the
``AsyncExitStack`` scopes FastAPI's handler expects.

What runs inside is FastAPI's own request handler for the route (taken from ``route.app``) or,
when the route has one, its flat plan (:mod:`fastrapi_compat.execute.flat`). A response whose
body is known goes to the engine in one ``respond`` call; others are sent through ``send``.
Which routes qualify is decided by :mod:`fastrapi_compat.plan.compiler`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fastrapi_compat.execute.call import NativeCall
from fastrapi_compat.execute.flat import answer_flat
from fastrapi_compat.plan import internals

Undefined = internals.Undefined


RESPONSE_NOT_AWAITED = (
    "Response not awaited. There's a high chance that the "
    "application code is raising an exception and a dependency with yield "
    "has a block with a bare except, or a block with except Exception, "
    "and is not raising the exception again. Read more about it in the "
    "docs: https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/#dependencies-with-yield-and-except"
)


async def run(call: NativeCall, resume: Resume | None = None) -> None:
    """Serves ``call`` as the app's middleware stack and router would have; ``resume``: what
    :func:`run_sync` left of it (the request's flat plan already ran on a pool thread)."""
    try:
        await _run(call, resume)
    finally:
        # The Request holds ``call.tracking_send``, a method of ``call``: without this, every
        # request would leave a reference cycle for the garbage collector.
        call.request = None


async def _run(call: NativeCall, resume: Resume | None) -> None:
    runtime = call.plan.runtime
    flat = call.plan.flat
    if flat is not None and flat.overridden():
        flat = None  # FastAPI's own solver applies the overrides
    try:
        if resume is not None:
            if resume.session_error is not None:
                raise resume.session_error
        elif runtime.native_sessions and call.protocol is not None:
            error = call.protocol.session_error()  # SessionMiddleware, opening the session
            if error is not None:
                raise error
        if flat is not None or resume is not None:
            try:  # ExceptionMiddleware, and request_response's wrapper: the same handlers
                if resume is None:
                    await answer_flat(call, flat)  # type: ignore[arg-type]
                elif resume.exc is not None:
                    raise resume.exc
                else:
                    await call.send_response(resume.response)  # type: ignore[arg-type]
            except Exception as exc:
                try:
                    await _handled(call, call.conn(), exc)
                except Exception as again:
                    await _handled(call, Request(call.scope, call.receive, call.tracking_send), again)
            return
        try:  # ExceptionMiddleware
            async with AsyncExitStack() as middleware_stack:  # AsyncExitStackMiddleware
                if internals.MIDDLEWARE_ASTACK_KEY is not None:
                    call.scope[internals.MIDDLEWARE_ASTACK_KEY] = middleware_stack
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
        response: Any
        handler: Any = errors.handler
        if errors.debug:
            response = await run_in_threadpool(errors.debug_response, request, exc)
        elif handler is None:
            response = errors.error_response(request, exc)
        elif internals.is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if not call.started:
            if call.protocol is not None:
                call.protocol.skip_middleware()
            await response(call.scope, call.receive, call.send)
        raise exc


async def run_route(call: NativeCall, flat: bool = True) -> None:
    """Serves ``call`` as the router and the matched route would have, inside the app's own
    middleware stack (see :mod:`fastrapi_compat.execute.under`): ``request_response`` and its
    exception wrapper; what no handler takes goes on to the app's ``ExceptionMiddleware``, its
    Python middleware and ``ServerErrorMiddleware``, as from the route. ``flat``: the route's
    flat plan may be used (else FastAPI's own handler runs, e.g. for its telemetry's spans)."""
    plan = call.plan.flat if flat else None
    if plan is not None and plan.overridden():
        plan = None  # FastAPI's own solver applies the overrides
    try:
        if plan is not None:
            if call.plan.kind == "fastapi":  # the exit stacks request_response adds (empty here)
                scope = call.scope
                scope["fastapi_inner_astack"] = AsyncExitStack()
                scope["fastapi_function_astack"] = AsyncExitStack()
            try:
                await answer_flat(call, plan)
            except Exception as exc:
                await _handled(call, call.conn(), exc)
            return
        request = Request(call.scope, call.receive, call.tracking_send)
        try:
            await _handle(call, request)
        except Exception as exc:
            await _handled(call, request, exc)
    finally:
        call.request = None


class Resume:
    """What :func:`run_sync` leaves to the loop: the error ``SessionMiddleware`` met opening
    the session, an exception the flat plan raised, or a response that must be sent with
    ``await`` (a streaming or file response, or one with background tasks)."""

    __slots__ = ("exc", "response", "session_error")

    def __init__(
        self,
        *,
        exc: BaseException | None = None,
        response: Response | None = None,
        session_error: BaseException | None = None,
    ) -> None:
        self.exc = exc
        self.response = response
        self.session_error = session_error


async def _handle(call: NativeCall, request: Request) -> None:
    """FastAPI's ``request_response``: the handler between its two exit stacks (Starlette's
    has none)."""
    scope = call.scope
    if call.plan.kind == "starlette":
        await call.send_response(await call.plan.handler(request))
        return
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
    handler = call.lookup_handler(exc)
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
