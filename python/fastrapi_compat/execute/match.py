"""The engine's match for a request served under the app's own stack, and the context variable
it travels in (never in the scope the middleware see): set by the dispatcher, read by the native
router at the bottom of the stack (:mod:`fastrapi_compat.execute.under`) and by the layers that
serve native requests their own way (:mod:`fastrapi_compat.execute.call_next`)."""

from __future__ import annotations

import contextvars
from typing import Any

from fastrapi_compat.plan.plans import Plan


class Matched:
    """The engine's match for one request: the plan, its raw path parameters, the request's
    engine object (counted as native when the plan runs), and the method, path and root_path
    the app was called with (:meth:`bind`)."""

    __slots__ = ("method", "params", "path", "plan", "protocol", "root_path", "used")

    def __init__(self, plan: Plan, params: dict[str, str], protocol: Any) -> None:
        self.plan = plan
        self.params = params
        self.protocol = protocol
        self.used = False
        self.method = self.path = self.root_path = ""

    def bind(self, scope: dict[str, Any]) -> None:
        self.method = scope["method"]
        self.path = scope["path"]
        self.root_path = scope.get("root_path", "")

    def claims(self, scope: dict[str, Any]) -> bool:
        """Whether the plan serves ``scope`` (once: a second call gets the router)."""
        if (
            self.used
            or scope["type"] != "http"
            or scope["path"] != self.path
            or scope["method"] != self.method
            or scope.get("root_path", "") != self.root_path
        ):
            return False
        self.used = True
        return True


#: The match of the request being served, set for the app's call.
MATCH: contextvars.ContextVar[Matched | None] = contextvars.ContextVar("fastrapi_compat_match", default=None)
