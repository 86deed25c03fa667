"""The one dispatcher (``fastrapi_compat.serve.dispatch``) decides for the server and for every
test transport alike: a deliberate change in it shows up through ``TestClient``,
``AsyncEngineTransport`` and ``fastrapi-compat run``.

The app reports how it was served: ``/tier`` whether Starlette's router is on the endpoint's
stack (the app's own ASGI stack) or not (a native plan), ``/thread`` the thread a ``def``
endpoint ran on (the engine's pool, or anyio's threads)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import fastrapi_compat.serve.dispatch as dispatch
from fastrapi_compat.testclient import AsyncEngineTransport, TestClient

APP = textwrap.dedent(
    """
    import inspect
    import threading

    from fastrapi_compat import FastAPI

    app = FastAPI()


    @app.get("/tier")
    async def tier():
        frames = inspect.stack()
        routed = any(frame.filename.endswith("starlette/routing.py") for frame in frames)
        return {"tier": "asgi" if routed else "native"}


    @app.get("/thread")
    def thread():
        return {"thread": threading.current_thread().name}
    """
)

# The deliberate changes, as the subprocess applies them too (``CHANGES[name]`` is run there).
CHANGES = {
    "none": "",
    # the decision: no request is served by a native plan
    "no-native": (
        "import fastrapi_compat.serve.dispatch as d\n"
        "def native_plan(self, protocol, watch=None):\n"
        "    protocol.take_match()\n"
        "    return None\n"
        "d.Dispatcher.native_plan = native_plan\n"
    ),
    # the pool decision: no plan runs on the engine's thread pool
    "no-pool": "import fastrapi_compat.serve.dispatch as d\nd.Dispatcher.offloads = staticmethod(lambda plan: None)\n",
}

POOL_THREAD = "fastrapi-compat worker"
ANYIO_THREAD = "AnyIO worker thread"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dispatch_app")
    (directory / "dispatch_probe.py").write_text(APP)
    return directory


@pytest.fixture
def probe_app(app_dir: Path) -> Iterator[object]:
    sys.path.insert(0, str(app_dir))
    try:
        sys.modules.pop("dispatch_probe", None)
        import dispatch_probe  # type: ignore[import-not-found]

        yield dispatch_probe.app
    finally:
        sys.modules.pop("dispatch_probe", None)
        sys.path.remove(str(app_dir))


def apply(change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if change == "no-native":

        def native_plan(self: dispatch.Dispatcher, protocol: object, watch: object = None) -> None:
            protocol.take_match()  # type: ignore[attr-defined]
            return None

        monkeypatch.setattr(dispatch.Dispatcher, "native_plan", native_plan)
    elif change == "no-pool":
        monkeypatch.setattr(dispatch.Dispatcher, "offloads", staticmethod(lambda plan: None))


def through_testclient(app: object) -> tuple[str, str]:
    with TestClient(app) as client:  # type: ignore[arg-type]
        return client.get("/tier").json()["tier"], client.get("/thread").json()["thread"]


def through_async_transport(app: object) -> tuple[str, str]:
    import asyncio

    async def main() -> tuple[str, str]:
        transport = AsyncEngineTransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            tier = (await client.get("/tier")).json()["tier"]
            thread = (await client.get("/thread")).json()["thread"]
        return tier, thread

    return asyncio.run(main())


def through_run(app_dir: Path, change: str) -> tuple[str, str]:
    """``fastrapi-compat run`` (its ``main``, in a process of its own) with ``change`` applied."""
    code = CHANGES[change] + "import sys\nfrom fastrapi_compat.tools.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {**os.environ, "FASTRAPI_TIER": "auto"}
    env.pop("PYTHONSAFEPATH", None)
    args = ["run", "dispatch_probe:app", "--app-dir", str(app_dir), "--port", "0", "--log-level", "info"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:  # ends when the process does: no wait without bound
            found = re.search(r"running on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None, "the server did not start"
        with httpx.Client(base_url=url, timeout=10) as client:
            return client.get("/tier").json()["tier"], client.get("/thread").json()["thread"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(autouse=True)
def _auto_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTRAPI_TIER", "auto")


@pytest.mark.parametrize(
    ("change", "tier", "pool"),
    [("none", "native", True), ("no-native", "asgi", False), ("no-pool", "native", False)],
)
def test_testclient_takes_the_dispatchers_decisions(
    probe_app: object, monkeypatch: pytest.MonkeyPatch, change: str, tier: str, pool: bool
) -> None:
    apply(change, monkeypatch)
    served, thread = through_testclient(probe_app)
    assert served == tier
    assert thread.startswith(POOL_THREAD if pool else ANYIO_THREAD), thread


@pytest.mark.parametrize(("change", "tier"), [("none", "native"), ("no-native", "asgi")])
def test_async_transport_takes_the_dispatchers_decisions(
    probe_app: object, monkeypatch: pytest.MonkeyPatch, change: str, tier: str
) -> None:
    apply(change, monkeypatch)
    served, thread = through_async_transport(probe_app)
    assert served == tier
    # The app runs in the caller's task (as under ASGITransport): never on the engine's pool.
    assert thread.startswith(ANYIO_THREAD), thread


@pytest.mark.parametrize(
    ("change", "tier", "pool"),
    [("none", "native", True), ("no-native", "asgi", False), ("no-pool", "native", False)],
)
def test_run_takes_the_dispatchers_decisions(app_dir: Path, change: str, tier: str, pool: bool) -> None:
    served, thread = through_run(app_dir, change)
    assert served == tier
    assert thread.startswith(POOL_THREAD if pool else ANYIO_THREAD), thread


def test_running_leaves_out_tasks_that_ended_without_taking_themselves_out() -> None:
    """A flat plan's task takes itself out of ``tasks`` from its coroutine; one cancelled
    before its first step never runs it: the shutdown, which waits for ``running()``, must not
    wait for that one."""
    import asyncio
    import logging

    async def main() -> None:
        dispatcher = dispatch.Dispatcher(None, {}, logging.getLogger("test"))
        loop = asyncio.get_running_loop()
        never_started = loop.create_task(asyncio.sleep(0))
        never_started.cancel()
        waiting = loop.create_task(asyncio.sleep(30))
        dispatcher.tasks.update((never_started, waiting))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert never_started.cancelled()
        assert dispatcher.running() == {waiting}
        assert dispatcher.tasks == {waiting}
        waiting.cancel()

    asyncio.run(main())
