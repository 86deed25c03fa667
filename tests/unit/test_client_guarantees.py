"""What the engine-backed test clients promise beyond answers: they log nothing of their own into
the user's loggers, an app-side cancellation reaches the caller as under ``httpx.ASGITransport``,
and no call waits on the engine forever."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI, WebSocket

from fastrapi_compat.serve.server import ServerThread
from fastrapi_compat.testclient import AsyncEngineTransport, EngineTransport, TestClient

ASGITransport = httpx.ASGITransport
pytest_plugins = ["pytester"]


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/item")
    async def item() -> dict[str, bool]:
        logging.getLogger("shop").info("item served")
        return {"ok": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    return app


# -- logging ---------------------------------------------------------------------------------


def _ours(records: list[logging.LogRecord]) -> list[str]:
    """Records of the clients' own HTTP and websocket machinery."""
    return [f"{r.name}: {r.getMessage()}" for r in records if r.name.startswith(("httpcore", "websockets"))]


def test_clients_log_nothing_of_their_own(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app()
    with TestClient(app) as client:
        assert client.get("/item").json() == {"ok": True}
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hi"
    with httpx.Client(transport=EngineTransport(app), base_url="http://test") as sync_client:
        assert sync_client.get("/item").json() == {"ok": True}

    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as c:
            assert (await c.get("/item")).json() == {"ok": True}

    asyncio.run(main())
    assert _ours(caplog.records) == []
    # what the app logs is still there, as under ASGITransport
    assert [r.getMessage() for r in caplog.records if r.name == "shop"] == ["item served"] * 3


def test_the_users_own_http_calls_still_log(caplog: pytest.LogCaptureFixture) -> None:
    """Only the loopback calls are quiet: the test's own httpx client logs as usual."""
    caplog.set_level(logging.DEBUG)
    with ServerThread(make_app(), host="127.0.0.1", port=0) as server, httpx.Client() as client:
        assert client.get(server.url + "/item").status_code == 200
    assert any(r.name.startswith("httpcore.") for r in caplog.records)


# -- an app-side cancellation ----------------------------------------------------------------


def cancelling_app() -> FastAPI:
    app = FastAPI()

    @app.get("/raise")
    async def raise_cancelled() -> None:
        raise asyncio.CancelledError

    @app.get("/self")
    async def cancel_self() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    @app.get("/pending")
    async def pending() -> dict[str, int]:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # no await after it: delivered at the caller's next await
        return {"x": 1}

    return app


def what_the_caller_sees(transport: httpx.AsyncBaseTransport, path: str) -> list[str]:
    """Everything the caller observes, in order; each step bounded, so a hang is a failure."""
    seen: list[str] = []

    async def caller() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            try:
                response = await client.get(path)
                seen.append(f"response {response.status_code} {response.text}")
            except BaseException as exc:
                seen.append(f"get raised {type(exc).__name__}")
                raise
            try:
                await asyncio.sleep(0)
                seen.append("next await returned")
            except asyncio.CancelledError:
                seen.append("next await raised CancelledError")
                raise

    async def main() -> None:
        task = asyncio.ensure_future(caller())
        done, _ = await asyncio.wait([task], timeout=20)
        if not done:
            task.cancel()
            seen.append("hung")
        elif task.cancelled():
            seen.append("caller cancelled")

    asyncio.run(main())
    return seen


@pytest.mark.parametrize("path", ["/raise", "/self", "/pending"])
def test_app_side_cancellation_reaches_the_caller_as_under_asgi_transport(path: str) -> None:
    app = cancelling_app()
    stock = what_the_caller_sees(ASGITransport(app=app), path)
    engine = what_the_caller_sees(AsyncEngineTransport(app=app), path)
    assert engine == stock
    assert "hung" not in stock


# -- bounds ----------------------------------------------------------------------------------


@pytest.fixture
def stuck_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine takes requests and never hands them to Python, nor answers: stuck."""
    from fastrapi_compat.testing import loopback

    monkeypatch.setattr(loopback.EngineSite, "spawn", lambda self, protocol: None)
    monkeypatch.setattr(loopback, "_engine_timeout", 1.0, raising=False)


def expect_bounded(call: object, url: str) -> None:
    with pytest.raises(Exception) as info:
        call()  # type: ignore[operator]
    assert type(info.value).__name__ == "EngineTimeout"
    message = str(info.value)
    assert message.startswith(f"GET {url}: no answer from the fastrapi-compat engine within 1 s"), message
    assert "--fastrapi-timeout" in message and "FASTRAPI_TEST_TIMEOUT" in message


@pytest.mark.usefixtures("stuck_engine")
def test_a_stuck_engine_fails_each_client_with_a_clear_error() -> None:
    app = make_app()
    expect_bounded(lambda: TestClient(app).get("/item"), "http://testserver/item")
    with httpx.Client(transport=EngineTransport(app), base_url="http://test") as client:
        expect_bounded(lambda: client.get("/item"), "http://test/item")

    async def asynchronous() -> None:
        async with httpx.AsyncClient(transport=AsyncEngineTransport(app=app), base_url="http://test") as c:
            await c.get("/item")

    expect_bounded(lambda: asyncio.run(asynchronous()), "http://test/item")


def test_bound_from_the_environment_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastrapi_compat.testing import loopback

    monkeypatch.setenv("FASTRAPI_TEST_TIMEOUT", "2.5")
    assert loopback.engine_timeout() == 2.5
    monkeypatch.setenv("FASTRAPI_TEST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"\$FASTRAPI_TEST_TIMEOUT='soon': expected a number of seconds > 0"):
        loopback.engine_timeout()
    monkeypatch.delenv("FASTRAPI_TEST_TIMEOUT")
    assert loopback.engine_timeout() == 60.0


def test_pytest_option_bounds_the_session(pytester: pytest.Pytester) -> None:
    """A stuck engine under ``pytest --fastrapi-engine --fastrapi-timeout 1``: the test fails with
    the error and the session goes on to its summary."""
    pytester.makeconftest(
        """
        import pytest
        from fastrapi_compat.testing import loopback

        @pytest.fixture(autouse=True)
        def stuck(monkeypatch):
            monkeypatch.setattr(loopback.EngineSite, "spawn", lambda self, protocol: None)
        """
    )
    pytester.makepyfile(
        test_stuck="""
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        app = FastAPI()

        @app.get("/item")
        async def item():
            return {}

        def test_stuck():
            TestClient(app).get("/item")

        def test_after():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fastrapi-engine", "--fastrapi-timeout", "1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*EngineTimeout: GET http://testserver/item: no answer from the fastrapi-compat engine within 1 s*"]
    )
    bad = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fastrapi-engine", "--fastrapi-timeout", "x")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--fastrapi-timeout='x': expected a number of seconds > 0*"])
