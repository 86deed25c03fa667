"""An app as the native tier sees it: its compiled routes, kept in step with the live app.

A :class:`NativeApp` compiles the app once, gives the engine the route mirror, and for each
request the mirror sent to a native route says whether that plan may run: the app's route table
has not changed since it was compiled (checked with version tokens, never by walking the routes),
the route still has the handler the plan was made from, and whether the plan runs directly or
under the app's own middleware stack (:mod:`fastrapi_compat.execute.under`): under it when the
app has middleware in Python, patches outside the router, or FastAPI's own telemetry is
active. When the table changed it compiles again and hands the engine the new mirror; the
request in hand is then served by the ASGI tier, which is right by construction.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from fastrapi_compat._native import (
    MISS_METHOD_NOT_ALLOWED,
    MISS_NOT_FOUND,
    MISS_REDIRECT,
    HTTPProtocol,
    RouteMirror,
)
from fastrapi_compat.plan import internals
from fastrapi_compat.plan.compiler import Compiled, StackFit, compile_app
from fastrapi_compat.plan.plans import Plan

_logger = logging.getLogger("fastrapi_compat.native")

#: Called with the new mirror (or None) whenever the app is compiled again.
MirrorSink = Callable[[RouteMirror | None], None]


class NativeApp:
    def __init__(self, app: Any, fit: StackFit | None = None) -> None:
        self.app = app
        self.fit = fit  # see compile_app
        self.declined = ""  # why the last request with a native match was not served natively
        self._lock = threading.Lock()
        self._sinks: list[MirrorSink] = []
        self.compiled: Compiled
        self.mirror: RouteMirror | None
        self._token: Any
        self._compile()

    def _compile(self) -> None:
        self._token = self._current_token()
        self.compiled = compile_app(self.app, self.fit)
        self.mirror = None
        compiled = self.compiled
        if compiled.plans or compiled.misses is not None:
            try:
                self.mirror = RouteMirror(
                    compiled.mirror,
                    middleware=compiled.stack,
                    misses=compiled.misses is not None,
                    redirect_slashes=compiled.redirect_slashes,
                    templates=compiled.templates,
                    websockets=compiled.websockets,
                )
            except ValueError as exc:  # a pattern Rust's regex cannot take: all ASGI
                _logger.info("route mirror unavailable, serving through the ASGI tier: %s", exc)
        self._plans = self.compiled.plans
        self._misses = self.compiled.misses
        runtime = self._plans[0].runtime if self._plans else self._misses.not_found.runtime if self._misses else None
        self._telemetry = runtime.telemetry_enabled if runtime is not None else None

    def _current_token(self) -> Any:
        app = self.app
        router = getattr(app, "router", None)
        routers = [] if router is None else [router, *internals.included_routers(internals.top_level_routes(app))]
        self._snapshots = [internals.routes_snapshot(router) for router in routers]
        self._middleware = getattr(app, "user_middleware", None)
        self._middleware_count = len(self._middleware or ())
        return None

    def _is_fresh(self) -> bool:
        for router, routes, length, version in self._snapshots:  # each router's routes unchanged
            current = router.routes
            if current is not routes or len(current) != length or getattr(router, "_routes_version", None) != version:
                return False
        middleware = getattr(self.app, "user_middleware", None)
        return middleware is self._middleware and len(middleware or ()) == self._middleware_count

    def attach(self, sink: MirrorSink) -> None:
        """Gives ``sink`` the current mirror now and every new one later."""
        with self._lock:
            self._sinks.append(sink)
            sink(self.mirror)

    def detach(self, sink: MirrorSink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def refresh(self) -> None:
        """Compiles the app again and hands the new mirror to the engine."""
        with self._lock:
            self._compile()
            for sink in self._sinks:
                sink(self.mirror)

    def _miss(self, plan_id: int) -> Plan | None:
        """The plan of a miss the mirror answered (see ``native/router.rs``'s ``encode``)."""
        misses = self._misses
        if misses is None:
            return None
        if plan_id == MISS_NOT_FOUND:
            return misses.not_found
        if plan_id == MISS_REDIRECT:
            return misses.redirect
        if plan_id & MISS_METHOD_NOT_ALLOWED:
            return misses.method_not_allowed(plan_id & ~MISS_METHOD_NOT_ALLOWED)
        return None

    def fallback_reason(self, method: str, route_path: str) -> str:
        """Why a request was served by the ASGI tier (for reports; matches in Python)."""
        compiled = self.compiled
        if compiled.app_reason:
            return compiled.app_reason
        for (pattern, _, methods, _, _), reason in zip(compiled.mirror, compiled.mirror_reasons):
            if methods is not None and method not in methods:
                continue
            if re.match(pattern, route_path):
                return reason or self.declined or "native route, served by the ASGI tier"
        why = compiled.misses_reason or self.declined
        return "no route matched (404, 405 or a redirect, answered by the app)" + (f": {why}" if why else "")

    def find(self, protocol: HTTPProtocol) -> tuple[Plan, dict[str, str], bool] | None:
        """The plan serving ``protocol``'s request, with its raw path parameters and whether
        it runs under the app's own stack, or None: the ASGI tier serves it (``declined`` then
        says why, when the mirror had found a native route). If the app changed since the
        mirror was built, the app is compiled again and the request matched against the new
        mirror."""
        self.declined = ""
        match = protocol.take_match()
        if not self._is_fresh():
            self.refresh()
            mirror = self.mirror
            match = protocol.rematch(mirror) if mirror is not None else None
        if match is None:
            return None
        plans = self._plans
        plan_id, params = match
        if plan_id < len(plans):
            plan = plans[plan_id]
        else:
            found = self._miss(plan_id)
            if found is None:
                return None
            plan = found
        if getattr(plan.route_like, "app", None) is not plan.route_app:  # internals.route_app
            self.refresh()  # the route's handler was replaced (e.g. its dependant rewritten)
            self.declined = "the route's handler was replaced while the app ran"
            return None
        under = bool(self.compiled.under)
        if not under:
            telemetry = self._telemetry
            if telemetry is not None and telemetry():
                if self.compiled.stack is not None:  # the engine ran the app's middleware in Rust
                    self.declined = "FastAPI's native telemetry is active (an OpenTelemetry provider is set)"
                    return None
                under = True
        return plan, params, under
