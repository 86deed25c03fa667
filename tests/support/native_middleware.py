"""Which tier served the middleware differential tests (issue #5).

The answers are compared with uvicorn + stock Starlette whatever the tier. Whether apps with
Starlette's standard middleware (CORS, GZip, TrustedHost, HTTPSRedirect, Sessions) are served
natively is checked only once ``MIDDLEWARE_NATIVE`` is ``True``: every ``test_middleware*.py``
module then asserts that its ``test_native_tier`` probes were answered by the native tier
(or, where a probe says ``native=False``, by the ASGI tier).

This constant is the one switch for all those modules.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from support.compare import PairClients, Req

#: Flip to True when the native CORS/GZip/TrustedHost/HTTPSRedirect/Session middleware lands.
MIDDLEWARE_NATIVE = True


def unreproduced(app: object) -> list[str]:
    """Standard middleware of ``app`` whose installed Starlette version the engine does not
    reproduce (run in Python instead: a release outside 0.38.0-1.10.0)."""
    from fastrapi_compat.plan.compiler import compile_app

    return [
        m.name for m in compile_app(app).middleware if not m.native and "not the one the engine reproduces" in m.reason
    ]


def lowercases_hosts() -> bool:
    """Whether the installed ``TrustedHostMiddleware`` lower-cases hosts (Starlette 1.9+; the
    engine reproduces the older ones too, which compare hosts as written)."""
    import starlette.middleware.trustedhost  # noqa: F401

    from fastrapi_compat.plan import middleware

    module = "starlette.middleware.trustedhost"
    release = middleware.VERIFIED_SOURCES[module].get(middleware._source_hash(module))
    return bool(release and release["lowercase"])


def engine_stats(pair: PairClients) -> dict[str, int]:
    """The engine's request counters for this pair: ``{"http", "websocket", "native"}``."""
    engine = pair.pair.engine
    if not hasattr(engine, "stats"):  # FASTRAPI_DIFF_ENGINE_IS_UVICORN=1 (harness check)
        return {"http": 0, "websocket": 0, "native": 0}
    return dict(engine.stats())


def expect_native(
    pair: PairClients,
    req: Req,
    request: pytest.FixtureRequest | None = None,
    native: bool = True,
) -> Counter[str]:
    """Send ``req`` to both servers (compared as usual) and check which tier answered.

    Returns what the engine's counters moved by for this one request. ``request`` (the
    test's) records the pair's counters after the request and the move in the test's
    ``user_properties`` (shown in JUnit XML reports). With ``MIDDLEWARE_NATIVE`` off that
    is all; with it on, the request must have been answered natively (or, with
    ``native=False``, by the ASGI tier: middleware options the engine cannot reproduce).
    """
    before = Counter(engine_stats(pair))
    pair.compare(req)
    after = Counter(engine_stats(pair))
    delta = Counter(after)
    delta.subtract(before)
    if request is not None:
        request.node.user_properties.append(("engine_stats", dict(after)))
        request.node.user_properties.append(("engine_stats_delta", dict(delta)))
    if MIDDLEWARE_NATIVE and native and delta["native"] != 1:
        python_only = unreproduced(pair.pair.engine_app)
        if python_only:  # e.g. Python 3.10's Starlette 1.7: its own code answered (compared above)
            pytest.skip(f"{', '.join(python_only)} of this Starlette runs in Python, not natively")
    if MIDDLEWARE_NATIVE:
        assert delta["http"] == 1, f"{req.label()}: engine counted {dict(delta)}"
        expected, tier = (1, "native") if native else (0, "the ASGI tier")
        assert delta["native"] == expected, (
            f"{req.label()}: expected an answer from {tier} (engine counters now {dict(after)})"
        )
    return delta


def rust_layers(app: Any) -> list[Any]:
    """The runs of Starlette's middleware the engine put in ``app``'s built stack, run in Rust
    inside its Python middleware (:class:`fastrapi_compat.execute.rust_layers.RustLayers`)."""
    from fastrapi_compat.execute.rust_layers import RustLayers

    found, layer, seen = [], app.middleware_stack, set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        if type(layer) is RustLayers:
            found.append(layer)
        layer = getattr(layer, "app", None)
    return found
