"""The loop thread runs in ``SCHED_BATCH`` while the server serves (Linux), and so do the
threads it starts (the engine's pool running a ``def`` endpoint); its previous policy comes back
afterwards; ``--no-sched-batch`` (``Config.sched_batch=False``) leaves it alone, and a policy
someone chose (here ``SCHED_IDLE``) is kept."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastrapi_compat.serve.server import ServerThread, _batch_this_thread
from fastrapi_compat.tools.cli import build_parser
from fastrapi_compat.tools.run_flags import config_from, worker_argv

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH on this platform")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/policy")
    async def policy() -> dict[str, int]:  # runs on the loop thread
        return {"policy": os.sched_getscheduler(0)}

    @app.get("/policy-def")
    def policy_def() -> dict[str, int]:  # runs on a worker thread the loop thread started
        return {"policy": os.sched_getscheduler(0), "loop_thread": threading.main_thread().ident or 0}

    return app


def _served(path: str, **options: Any) -> int:
    with ServerThread(_app(), host="127.0.0.1", port=0, **options) as server:
        return int(httpx.get(f"{server.url}{path}", timeout=10).json()["policy"])


def _in_a_thread(body: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            body()
        except BaseException as error:  # noqa: BLE001 - reported by the test's thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_the_loop_thread_serves_in_sched_batch() -> None:
    assert _served("/policy") == os.SCHED_BATCH


def test_threads_the_loop_thread_starts_inherit_it() -> None:
    assert _served("/policy-def") == os.SCHED_BATCH


def test_no_sched_batch_leaves_the_policy() -> None:
    assert _served("/policy", sched_batch=False) == os.SCHED_OTHER
    assert _served("/policy-def", sched_batch=False) == os.SCHED_OTHER


def test_a_policy_someone_chose_is_kept() -> None:
    seen: list[int] = []

    def body() -> None:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # allowed without privilege
        assert _batch_this_thread() is None
        seen.append(os.sched_getscheduler(0))

    _in_a_thread(body)
    assert seen == [os.SCHED_IDLE]


def test_the_previous_policy_comes_back() -> None:
    seen: list[int] = []

    def body() -> None:
        restore = _batch_this_thread()
        seen.append(os.sched_getscheduler(0))
        assert restore is not None
        restore()
        seen.append(os.sched_getscheduler(0))

    _in_a_thread(body)
    assert seen == [os.SCHED_BATCH, os.SCHED_OTHER]


def test_the_flag_reaches_the_config_and_the_workers() -> None:
    parser = build_parser()
    on = parser.parse_args(["run", "m:app"])
    off = parser.parse_args(["run", "m:app", "--no-sched-batch"])
    assert config_from(on).sched_batch is True
    assert config_from(off).sched_batch is False
    assert "--no-sched-batch" in worker_argv(off)
    assert "--sched-batch" in worker_argv(on)
