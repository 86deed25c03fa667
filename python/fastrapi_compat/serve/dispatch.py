"""The one dispatcher: for each request or websocket the engine hands over, decides how it is
served — by a native plan on the loop, by a native plan on the thread pool, by a native plan
under the app's own middleware stack (:mod:`fastrapi_compat.execute.under`), or by the app's
own ASGI stack — and runs it, one task each.

The server and every test transport go through :class:`Dispatcher`. What the test side adds
(the promises a client made, the outcome it waits for) comes in through one hook,
:meth:`Dispatcher.watch`, which returns a :class:`Watch` for the request, or None in
production: the decisions themselves are never taken anywhere else.
"""

from __future__ import annotations

import asyncio
import contextvars
import http
import logging
import os
import sys
from asyncio import current_task
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from fastrapi_compat._native import ClientDisconnected, Engine, HTTPProtocol, WebSocketProtocol
from fastrapi_compat.execute.call import NativeCall, prepare_scope
from fastrapi_compat.execute.flat import Lead, answer_flat, direct_flat
from fastrapi_compat.execute.hop import thread_error
from fastrapi_compat.execute.layers import Resume, run
from fastrapi_compat.execute.match import MATCH, Matched
from fastrapi_compat.execute.offload import run_sync
from fastrapi_compat.execute.params import solve_lead
from fastrapi_compat.execute.under import UnderStack, install
from fastrapi_compat.plan.flat import FlatPlan, Node
from fastrapi_compat.plan.plans import Plan
from fastrapi_compat.serve.pool import pool_for

if TYPE_CHECKING:
    from fastrapi_compat.plan.live import NativeApp

ASGIApp = Any

#: Reason phrases of the status line, as uvicorn writes them (the engine takes this table).
STATUS_PHRASES: dict[int, str] = {status.value: status.phrase for status in http.HTTPStatus}

#: Why a request the mirror sent to a native route is served by the app's stack when the
#: client runs the app itself and the engine would have run the app's middleware in Rust.
HANDOFF_WITH_NATIVE_MIDDLEWARE = "the app's middleware run in Rust, and this client runs the app itself"


def drain(engine: Engine, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """The loop's reader callback on the engine's wake fd (``loop``: the loop it is a reader
    of, so that no task start looks it up: on Python 3.11 each look-up of the running loop is a
    ``getpid`` system call): hands each new protocol object
    to the handler of the listener it arrived on, then schedules the flush of the responses
    made on the loop: it runs after the new tasks' first steps, in the same loop iteration,
    and carries every response they made there (an endpoint that answers without waiting is
    answered one loop iteration sooner, and no response schedules a flush of its own). None
    is scheduled when every request went to the pool first (no response is made on the loop
    in this iteration; one made later schedules its own)."""
    answers = False
    for protocol in engine.drain():
        if protocol.handler.spawn(protocol, loop):
            answers = True
    if answers:
        engine.flush_soon()


class Watch:
    """What the test side knows of one request and records of it (see :meth:`Dispatcher.watch`).

    ``scope``: the scope the app sees, made at once (the client's promises applied);
    ``context``: the contextvars the app runs in a copy of (None: the loop's);
    ``native``: whether the route the mirror matched may be used (False when the client
    promised another path than the one the engine parsed); ``handoff``: the caller runs the
    app itself (:meth:`hand_off`); ``reports``: the client reads the outcome (exceptions and
    unfinished responses are its to report, not the server log's)."""

    scope: dict[str, Any]
    context: contextvars.Context | None = None
    native: bool = True
    handoff: bool = False
    reports: bool = False

    def hand_off(self, protocol: HTTPProtocol, native: ASGIApp | None) -> bool:
        """Gives the request to the caller, with the native route's ASGI app (``native``) to
        run instead of the app when set; False when the caller is gone."""
        raise NotImplementedError

    def recording(self, send: Any) -> Any:
        """``send`` as the app gets it (HTTP)."""
        return send

    def responding(self, respond: Any) -> Any:
        """``respond`` as a native plan gets it."""
        return respond

    def websocket_send(self, send: Any) -> Any:
        """``send`` as the app gets it (websocket)."""
        return send

    def ended(self, exc: BaseException | None) -> None:
        """The request is over (``exc``: what the app raised)."""

    def fell_back(self, native: NativeApp | None) -> None:
        """The request was not served natively (for the fallback report; ``native`` None: the
        native tier is off)."""

    def under(self, native: NativeApp, matched: Matched) -> None:
        """The request goes to a native route under the app's own stack: ``matched`` tells,
        once the call is over, whether the route's plan ran (for the report)."""


class NativeASGI:
    """One native request as an ASGI app, for callers that run the app themselves (the async
    test transports): every response goes through ``send``."""

    __slots__ = ("params", "plan")

    def __init__(self, plan: Plan, params: dict[str, str]) -> None:
        self.plan = plan
        self.params = params

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        prepare_scope(self.plan, scope, self.params)
        await run(NativeCall(self.plan, scope, receive, send, None, None))


class Dispatcher:
    """A listener's handler: serves each request or websocket, one task each."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], logger: logging.Logger) -> None:
        self.app = app
        self.state = state
        self.logger = logger
        self.access_logger = logging.getLogger("uvicorn.access")
        #: Called once the listener has seen ``limit_max_requests`` requests (the server stops).
        self.on_max_requests: Callable[[], None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        #: Set when the app's native routes are mirrored on this listener.
        self.native: NativeApp | None = None
        #: The app's middleware stack last checked for the native router, and why it cannot
        #: take it ("" when it has it).
        self._under: tuple[Any, str] | None = None
        #: Whether :meth:`watch` is this class's own (the test side overrides it): the server
        #: does not call it.
        self.watching = type(self).watch is not Dispatcher.watch

    def log_access(self, client: str, method: str, path: str, http_version: str, status: int) -> None:
        """One line of uvicorn's access log (called by the engine for each response started),
        with uvicorn's message and arguments, so its ``AccessFormatter`` and log configs apply."""
        self.access_logger.info('%s - "%s %s HTTP/%s" %d', client, method, path, http_version, status)

    def concurrency_exceeded(self, _: int) -> None:
        """The engine answered 503 beyond ``limit_concurrency``; uvicorn's warning."""
        self.logger.warning("Exceeded concurrency limit.")

    def invalid_request(self, _: int) -> None:
        """The engine refused a request head (its framing or line ends) with 400; uvicorn's
        warning."""
        self.logger.warning("Invalid HTTP request received.")

    def accept_failed(self, errno: int) -> None:
        """The listener could not accept a connection (out of file descriptors, ...) and
        pauses; told once per run of such errors (asyncio logs them under uvicorn)."""
        self.logger.error("Accepting a connection failed: [Errno %d] %s; retrying", errno, os.strerror(errno))

    def max_requests_reached(self, count: int) -> None:
        """The listener has seen ``limit_max_requests`` requests: stop, as uvicorn does."""
        self.logger.info("Maximum request limit of %d exceeded. Terminating process.", count)
        if self.on_max_requests is not None:
            self.on_max_requests()

    def watch(self, protocol: HTTPProtocol | WebSocketProtocol) -> Watch | None:
        """The test side's hook: a :class:`Watch` for ``protocol``'s request, or None (the
        server: nothing is recorded, the scope is made when first needed)."""
        return None

    # --- the decision ---------------------------------------------------------------------

    def spawn(self, protocol: HTTPProtocol | WebSocketProtocol, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Serves ``protocol`` in a task of ``loop`` (None: the running loop, looked up);
        False when the request went to the pool first (it cannot be answered on the loop in
        this iteration: :func:`drain` need not schedule a flush for it)."""
        watch = self.watch(protocol) if self.watching else None
        if type(protocol) is not HTTPProtocol:
            self.track(self.run_websocket(protocol, watch), None if watch is None else watch.context, loop)
            return True
        found = self.native_plan(protocol, watch)
        context = None if watch is None else watch.context
        if found is not None and found[2]:  # under the app's own stack
            matched = Matched(found[0], found[1], protocol)
            if watch is not None and self.native is not None:
                watch.under(self.native, matched)
            if watch is not None and watch.handoff:
                if not watch.hand_off(protocol, UnderStack(self.app, matched)):
                    protocol.finish()
                return True
            self.track(self.run_http(protocol, watch, matched), context, loop)
            return True
        if watch is not None and watch.handoff:
            if not watch.hand_off(protocol, None if found is None else NativeASGI(found[0], found[1])):
                protocol.finish()
            return True
        if found is None:
            self.track(self.run_http(protocol, watch), context, loop)
            return True
        plan, params, _ = found
        call = self.native_call(protocol, plan, params, watch)
        pooled = self.offloads(plan)
        if pooled is not None:
            self.offload(protocol, call, pooled, watch)
            return False
        flat = direct_flat(plan)
        if flat is None:
            self.track(self.run_call(protocol, call, watch), context, loop)
            return True
        if flat.lead is not None:
            self.solve_lead(protocol, call, flat, flat.lead, watch, loop)
            return False
        self.start_flat(protocol, call, flat, watch, context, loop=loop)
        return True

    def native_plan(
        self, protocol: HTTPProtocol, watch: Watch | None = None
    ) -> tuple[Plan, dict[str, str], bool] | None:
        """The plan serving ``protocol`` natively, its raw path parameters, and whether it
        runs under the app's own middleware stack (the native router there counts it as
        native when it runs it; a plan run directly is counted now), or None: the app's stack
        serves it. A request handed off to a caller that runs the app itself is not served
        natively when the engine runs the app's middleware: the caller runs the app's own."""
        native = self.native
        if native is None:
            if watch is not None:
                watch.fell_back(None)
            return None
        if watch is not None and not watch.native:
            protocol.take_match()  # the app sees another path than the mirror matched
            found = None
        else:
            found = native.find(protocol)
            if found is not None and watch is not None and watch.handoff and native.compiled.stack is not None:
                native.declined = HANDOFF_WITH_NATIVE_MIDDLEWARE
                found = None
            if found is not None and found[2]:
                reason = self.install_under(native)
                if reason:
                    native.declined = f"native route, but the app's stack cannot take the native router: {reason}"
                    found = None
        if found is not None:
            if not found[2]:
                protocol.served_natively()
        elif watch is not None:
            watch.fell_back(native)
        return found

    def install_under(self, native: NativeApp) -> str:
        """Makes sure the app's middleware stack has the native router at its bottom ("" when
        it has, else why it cannot: see :func:`fastrapi_compat.execute.under.install`); the
        outcome is kept for the stack it was found for."""
        app = native.app
        stack = getattr(app, "middleware_stack", None)
        known = self._under
        if known is not None and known[0] is stack and stack is not None:
            return known[1]
        reason = install(app, native.compiled.inner_layers)
        self._under = (app.middleware_stack, reason)
        return reason

    @staticmethod
    def offloads(plan: Plan) -> FlatPlan | None:
        """The flat plan of ``plan`` when it runs on the pool (see :mod:`fastrapi_compat.serve.pool`)."""
        flat = plan.flat
        return flat if flat is not None and flat.offload and not flat.overridden() else None

    # --- native plans -----------------------------------------------------------------------

    def native_call(
        self, protocol: HTTPProtocol, plan: Plan, params: dict[str, str], watch: Watch | None = None
    ) -> NativeCall:
        """The call serving ``protocol`` with ``plan``; its scope is made when first needed
        (at once when the engine runs the app's ``SessionMiddleware``, since making the scope
        opens the session, and when a watch made it already)."""
        if watch is None:
            call = NativeCall(
                plan, None, protocol.receive, protocol.send, protocol.respond, protocol,
                plan.path_params(params) if params else {}, self.make_scope,
            )  # fmt: skip
            if plan.runtime.native_sessions:
                call.scope  # noqa: B018 - made for its effect
            return call
        scope = watch.scope
        prepare_scope(plan, scope, params)
        send, respond = watch.recording(protocol.send), watch.responding(protocol.respond)
        return NativeCall(plan, scope, protocol.receive, send, respond, protocol)

    def make_scope(self, call: NativeCall) -> dict[str, Any]:
        assert call.protocol is not None
        scope = call.protocol.scope()
        scope["state"] = self.state.copy()
        prepare_scope(call.plan, scope, None, call.path_params)
        return scope

    def offload(self, protocol: HTTPProtocol, call: NativeCall, flat: FlatPlan, watch: Watch | None) -> None:
        """Runs ``call`` with ``flat`` (what :meth:`offloads` gave) on the pool, in a copy of
        the request's context: answered there, or resumed on the loop (:meth:`run_call` with
        the :class:`Resume`) to do with the app's handlers what the plan left."""
        loop = asyncio.get_running_loop()
        outer = None if watch is None else watch.context
        context = contextvars.copy_context() if outer is None else outer.copy()
        pool_for(loop).submit(self._offloaded, loop, context, protocol, call, flat, watch)

    def _offloaded(
        self,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context,
        protocol: HTTPProtocol,
        call: NativeCall,
        flat: FlatPlan,
        watch: Watch | None,
    ) -> None:
        """:meth:`offload`'s job, on a pool thread."""
        resume = context.run(run_sync, call, flat, context)
        if resume is None:
            self.ended(protocol, watch, None)
        else:
            loop.call_soon_threadsafe(self._resume, context, protocol, call, watch, resume)

    def solve_lead(
        self,
        protocol: HTTPProtocol,
        call: NativeCall,
        flat: FlatPlan,
        group: tuple[Node, ...],
        watch: Watch | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """:meth:`run_flat` for a plan without body whose first dependencies are a run of ``def``
        functions: they are solved on the pool first (the one hop to a thread FastAPI makes for
        them, see :func:`~fastrapi_compat.execute.params.solve_lead`), then the request's task
        starts with them solved, or with what they raised (``loop``: the running loop, None:
        looked up)."""
        if loop is None:
            loop = asyncio.get_running_loop()
        outer = None if watch is None else watch.context
        context = contextvars.copy_context() if outer is None else outer
        pool_for(loop).submit(self._leading, loop, context, protocol, call, flat, group, watch)

    def _leading(
        self,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context,
        protocol: HTTPProtocol,
        call: NativeCall,
        flat: FlatPlan,
        group: tuple[Node, ...],
        watch: Watch | None,
    ) -> None:
        """:meth:`solve_lead`'s job, on a pool thread: the request goes on in ``context`` on the
        loop (:meth:`_led` is called in it, so it need not enter it again)."""
        cache: dict[Any, Any] = {}
        try:
            solved = solve_lead(group, call, cache, context)
        except BaseException as exc:  # noqa: BLE001 - raised in the request's task
            loop.call_soon_threadsafe(
                self._led, loop, protocol, call, flat, watch, None, thread_error(exc), context=context
            )
            return
        loop.call_soon_threadsafe(self._led, loop, protocol, call, flat, watch, (cache, solved), None, context=context)

    def _led(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: HTTPProtocol,
        call: NativeCall,
        flat: FlatPlan,
        watch: Watch | None,
        lead: Lead | None,
        exc: BaseException | None,
    ) -> None:
        """On the loop, in the request's context (the task copies it, as :meth:`start` would)."""
        if exc is not None:
            self.track(self.run_call(protocol, call, watch, Resume(exc=exc)), None, loop)
        else:
            self.start_flat(protocol, call, flat, watch, None, lead, loop)

    def _resume(
        self,
        context: contextvars.Context,
        protocol: HTTPProtocol,
        call: NativeCall,
        watch: Watch | None,
        resume: Resume,
    ) -> None:
        self.track(self.run_call(protocol, call, watch, resume), context)

    def start_flat(
        self,
        protocol: HTTPProtocol,
        call: NativeCall,
        flat: FlatPlan,
        watch: Watch | None,
        context: contextvars.Context | None,
        lead: Lead | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Starts :meth:`run_flat`'s task (which takes itself out of ``tasks`` as it ends: no
        done callback to schedule) on ``loop`` (None: the running loop, looked up)."""
        if loop is None:
            loop = asyncio.get_running_loop()
        task = self.start(self.run_flat(protocol, call, flat, watch, lead, loop), context, loop)
        if not task.done():
            self.tasks.add(task)

    async def run_flat(
        self,
        protocol: HTTPProtocol,
        call: NativeCall,
        flat: FlatPlan,
        watch: Watch | None,
        lead: Lead | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """:meth:`run_call` for a flat plan that needs nothing around it until something is
        raised: the exception then goes through :func:`run` exactly as if raised there. Its
        task (of ``loop``, the running loop) leaves ``tasks`` as it ends (see :meth:`running`)."""
        try:
            try:
                await answer_flat(call, flat, lead)
                call.request = None
            except BaseException as exc:
                await self.run_call(protocol, call, watch, Resume(exc=exc))
                return
            self.ended(protocol, watch, None)
        finally:
            self.tasks.discard(current_task(loop))

    async def run_call(
        self, protocol: HTTPProtocol, call: NativeCall, watch: Watch | None, resume: Resume | None = None
    ) -> None:
        try:
            await run(call, resume)
        except BaseException as exc:
            self.ended(protocol, watch, exc)
            return
        self.ended(protocol, watch, None)

    # --- the app's own stack ------------------------------------------------------------------

    def scope_for(self, protocol: HTTPProtocol | WebSocketProtocol, watch: Watch | None) -> dict[str, Any]:
        if watch is not None:
            return watch.scope
        scope = protocol.scope()
        scope["state"] = self.state.copy()
        return scope

    async def run_http(self, protocol: HTTPProtocol, watch: Watch | None, matched: Matched | None = None) -> None:
        """The app's own stack serves the request (``matched``: the native route the native
        router at the bottom of that stack runs)."""
        scope = self.scope_for(protocol, watch)
        send = protocol.send if watch is None else watch.recording(protocol.send)
        if matched is not None:
            matched.bind(scope)
            MATCH.set(matched)  # this task's own context
        try:
            result = await self.app(scope, protocol.receive, send)
        except BaseException as exc:
            if matched is not None:
                matched.finish()
            self.ended(protocol, watch, exc)
            return
        if matched is not None:
            matched.finish()
        outcome = self.ended(protocol, watch, None)
        if watch is not None and watch.reports:
            return
        if result is not None:
            self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        elif outcome == "not_started":
            self.logger.error("ASGI callable returned without starting response.")
        elif outcome == "not_completed":
            self.logger.error("ASGI callable returned without completing response.")

    async def run_websocket(self, protocol: WebSocketProtocol, watch: Watch | None) -> None:
        scope = self.scope_for(protocol, watch)
        send = protocol.send if watch is None else watch.websocket_send(protocol.send)
        try:
            result = await self.app(scope, protocol.receive, send)
        except OSError as exc:  # the client went away
            protocol.finish()
            if watch is not None:
                watch.ended(None if isinstance(exc, ClientDisconnected) else exc)
            return
        except BaseException as exc:
            self.ended(protocol, watch, exc)
            return
        outcome = self.ended(protocol, watch, None)
        if watch is not None and watch.reports:
            return
        if outcome == "not_started":
            self.logger.error("ASGI callable returned without completing handshake.")
        elif result is not None:
            self.logger.error("ASGI callable should return None, but returned '%s'.", result)

    # --- bookkeeping ----------------------------------------------------------------------------

    def ended(self, protocol: HTTPProtocol | WebSocketProtocol, watch: Watch | None, exc: BaseException | None) -> Any:
        """Finishes ``protocol`` (its outcome: ``not_started``, ``not_completed``,
        ``invalid_request``, ``too_large``, ...), tells the watch, and logs what the app raised
        unless a client reports it."""
        outcome = protocol.finish()
        if exc is not None and outcome in ("complete", "disconnected") and type(protocol) is HTTPProtocol:
            protocol.close_connection()  # raised after its response: uvicorn closes the connection
        if outcome == "invalid_request":  # the client framed the body wrongly: answered 400
            self.logger.warning("Invalid HTTP request received.")
            exc = None  # what the app raised on the http.disconnect it got is not its error
        elif outcome == "too_large":  # the body grew past --limit-request-body: answered 413
            exc = None
        if watch is not None:
            watch.ended(exc)
            if watch.reports:
                return outcome
        if exc is not None:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
        return outcome

    def track(
        self,
        coro: Coroutine[Any, Any, None],
        context: contextvars.Context | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Runs ``coro`` as a task of ``loop`` (None: the running loop), in a copy of
        ``context`` (else of the current context), that the server's shutdown waits for
        (``tasks``)."""
        task = self.start(coro, context, loop)
        if not task.done():
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def running(self) -> set[asyncio.Task[None]]:
        """``tasks``, less any that ended without taking themselves out (a :meth:`run_flat`
        task cancelled before its first step never runs its coroutine)."""
        tasks = self.tasks
        tasks.difference_update([task for task in tasks if task.done()])
        return tasks

    def start(
        self,
        coro: Coroutine[Any, Any, None],
        context: contextvars.Context | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> asyncio.Task[None]:
        """``coro`` as a task of ``loop`` (None: the running loop, looked up), in a copy of ``context`` (else of the current
        context). On Python 3.12+, when the loop has no task factory, the task starts eagerly
        (``eager_start``): its first step runs now, as the task's own and in its context, so
        a request answered without waiting is answered before this returns, and its task
        never waits in the loop's queue."""
        if loop is None:
            loop = asyncio.get_running_loop()
        if sys.version_info >= (3, 12) and loop.get_task_factory() is None:
            return asyncio.Task(coro, loop=loop, context=None if context is None else context.copy(), eager_start=True)
        return loop.create_task(coro) if context is None else context.run(loop.create_task, coro)
