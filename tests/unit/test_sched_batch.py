"""The loop thread runs in ``SCHED_BATCH`` while the server serves (Linux), its previous
policy back afterwards; ``FASTRAPI_SCHED_BATCH=0`` leaves it alone."""

from __future__ import annotations

import os
import threading

import httpx
import pytest
from fastapi import FastAPI

from fastrapi_compat.serve.server import ServerThread, _batch_this_thread

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH on this platform")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/policy")
    async def policy() -> dict[str, int]:  # runs on the loop thread
        return {"policy": os.sched_getscheduler(0)}

    return app


def _served_policy() -> int:
    with ServerThread(_app(), host="127.0.0.1", port=0) as server:
        return int(httpx.get(f"{server.url}/policy", timeout=10).json()["policy"])


def test_the_loop_thread_serves_in_sched_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTRAPI_SCHED_BATCH", raising=False)
    assert _served_policy() == os.SCHED_BATCH


def test_fastrapi_sched_batch_0_leaves_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTRAPI_SCHED_BATCH", "0")
    assert _served_policy() == os.SCHED_OTHER


def test_the_previous_policy_comes_back() -> None:
    seen: list[int] = []

    def in_a_thread() -> None:
        restore = _batch_this_thread()
        seen.append(os.sched_getscheduler(0))
        assert restore is not None
        restore()
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(10)
    assert seen == [os.SCHED_BATCH, os.SCHED_OTHER]
