"""``from fastrapi_compat.testclient import TestClient``: the public path of the engine-backed
test client and transports (they live in :mod:`fastrapi_compat.testing.testclient`)."""

from fastrapi_compat.testing.testclient import (
    AsyncEngineTransport,
    EngineTransport,
    TestClient,
    WebSocketDenialResponse,
    WebSocketTestSession,
    engine_stats,
    fallback_reasons,
    native_under,
)

__all__ = [
    "AsyncEngineTransport",
    "EngineTransport",
    "TestClient",
    "WebSocketDenialResponse",
    "WebSocketTestSession",
    "engine_stats",
    "fallback_reasons",
    "native_under",
]
