"""The Python half of the ASGI tier: runs the app for each protocol object the engine hands over.

The engine builds scopes and implements ``receive``/``send`` in Rust; this module only starts
one task per request or websocket, reports what the app left undone as uvicorn does, and runs
the lifespan protocol.
"""

from __future__ import annotations

import asyncio
import contextvars
import http
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from fastrapi_compat._native import Engine, HTTPProtocol, WebSocketProtocol
from fastrapi_compat.errors import StartupError
from fastrapi_compat.executor import (
    FlatPlan,
    NativeCall,
    Plan,
    Resume,
    direct_flat,
    prepare_scope,
    run,
    run_flat,
    run_sync,
)
from fastrapi_compat.threads import pool_for

if TYPE_CHECKING:
    from fastrapi_compat.native import NativeApp

ASGIApp = Any

#: Reason phrases of the status line, as uvicorn writes them (the engine takes this table).
STATUS_PHRASES: dict[int, str] = {status.value: status.phrase for status in http.HTTPStatus}


def drain(engine: Engine) -> None:
    """The loop's reader callback on the engine's wake fd: hands each new protocol object
    to the handler of the listener it arrived on."""
    for protocol in engine.drain():
        protocol.handler.spawn(protocol)


class Dispatcher:
    """A listener's handler: runs the app for each request or websocket, one task each."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], logger: logging.Logger) -> None:
        self.app = app
        self.state = state
        self.logger = logger
        self.tasks: set[asyncio.Task[None]] = set()
        #: Set when the app's native routes are mirrored on this listener.
        self.native: NativeApp | None = None

    def native_plan(self, protocol: HTTPProtocol, handoff: bool = False) -> tuple[Plan, dict[str, str]] | None:
        """The plan serving ``protocol`` natively (the request is then counted as native).
        A request handed off to a caller that runs the app itself (``handoff``) is not served
        natively when the engine runs the app's middleware: the caller runs the app's own."""
        native = self.native
        if native is None:
            return None
        found = native.find(protocol)
        if found is not None and handoff and native.compiled.stack is not None:
            native.declined = "the app's middleware run in Rust, and this client runs the app itself"
            return None
        if found is not None:
            protocol.served_natively()
        return found

    def spawn(self, protocol: HTTPProtocol | WebSocketProtocol) -> None:
        if type(protocol) is HTTPProtocol:
            found = self.native_plan(protocol)
            if found is not None:
                plan, params = found
                call = self.native_call(protocol, plan, params)
                pooled = self.offloads(plan)
                if pooled is not None:
                    self.offload(
                        call,
                        pooled,
                        contextvars.copy_context(),
                        protocol.finish,
                        lambda resume: self.run_call(protocol, call, resume),
                    )
                    return
                flat = direct_flat(plan)
                self.track(self.run_call(protocol, call) if flat is None else self.run_flat(protocol, call, flat))
            else:
                self.track(self.run_http(protocol))
        else:
            self.track(self.run_websocket(protocol))

    def track(self, coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None) -> None:
        """Runs ``coro`` as a task, in a copy of ``context`` (else of the current context),
        that :meth:`wait_tasks` waits for."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro) if context is None else context.run(loop.create_task, coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def offloads(plan: Plan) -> FlatPlan | None:
        """The flat plan of ``plan`` when it runs on the pool (see :mod:`fastrapi_compat.threads`)."""
        flat = plan.flat
        return flat if flat is not None and flat.offload and not flat.overridden() else None

    def offload(
        self,
        call: NativeCall,
        flat: FlatPlan,
        context: contextvars.Context,
        finish: Callable[[], object],
        resumed: Callable[[Resume], Coroutine[Any, Any, None]],
    ) -> None:
        """Runs ``call`` with ``flat`` (what :meth:`offloads` gave) on the pool, in ``context``:
        ``finish`` is called on the pool thread once it is answered; otherwise the loop runs
        the task ``resumed(resume)`` makes, to do with the app's handlers what the plan left."""
        loop = asyncio.get_running_loop()

        def job() -> None:
            resume = context.run(run_sync, call, flat, context)
            if resume is None:
                finish()
            else:
                loop.call_soon_threadsafe(self._resume, context, resumed, resume)

        pool_for(loop).submit(job)

    def _resume(
        self, context: contextvars.Context, resumed: Callable[[Resume], Coroutine[Any, Any, None]], resume: Resume
    ) -> None:
        self.track(resumed(resume), context)

    async def run_http(self, protocol: HTTPProtocol) -> None:
        scope = protocol.scope()
        scope["state"] = self.state.copy()
        try:
            result = await self.app(scope, protocol.receive, protocol.send)
        except BaseException as exc:
            protocol.finish()
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            return
        outcome = protocol.finish()
        if result is not None:
            self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        elif outcome == "not_started":
            self.logger.error("ASGI callable returned without starting response.")
        elif outcome == "not_completed":
            self.logger.error("ASGI callable returned without completing response.")

    def native_call(self, protocol: HTTPProtocol, plan: Plan, params: dict[str, str]) -> NativeCall:
        """The call serving ``protocol`` with ``plan``; its scope is made when first needed
        (at once when the engine runs the app's ``SessionMiddleware``: making the scope opens
        the session)."""
        call = NativeCall(
            plan, None, protocol.receive, protocol.send, protocol.respond, protocol,
            path_params=plan.path_params(params), make_scope=self.make_scope,
        )  # fmt: skip
        if plan.runtime.native_sessions:
            call.scope  # noqa: B018 - made for its effect
        return call

    def make_scope(self, call: NativeCall) -> dict[str, Any]:
        assert call.protocol is not None
        scope = call.protocol.scope()
        scope["state"] = self.state.copy()
        prepare_scope(call.plan, scope, None, call.path_params)
        return scope

    async def run_flat(self, protocol: HTTPProtocol, call: NativeCall, flat: FlatPlan) -> None:
        """:meth:`run_call` for a flat plan that needs nothing around it until something is
        raised: the exception then goes through :func:`run` exactly as if raised there."""
        try:
            await run_flat(call, flat)
        except BaseException as exc:
            await self.run_call(protocol, call, Resume(exc=exc))
            return
        protocol.finish()

    async def run_call(self, protocol: HTTPProtocol, call: NativeCall, resume: Resume | None = None) -> None:
        try:
            await run(call, resume)
        except BaseException as exc:
            protocol.finish()
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            return
        protocol.finish()

    async def run_websocket(self, protocol: WebSocketProtocol) -> None:
        scope = protocol.scope()
        scope["state"] = self.state.copy()
        try:
            result = await self.app(scope, protocol.receive, protocol.send)
        except OSError:
            protocol.finish()  # the client went away (ClientDisconnected)
            return
        except BaseException as exc:
            protocol.finish()
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            return
        if protocol.finish() == "not_started":
            self.logger.error("ASGI callable returned without completing handshake.")
        elif result is not None:
            self.logger.error("ASGI callable should return None, but returned '%s'.", result)

    async def wait_tasks(self, timeout: float) -> None:
        """Waits for running app calls (e.g. background tasks after a response) to end."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)


class Lifespan:
    """ASGI lifespan, as uvicorn's ``lifespan="auto"|"on"|"off"``."""

    def __init__(self, app: ASGIApp, mode: str, logger: logging.Logger) -> None:
        if mode not in ("auto", "on", "off"):
            raise StartupError(f"invalid lifespan mode {mode!r}: expected 'auto', 'on' or 'off'")
        self.app = app
        self.mode = mode
        self.logger = logger
        self.state: dict[str, Any] = {}
        self._receive: asyncio.Queue[dict[str, Any]] | None = None
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self._unsupported = False

    async def startup(self) -> None:
        if self.mode == "off":
            return
        self._receive = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._receive.put({"type": "lifespan.startup"})
        await self._started.wait()
        if self._failure is not None:
            raise StartupError(f"Application startup failed: {self._failure}")

    async def shutdown(self) -> None:
        if self._receive is None or self._unsupported or self._task is None or self._task.done():
            return
        await self._receive.put({"type": "lifespan.shutdown"})
        await self._stopped.wait()
        if self._failure is not None:
            self.logger.error("Application shutdown failed: %s", self._failure)

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive_message, self._send_message)
        except BaseException as exc:
            if self._failure is None:
                if self.mode == "auto" and not self._started.is_set():
                    self._unsupported = True
                    self.logger.info("ASGI 'lifespan' protocol appears unsupported.")
                else:
                    self._failure = _one_line(exc)
                    self.logger.debug("Exception in 'lifespan' protocol", exc_info=exc)
        finally:
            self._started.set()
            self._stopped.set()

    async def _receive_message(self) -> dict[str, Any]:
        assert self._receive is not None
        return await self._receive.get()

    async def _send_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._started.set()
        elif kind == "lifespan.startup.failed":
            self._failure = _last_line(message.get("message", "")) or "lifespan.startup.failed"
            self.logger.debug("lifespan startup failed:\n%s", message.get("message", ""))
            self._started.set()
        elif kind == "lifespan.shutdown.complete":
            self._stopped.set()
        elif kind == "lifespan.shutdown.failed":
            self._failure = _last_line(message.get("message", "")) or "lifespan.shutdown.failed"
            self._stopped.set()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1]}" if text else type(exc).__name__


def _last_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
