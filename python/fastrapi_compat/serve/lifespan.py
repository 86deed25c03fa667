"""ASGI lifespan as uvicorn runs it (``lifespan="auto"|"on"|"off"``), on the server's loop:
startup before the first request, the ``state`` the app fills copied into each request's
scope, shutdown after the last."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastrapi_compat.errors import StartupError

ASGIApp = Any


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
        self.logger.info("Waiting for application startup.")
        self._receive = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._receive.put({"type": "lifespan.startup"})
        await self._started.wait()
        if self._failure is not None:
            raise StartupError(f"Application startup failed: {self._failure}")
        if not self._unsupported:
            self.logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        if self._receive is None or self._unsupported or self._task is None or self._task.done():
            return
        self.logger.info("Waiting for application shutdown.")
        await self._receive.put({"type": "lifespan.shutdown"})
        await self._stopped.wait()
        if self._failure is not None:
            self.logger.error("Application shutdown failed: %s", self._failure)
        else:
            self.logger.info("Application shutdown complete.")

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
