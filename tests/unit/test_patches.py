"""An SDK that patches what the native tier bypasses is honoured: Sentry patches
``Starlette.__call__``, ``request_response`` and ``get_request_handler``; through the engine the
app then runs its own stack, Sentry records what it records under stock FastAPI, and the
compiler names the patches as the reason.

Each case runs in a process of its own: ``sentry_sdk.init`` patches Starlette for good."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

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
    print(json.dumps({"statuses": statuses, "events": sorted(events), "native": native,
                      "reason": compile_app(app).app_reason}))
    """
)


def run(side: str, sdk: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, side, sdk],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"FASTRAPI_TIER": "auto", "PATH": "", "HOME": "/tmp"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_sentry_sees_on_the_engine_what_it_sees_on_stock_fastapi() -> None:
    stock, engine = run("stock", "sentry"), run("engine", "sentry")
    assert stock["statuses"] == engine["statuses"] == [200, 500]
    assert stock["events"] == ["error /boom RuntimeError", "transaction /boom", "transaction /ok"]
    assert engine["events"] == stock["events"]
    assert engine["native"] == 0  # the app's own stack served both requests
    reason = engine["reason"]
    assert isinstance(reason, str)
    for patched in ("starlette.routing.request_response", "get_request_handler"):  # inside the router
        assert patched in reason
    assert "Starlette.__call__" not in reason  # outside it: honoured by native routes under the app's stack
    assert "sentry_sdk/integrations/" in reason


@pytest.mark.parametrize("side", ["engine"])
def test_without_patches_the_routes_stay_native(side: str) -> None:
    result = run(side, "none")
    assert result["statuses"] == [200, 500]
    assert result["reason"] == ""
    assert result["native"] == 2
