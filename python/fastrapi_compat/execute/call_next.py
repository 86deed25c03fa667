"""``BaseHTTPMiddleware`` (and ``@app.middleware("http")``) around native routes, with a
``call_next`` that costs a task and a few futures instead of an anyio task group and memory
object streams per request (and a task group per ``receive``).

:class:`DirectCallNext` takes the place of a ``BaseHTTPMiddleware`` in the app's own stack
(:func:`fastrapi_compat.execute.under.install`); a request the engine matched to a native route
gets :func:`serve`, anything else the middleware's own ``__call__``. :func:`serve` is Starlette's
``BaseHTTPMiddleware.__call__`` (1.10, checked by source digest in
:func:`fastrapi_compat.plan.internals.direct_call_next`) step by step, with the same semantics:
the user's ``dispatch(request, call_next)`` runs in the caller's task with Starlette's own
``_CachedRequest``; ``call_next`` starts the rest of the stack in a task of its own (a copy of the
context, as a task group's ``start_soon``) and returns Starlette's ``_StreamingResponse`` once
the response starts; each message the app sends waits until it is taken (a zero-size channel),
the last body until the middleware's response has been sent, so background tasks and exit stacks
run after it; ``receive`` answers ``http.disconnect`` once that response is sent; an exception the
app raises before its response reaches ``dispatch`` through ``call_next``, one raised later is
raised when the middleware ends; if ``dispatch`` or sending fails, the app's task is cancelled
through an anyio cancel scope (shields hold, as in the task group) and awaited.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections import deque
from collections.abc import AsyncGenerator, Generator
from typing import Any

import anyio

from fastrapi_compat.execute.match import MATCH
from fastrapi_compat.plan import internals

DISCONNECT = {"type": "http.disconnect"}
#: The name anyio's ``start_soon`` gives the task Starlette starts.
TASK_NAME = "starlette.middleware.base.BaseHTTPMiddleware.__call__.<locals>.call_next.<locals>.coro"
#: The names Starlette's ``receive`` and ``send`` for the rest of the stack have: an SDK may name
#: what it records after them (Sentry's middleware spans for ``receive`` and ``send``).
RECEIVE_QUALNAME = "BaseHTTPMiddleware.__call__.<locals>.call_next.<locals>.receive_or_disconnect"
SEND_QUALNAME = "BaseHTTPMiddleware.__call__.<locals>.call_next.<locals>.send_no_error"


class DirectCallNext:
    """A ``BaseHTTPMiddleware`` layer of the app's stack (``layer``): native requests are served
    by ``call`` (:func:`serve`, or a known SDK wrapper of the layer's ``__call__`` around it, see
    :func:`fastrapi_compat.plan.internals.direct_call_next`), others by the layer itself."""

    __slots__ = ("call", "layer")

    def __init__(self, layer: Any, call: Any = None) -> None:
        self.layer = layer
        self.call = serve if call is None else call

    @property
    def app(self) -> Any:
        """The next layer down (the stack is walked through ``app``, as each layer has one)."""
        return self.layer.app

    @app.setter
    def app(self, app: Any) -> None:
        self.layer.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        matched = MATCH.get()
        if scope["type"] != "http" or matched is None or matched.used or not _on_asyncio():
            await self.layer(scope, receive, send)
            return
        await self.call(self.layer, scope, receive, send)


def _on_asyncio() -> bool:
    """Whether an asyncio loop runs this (a test transport may run the app on trio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _Channel:
    """A zero-size channel from the app's task to the middleware, as Starlette's memory object
    stream: :meth:`put` returns once the message is taken (at once when the middleware already
    waits for one) and raises ``BrokenResourceError`` once the middleware closed its side;
    :meth:`take` raises ``EndOfStream`` once the app's side ended."""

    __slots__ = ("closed", "ended", "loop", "messages", "putter", "taker")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.messages: deque[dict[str, Any]] = deque()
        self.taker: asyncio.Future[None] | None = None  # the middleware, waiting for a message
        self.putter: asyncio.Future[None] | None = None  # the app, waiting for its message to go
        self.ended = False  # the app's side closed: no more messages
        self.closed = False  # the middleware's side closed: messages are refused

    async def put(self, message: dict[str, Any]) -> None:
        if self.closed:
            await asyncio.sleep(0)  # a checkpoint, as anyio's send: an app sending in a loop lets others run
            raise anyio.BrokenResourceError
        self.messages.append(message)
        taker = self.taker
        if taker is not None:
            self.taker = None
            if not taker.done():
                taker.set_result(None)
                return  # handed straight to a waiting taker
        putter = self.putter = self.loop.create_future()
        try:
            await putter
        finally:
            self.putter = None

    async def take(self) -> dict[str, Any]:
        while not self.messages:
            if self.ended:
                raise anyio.EndOfStream
            taker = self.taker = self.loop.create_future()
            try:
                await taker
            finally:
                if self.taker is taker:
                    self.taker = None
        message = self.messages.popleft()
        putter = self.putter
        if putter is not None and not putter.done():
            putter.set_result(None)
        return message

    def end(self) -> None:
        """The app's side is done."""
        self.ended = True
        taker = self.taker
        if taker is not None and not taker.done():
            taker.set_result(None)

    def close(self) -> None:
        """The middleware's side is done: a waiting or later :meth:`put` fails."""
        self.closed = True
        self.messages.clear()
        putter = self.putter
        if putter is not None and not putter.done():
            putter.set_exception(anyio.BrokenResourceError())


def _is_last(message: dict[str, Any]) -> bool:
    kind = message["type"]
    return kind == "http.response.pathsend" or (kind == "http.response.body" and not message.get("more_body", False))


def _pending(awaited: Any) -> bool:
    return isinstance(awaited, asyncio.Future) and not awaited.done()


@types.coroutine
def _race(coro: Any, awaited: Any, sent: asyncio.Future[None]) -> Generator[Any, Any, Any]:
    """Runs the rest of ``coro`` (a receive, suspended on ``awaited``) in the current task, as
    Starlette's task group runs it beside ``response_sent.wait()``: once the response is sent
    first, the receive is cancelled (and again at each wait, as anyio's cancellation is) and
    None returned; what the receive returns otherwise."""
    loop = sent.get_loop()
    while True:
        error: BaseException | None = None
        if not isinstance(awaited, asyncio.Future):  # a bare yield: give the loop a turn
            try:
                yield awaited
            except BaseException as exc:
                error = exc
        elif not sent.done() and not awaited.done():
            wake: asyncio.Future[None] = loop.create_future()

            def woken(_: Any, wake: asyncio.Future[None] = wake) -> None:
                if not wake.done():
                    wake.set_result(None)

            awaited.add_done_callback(woken)
            sent.add_done_callback(woken)
            try:
                yield from wake
            except BaseException as exc:  # this task is cancelled: so is the receive
                error = exc
            finally:
                awaited.remove_done_callback(woken)
                sent.remove_done_callback(woken)
        if error is None and sent.done() and _pending(awaited):
            error = asyncio.CancelledError()
            while True:  # the response went out first: the receive is cancelled
                try:
                    awaited = coro.throw(error)
                except (StopIteration, asyncio.CancelledError):
                    return None
                yield awaited
        try:
            awaited = coro.send(None) if error is None else coro.throw(error)
        except StopIteration as stop:
            return stop.value


class _Downstream:
    """The rest of the stack, run by ``call_next`` in a task of its own inside an anyio cancel
    scope (the task group's, for the app's task), and waited for at the end."""

    __slots__ = ("cancel_scope", "finished", "task")

    task: asyncio.Task[None]

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.cancel_scope: anyio.CancelScope | None = None
        #: Set by the task itself as it ends (sooner than its done callbacks, a loop turn later).
        self.finished: asyncio.Future[None] = loop.create_future()

    def start(self, coro: Any) -> None:
        loop = self.finished.get_loop()
        if sys.version_info >= (3, 12):  # runs at once up to its first wait, as call_next then waits
            self.task = asyncio.Task(coro, loop=loop, name=TASK_NAME, eager_start=True)
        else:
            self.task = loop.create_task(coro, name=TASK_NAME)

    def ended(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def cancel(self) -> None:
        """As the task group cancels its tasks: through the scope (shields hold)."""
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()
        else:  # not started yet: no scope to cancel, nothing of it ran
            self.task.cancel()
            self.task.add_done_callback(lambda _: self.ended())

    async def wait(self) -> None:
        """Waits for the task as the task group's exit does: if the middleware's task is
        cancelled meanwhile, the app's task is cancelled too and still waited for, and the
        cancellation goes on once it is done. A ``BaseException`` the app's task let through
        (an ``Exception`` it keeps) is raised here."""
        cancelled: BaseException | None = None
        task = self.task
        while not task.done():
            if self.finished.done():  # set a moment before the task is done
                await asyncio.sleep(0)
                continue
            try:
                await self.finished
            except asyncio.CancelledError as exc:  # awaiting cancelled our future: make another
                cancelled = exc
                self.finished = task.get_loop().create_future()
                self.cancel()
                if task.done():
                    break
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error
        if cancelled is not None:
            raise cancelled


async def serve(layer: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``BaseHTTPMiddleware.__call__`` for a native request (see the module's docstring)."""
    request = internals.CachedRequest(scope, receive, send)
    wrapped_receive = request.wrapped_receive
    loop = asyncio.get_running_loop()
    channel = _Channel(loop)
    sent: asyncio.Future[None] = loop.create_future()  # the middleware's response was sent
    app_exc: Exception | None = None
    exception_already_raised = False
    running: _Downstream | None = None
    downstream = layer.app

    async def receive_or_disconnect() -> dict[str, Any]:
        if sent.done():
            return DISCONNECT
        coro = wrapped_receive()
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            message: dict[str, Any] = stop.value
        else:  # the body has to be waited for: race it with the response being sent
            message = await _race(coro, waiting, sent)
        if sent.done():
            return DISCONNECT
        return message

    async def send_no_error(message: dict[str, Any]) -> None:
        try:
            await channel.put(message)
        except anyio.BrokenResourceError:
            return  # the middleware's response was sent
        if _is_last(message):
            await sent

    receive_or_disconnect.__qualname__ = RECEIVE_QUALNAME
    send_no_error.__qualname__ = SEND_QUALNAME

    async def coro() -> None:
        nonlocal app_exc
        assert running is not None
        try:
            with anyio.CancelScope() as running.cancel_scope:
                try:
                    await downstream(scope, receive_or_disconnect, send_no_error)
                except Exception as exc:
                    app_exc = exc
        finally:
            channel.end()
            running.ended()

    async def call_next(request: Any) -> Any:
        nonlocal running, exception_already_raised
        running = _Downstream(loop)
        running.start(coro())
        try:
            info = None
            while True:
                message = await channel.take()
                if message["type"] == "http.response.debug":
                    info = message["info"]
                    continue
                if message["type"] == "http.response.early_hint":
                    await send(message)
                    continue
                break
        except anyio.EndOfStream:
            if app_exc is not None:
                exception_already_raised = True
                raise app_exc from app_exc.__cause__ or app_exc.__context__
            raise RuntimeError("No response returned.")  # noqa: B904 - Starlette's, with its context
        assert message["type"] == "http.response.start"

        async def body_stream() -> AsyncGenerator[Any, None]:
            while True:
                try:
                    message = await channel.take()
                except anyio.EndOfStream:
                    return
                if message["type"] == "http.response.pathsend":
                    yield message
                    return
                assert message["type"] == "http.response.body", f"Unexpected message: {message}"
                body = message.get("body", b"")
                if body:
                    yield body
                if not message.get("more_body", False):
                    return

        response = internals.BaseStreamingResponse(status_code=message["status"], content=body_stream(), info=info)
        response.raw_headers = message.get("headers", [])
        return response

    try:
        response = await layer.dispatch_func(request, call_next)
        await response(scope, wrapped_receive, send)
    except BaseException as exc:
        channel.close()
        if not sent.done():
            sent.set_result(None)
        if running is not None:
            running.cancel()
            await running.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        context = None if exc.__suppress_context__ else exc.__context__  # the task group's, collapsed
        raise exc from exc.__cause__ or context
    sent.set_result(None)
    channel.close()
    if running is not None:
        await running.wait()
    if app_exc is not None and not exception_already_raised:
        raise app_exc
