"""An SDK that patches what the native tier bypasses is honoured: Sentry patches
``Starlette.__call__``, ``request_response`` and ``get_request_handler``; through the engine the
app then runs its own stack, Sentry records what it records under stock FastAPI, and the
compiler names the patches as the reason.

Each case runs in a process of its own: ``sentry_sdk.init`` patches Starlette for good."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.scripts import run_script  # noqa: E402

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import sentry_sdk
    from sentry_sdk.transport import Transport

    events = []

    class Keep(Transport):
        \"\"\"Records what Sentry would send: errors with their transaction and type, and the
        transactions (sentry-sdk 2) or segment spans (sentry-sdk 3) by name.\"\"\"

        def capture_envelope(self, envelope):
            for item in envelope.items:
                payload = item.payload.json or {}
                if item.type == "event":
                    kind = payload["exception"]["values"][-1]["type"]
                    events.append(f"error {payload.get('transaction')} {kind}")
                elif item.type == "transaction":
                    events.append(f"transaction {payload['transaction']}")
                elif item.type == "span":
                    for span in payload.get("items", [payload]):
                        if span.get("is_segment", True):
                            events.append(f"transaction {span['name']}")

    if sys.argv[2] == "sentry":
        sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", traces_sample_rate=1.0, transport=Keep)

    from fastapi import FastAPI
    app = FastAPI()

    @app.get("/ok")
    async def ok():
        return {"ok": True}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom")

    if sys.argv[1] == "engine":
        from fastrapi_compat.testclient import TestClient, engine_stats
    else:
        from starlette.testclient import TestClient
    client = TestClient(app, raise_server_exceptions=False)
    statuses = [client.get("/ok").status_code, client.get("/boom").status_code]
    sentry_sdk.flush()
    from fastrapi_compat.plan.compiler import compile_app
    native = engine_stats()["native"] if sys.argv[1] == "engine" else None
    compiled = compile_app(app)
    flat = [plan.flat is not None for plan in compiled.plans if plan.endpoint in (ok, boom)]
    print(json.dumps({"statuses": statuses, "events": sorted(events), "native": native,
                      "reason": compiled.app_reason, "under": compiled.under, "flat": flat}))
    """
)


def run(side: str, sdk: str) -> dict[str, object]:
    return run_script(SCRIPT, side, sdk)


def test_sentry_sees_on_the_engine_what_it_sees_on_stock_fastapi() -> None:
    stock, engine = run("stock", "sentry"), run("engine", "sentry")
    assert stock["statuses"] == engine["statuses"] == [200, 500]
    assert stock["events"] == ["error /boom RuntimeError", "transaction /boom", "transaction /ok"]
    assert engine["events"] == stock["events"]
    # Both requests native, under the app's own stack (Sentry wraps Starlette.__call__), each
    # route running its own handler (Sentry's, wrapped around FastAPI's by get_request_handler).
    assert engine["native"] == 2
    assert engine["reason"] == ""
    assert engine["under"].startswith("under the app's stack, patched: Starlette.__call__ (sentry_sdk/integrations/")
    assert engine["flat"] == [False, False]  # no flat plan stands in for Sentry's handler


@pytest.mark.parametrize("side", ["engine"])
def test_without_patches_the_routes_stay_native(side: str) -> None:
    result = run(side, "none")
    assert result["statuses"] == [200, 500]
    assert result["reason"] == ""
    assert result["native"] == 2


def test_a_wrapped_starlette_middleware_class_runs_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sentry wraps each middleware class's ``__call__`` for its spans: the engine's Rust CORS
    would bypass the wrapper, so the class runs in Python (the app's stack calls it)."""
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    from fastrapi_compat.plan.compiler import compile_app

    app = FastAPI()
    app.add_middleware(CORSMiddleware, allow_origins=["*"])
    assert [(m.name, m.native) for m in compile_app(app).middleware] == [("CORSMiddleware", True)]
    original = CORSMiddleware.__call__

    async def wrapped(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await original(self, scope, receive, send)

    monkeypatch.setattr(CORSMiddleware, "__call__", wrapped)
    (layer,) = compile_app(app).middleware
    assert not layer.native
    assert layer.reason.startswith("CORSMiddleware.__call__ is wrapped (") and "test_patches.py" in layer.reason
