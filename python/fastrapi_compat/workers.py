"""``gunicorn -k fastrapi_compat.workers.GunicornWorker``: the engine as a gunicorn worker.

gunicorn (the arbiter) binds the sockets, forks the workers, watches their heartbeats and
recycles them; each worker serves the app with the engine on the listening socket gunicorn gives
it (a duplicate of its descriptor, which the engine takes over). What applies from gunicorn's
settings:

- ``--max-requests`` and ``--max-requests-jitter`` (gunicorn draws the jitter): after that many
  requests the worker stops gracefully and gunicorn starts another;
- ``--timeout``: the worker's event loop tells the arbiter it is alive (``notify()``) several
  times per timeout, so a loop blocked longer than that gets the worker killed and replaced;
- ``--graceful-timeout``: on SIGTERM, requests in flight get that long to finish (the engine's
  graceful shutdown), websockets are closed 1012, the lifespan shutdown runs;
- SIGINT/SIGQUIT: the ``worker_int`` hook, then a stop without waiting (gunicorn's quick
  shutdown); SIGABRT (a timeout): the ``worker_abort`` hook and exit; SIGUSR1: log files reopened;
- ``--keep-alive`` (0: the engine's 5 s, as the engine always keeps connections alive),
  ``--backlog``, ``--threads`` (the engine's tokio I/O threads), ``--forwarded-allow-ips``
  (the ``X-Forwarded-*`` headers believed), the ``post_worker_init``, ``worker_exit`` and other
  process hooks (gunicorn calls them), and its error and access logs (the ``uvicorn.error`` and
  ``uvicorn.access`` loggers write to their handlers, as uvicorn's worker does).

Not applicable: the WSGI request hooks (``pre_request``/``post_request``), gunicorn's request
line and header limits (the engine's own apply), and its TLS settings: a worker refuses
``--certfile`` with a one-line error, and serves one ``--bind`` address.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped,unused-ignore]
from gunicorn.workers.base import Worker  # type: ignore[import-untyped,unused-ignore]

from fastrapi_compat.errors import StartupError
from fastrapi_compat.serve.server import Config, Server, new_event_loop

__all__ = ["GunicornWorker"]

#: How often (at most) the worker tells the arbiter it is alive, as a share of ``--timeout``.
HEARTBEATS_PER_TIMEOUT = 4


class GunicornWorker(Worker):  # type: ignore[misc,unused-ignore]
    """A gunicorn worker serving an ASGI app (``gunicorn -k fastrapi_compat.workers.GunicornWorker
    module:app``) with the engine."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server: Server | None = None
        for name, source in (("uvicorn.error", self.log.error_log), ("uvicorn.access", self.log.access_log)):
            logger = logging.getLogger(name)
            logger.handlers = source.handlers
            logger.setLevel(source.level)
            logger.propagate = False

    def init_signals(self) -> None:
        """gunicorn's signals reset; the event loop handles TERM, INT and QUIT (see :meth:`run`)."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGABRT, self.handle_abort)
        signal.siginterrupt(signal.SIGUSR1, False)

    def config(self) -> Config:
        """The engine's config from gunicorn's settings (raises ``StartupError`` for what it
        cannot serve)."""
        cfg = self.cfg
        if cfg.is_ssl:
            raise StartupError("GunicornWorker does not serve TLS: terminate it in front, or run fastrapi-compat")
        if len(self.sockets) != 1:
            raise StartupError(f"GunicornWorker serves one --bind address, got {len(self.sockets)}")
        allowed = cfg.forwarded_allow_ips
        return Config(
            fd=os.dup(self.sockets[0].fileno()),
            graceful_timeout=float(cfg.graceful_timeout),
            timeout_keep_alive=float(cfg.keepalive) if cfg.keepalive > 0 else 5.0,
            backlog=int(cfg.backlog),
            threads=max(1, int(cfg.threads)),
            limit_max_requests=self.max_requests if cfg.max_requests > 0 else None,
            forwarded_allow_ips=allowed if isinstance(allowed, str) else ",".join(allowed),
            access_log=bool(cfg.accesslog),
        )

    def run(self) -> None:
        """Serves until told to stop; a worker that cannot start exits with gunicorn's boot
        error code, which stops the arbiter instead of starting it again and again."""
        try:
            server = Server(self.wsgi, self.config())
        except StartupError as exc:
            self.log.error("Error: %s", exc)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        self._server = server
        loop = new_event_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, server.request_shutdown)
            for sig in (signal.SIGINT, signal.SIGQUIT):
                loop.add_signal_handler(sig, self._quit)
            heartbeat = loop.create_task(self._heartbeat(server))
            try:
                loop.run_until_complete(server.serve())
            except StartupError as exc:
                self.log.error("Error: %s", exc)
                sys.exit(Arbiter.WORKER_BOOT_ERROR)
            finally:
                heartbeat.cancel()
                loop.run_until_complete(asyncio.gather(heartbeat, return_exceptions=True))
        finally:
            loop.close()

    def _quit(self) -> None:
        """SIGINT/SIGQUIT: gunicorn's quick shutdown."""
        self.alive = False
        self.cfg.worker_int(self)
        if self._server is not None:
            self._server.request_shutdown(force=True)

    async def _heartbeat(self, server: Server) -> None:
        """Tells the arbiter the loop is alive; stops the server if the arbiter went away."""
        interval = max(0.05, min(1.0, float(self.timeout) / HEARTBEATS_PER_TIMEOUT))
        while True:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                server.request_shutdown()
                return
            await asyncio.sleep(interval)
