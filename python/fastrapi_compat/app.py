"""The one-import way in: a plain subclass of :class:`fastapi.FastAPI`.

Nothing in fastapi or starlette is patched. The subclass only adds conveniences
(:meth:`FastAPI.run`); the engine serves any ASGI app, this class or not.
"""

from __future__ import annotations

from typing import Any

import fastapi


class FastAPI(fastapi.FastAPI):
    """:class:`fastapi.FastAPI`, plus :meth:`run` to serve it with the Rust engine."""

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve this app with the engine until interrupted (see :func:`fastrapi_compat.run`)."""
        from fastrapi_compat.serve.server import run

        run(self, host=host, port=port, **options)
