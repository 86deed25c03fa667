"""``pytest --fastrapi-engine``: a small inner suite run with and without the flag (pytester)."""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest
import starlette.testclient

import fastrapi_compat
from fastrapi_compat.testing import pytest_plugin

pytest_plugins = ["pytester"]

PLUGIN = "fastrapi_compat.testing.pytest_plugin"
ROOT = Path(__file__).resolve().parents[2]

INNER_APP = """
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, WebSocket


def get_user() -> str:
    return "real"


@asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello"}


app = FastAPI(lifespan=lifespan)


@app.get("/hello")
async def hello(request: Request, user: str = Depends(get_user)):
    return {"greeting": request.state.greeting, "user": user, "client": request.client.host}


@app.get("/plain")
async def plain(request: Request):
    return {"client": request.client.host}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("hi " + await websocket.receive_text())
    await websocket.close()


@asynccontextmanager
async def failing(app):
    raise RuntimeError("no database")
    yield


failing_app = FastAPI(lifespan=failing)
"""

# Imported by pytest before the session is configured: the plugin must already have swapped the name.
INNER_CONFTEST = """
import httpx
import pytest
from fastapi.testclient import TestClient
from httpx import ASGITransport

from inner_app import app


def async_client():
    return httpx.AsyncClient(transport=ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def client():
    with TestClient(app) as client:
        yield client
"""

INNER_SUITE = """
import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from inner_app import app, failing_app, get_user


def test_lifespan_state_and_override(client):
    app.dependency_overrides[get_user] = lambda: "override"
    try:
        assert client.get("/hello").json() == {"greeting": "hello", "user": "override", "client": "testclient"}
    finally:
        app.dependency_overrides.clear()
    assert client.get("/hello").json()["user"] == "real"


def test_websocket(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_text("you")
        assert ws.receive_text() == "hi you"


def test_async_client_with_asgi_transport():
    from conftest import async_client

    async def main():
        async with async_client() as c:
            return (await c.get("/plain")).json()

    assert asyncio.run(main()) == {"client": "127.0.0.1"}


def test_lifespan_failure_surfaces():
    with pytest.raises(RuntimeError, match="no database"), TestClient(failing_app):
        pass


def test_not_an_app():
    with pytest.raises(TypeError):
        TestClient(None).get("/")
"""

# 3 http requests and 1 websocket with the flag.
SERVED_LINE = "requests served by the engine: 4 (http 3, websocket 1)"


def _entry_point_installed() -> bool:
    return any(ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11"))


def plugin_args() -> list[str]:
    """``-p`` unless the installed distribution registers the plugin itself (both would clash).
    In process, the plugin's modules were imported by an earlier run: pytest cannot rewrite
    their asserts again, and says so."""
    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return quiet if _entry_point_installed() else [*quiet, "-p", PLUGIN]


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(inner_app=INNER_APP, test_suite=INNER_SUITE)
    pytester.makeconftest(INNER_CONFTEST)
    return pytester


def test_inert_without_the_flag(inner: pytest.Pytester) -> None:
    original_testclient = starlette.testclient.TestClient
    inner.makepyfile(
        test_names="""
        import fastapi.testclient, httpx, starlette.testclient

        def test_names_are_stock(pytestconfig):
            assert fastapi.testclient.TestClient.__module__ == "starlette.testclient"
            assert starlette.testclient.TestClient.__module__ == "starlette.testclient"
            assert httpx.ASGITransport.__name__ == "ASGITransport"
            assert pytestconfig.pluginmanager.get_plugin("fastrapi-engine-session") is None
        """
    )
    result = inner.runpytest(*plugin_args())
    result.assert_outcomes(passed=6)
    assert "fastrapi-compat engine" not in result.stdout.str()
    assert starlette.testclient.TestClient is original_testclient


def test_flag_serves_the_suite_through_the_engine(inner: pytest.Pytester) -> None:
    original = (starlette.testclient.TestClient, httpx.ASGITransport)
    inner.makepyfile(
        test_names="""
        import fastapi.testclient, httpx, starlette.testclient
        from fastrapi_compat.testclient import AsyncEngineTransport, TestClient

        def test_names_are_the_engines():
            assert fastapi.testclient.TestClient is TestClient
            assert starlette.testclient.TestClient is TestClient
            assert httpx.ASGITransport is AsyncEngineTransport
        """
    )
    result = inner.runpytest(*plugin_args(), "--fastrapi-engine")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "*fastrapi-compat engine*",
            "tests run: 6",
            SERVED_LINE,
            "native tier: 3 of 3 HTTP requests (100%)",
            "fallback reasons: none recorded",
        ]
    )
    # The session's swaps are undone when it ends.
    assert (starlette.testclient.TestClient, httpx.ASGITransport) == original


def test_flag_catches_a_difference(pytester: pytest.Pytester) -> None:
    """A test that only holds in process fails through the engine, and so does a test that meets
    a fault injected into the engine's side of the client: the suite really goes through it."""
    pytester.makepyfile(inner_app=INNER_APP)
    pytester.makeconftest(
        """
        import pytest
        from fastrapi_compat.testing import loopback

        @pytest.fixture(autouse=True)
        def engine_forgets_the_client_address(monkeypatch):
            def faulty_claim(self, scope):
                scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"x-fastrapi-testclient"]
                return None

            monkeypatch.setattr(loopback.EngineSite, "_claim", faulty_claim)
        """
    )
    pytester.makepyfile(
        test_difference="""
        import threading

        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from inner_app import app

        def test_client_address():
            assert TestClient(app).get("/plain").json() == {"client": "testclient"}

        def test_runs_in_process():
            where = FastAPI()

            @where.get("/")
            async def root():
                return threading.current_thread().name

            assert not TestClient(where).get("/").json().startswith("fastrapi")
        """
    )
    pytester.runpytest(*plugin_args()).assert_outcomes(passed=2)
    result = pytester.runpytest(*plugin_args(), "--fastrapi-engine")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*'client': '127.0.0.1'*",
            "*fastrapi-testclient*",
            "requests served by the engine: 2 (http 2, websocket 0)",
        ]
    )


def test_summary_names_the_middleware_native_routes_run_under(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_timed="""
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        app = FastAPI()

        @app.middleware("http")
        async def timer(request, call_next):
            response = await call_next(request)
            response.headers["x-timer"] = "1"
            return response

        @app.get("/items/{item_id}")
        async def item(item_id: int):
            return {"item_id": item_id}

        def test_timed():
            client = TestClient(app)
            for i in range(3):
                answer = client.get(f"/items/{i}")
                assert answer.json() == {"item_id": i} and answer.headers["x-timer"] == "1"
        """
    )
    result = pytester.runpytest(*plugin_args(), "--fastrapi-engine")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "native tier: 3 of 3 HTTP requests (100%)",
            "native routes run under the app's own middleware:",
            "       3  under 1 Python middleware: BaseHTTPMiddleware",
        ]
    )


def test_summary_names_the_middleware_run_in_rust_inside_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cors_inside="""
        from fastapi import FastAPI
        from fastapi.middleware.cors import CORSMiddleware
        from fastapi.testclient import TestClient

        app = FastAPI()
        app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"])

        @app.middleware("http")
        async def timer(request, call_next):
            response = await call_next(request)
            response.headers["x-timer"] = response.headers.get("access-control-allow-origin", "-")
            return response

        @app.get("/items/{item_id}")
        async def item(item_id: int):
            return {"item_id": item_id}

        def test_cors_inside():
            client = TestClient(app)
            for i in range(2):
                answer = client.get(f"/items/{i}", headers={"origin": "https://a.example"})
                assert answer.headers["x-timer"] == "https://a.example"
        """
    )
    result = pytester.runpytest(*plugin_args(), "--fastrapi-engine")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "native tier: 2 of 2 HTTP requests (100%)",
            "       2  under 1 Python middleware: BaseHTTPMiddleware; in Rust inside them: CORSMiddleware",
        ]
    )


def test_xdist_workers_add_up(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    source_root = Path(fastrapi_compat.__file__).resolve().parent.parent
    if "site-packages" not in source_root.parts:  # running from the source tree: so must the workers
        monkeypatch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(source_root), os.environ.get("PYTHONPATH")]))
        )
    result = inner.runpytest_subprocess(*plugin_args(), "--fastrapi-engine", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["tests run: 5", SERVED_LINE])


def test_summary_lines() -> None:
    assert pytest_plugin.summary_lines(3, Counter(http=0, websocket=0, native=0), Counter()) == [
        "= fastrapi-compat engine =",
        "tests run: 3",
        "requests served by the engine: 0 (http 0, websocket 0)",
        "no test sent a request through TestClient or httpx.ASGITransport",
    ]
    lines = pytest_plugin.summary_lines(
        9, Counter(http=8, websocket=2, native=6), Counter({"Request parameter": 3, "mount": 1})
    )
    assert lines[2:] == [
        "requests served by the engine: 10 (http 8, websocket 2)",
        "native tier: 6 of 8 HTTP requests (75%)",
        "fallback reasons:",
        "       3  Request parameter",
        "       1  mount",
    ]
    under = Counter({"under 1 Python middleware: Timer": 5})
    assert pytest_plugin.summary_lines(1, Counter(http=5, websocket=0, native=5), Counter(), under)[3:] == [
        "native tier: 5 of 5 HTTP requests (100%)",
        "native routes run under the app's own middleware:",
        "       5  under 1 Python middleware: Timer",
        "fallback reasons: none recorded",
    ]


def test_registered_as_a_pytest11_entry_point() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(
        r'^\[project\.entry-points\.pytest11\]\nfastrapi_compat = "fastrapi_compat\.testing\.pytest_plugin"$',
        pyproject,
        re.MULTILINE,
    )
    if _entry_point_installed():
        (entry_point,) = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.value == PLUGIN]
        assert entry_point.load() is pytest_plugin


OLD_HTTPX_SUITE = """
import asyncio
import warnings

import httpx
from fastapi import FastAPI

app = FastAPI()


@app.get("/where")
async def where():
    return {"httpx": httpx.__version__}


def test_async_client_with_the_app_argument():
    async def main():
        with warnings.catch_warnings():  # httpx 0.27 deprecates app=
            warnings.simplefilter("ignore", DeprecationWarning)
            client = httpx.AsyncClient(app=app, base_url="http://test")
        async with client:
            return (await client.get("/where")).json()

    assert asyncio.run(main()) == {"httpx": "0.27.2"}
"""


@pytest.mark.install
@pytest.mark.timeout(600)
def test_async_client_app_argument_of_old_httpx(tmp_path: Path) -> None:
    """httpx < 0.28 builds its own ASGITransport for ``AsyncClient(app=...)``: with the flag that
    one is the engine's too. httpx 0.27.2 is installed (pip, PyPI, cache on) into a folder that
    shadows this environment's httpx for a child pytest; skipped only if it cannot be installed."""
    import subprocess
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from support.venvs import clean_env

    target = tmp_path / "old-httpx"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), "httpx==0.27.2"],
        capture_output=True, text=True, timeout=300, env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )  # fmt: skip
    if install.returncode != 0:
        pytest.skip(f"httpx 0.27.2 cannot be installed here: {install.stderr.strip().splitlines()[-1:]}")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_old_httpx.py").write_text(OLD_HTTPX_SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--fastrapi-engine", "-q", str(suite)],
        cwd=suite, capture_output=True, text=True, timeout=300, env=clean_env(PYTHONPATH=str(target)),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "requests served by the engine: 1 (http 1, websocket 0)" in result.stdout, result.stdout
    assert "native tier: 1 of 1 HTTP requests (100%)" in result.stdout


REASONS_SUITE = """
import asyncio

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

app = FastAPI()


@app.middleware("http")
async def deny(request, call_next):
    if request.headers.get("x-deny"):
        return PlainTextResponse("denied", status_code=401)  # the route is never reached
    return await call_next(request)


@app.get("/item")
async def item():
    return {"ok": True}


def test_test_client():
    client = TestClient(app)
    assert client.get("/item").json() == {"ok": True}
    assert client.get("/item", headers={"x-deny": "1"}).status_code == 401
    assert client.get("/missing").status_code == 404


def test_asgi_transport():
    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [(await client.get("/item", headers=h)).status_code for h in ({}, {"x-deny": "1"})]

    assert asyncio.run(main()) == [200, 401]
"""

DENIED = "native route, but the app's middleware answered (or changed the request) before it reached the route"


@pytest.mark.parametrize("tier", ["auto", "asgi"])
def test_every_asgi_tier_request_has_a_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tier: str
) -> None:
    """Through TestClient and ASGITransport alike: a native route that a middleware answers
    before it is reached, and everything with FASTRAPI_TIER=asgi (the 404 is native: a miss
    the mirror answers, under the middleware)."""
    pytester.makepyfile(test_reasons=REASONS_SUITE)
    monkeypatch.setenv("FASTRAPI_TIER", tier)
    result = pytester.runpytest(*plugin_args(), "--fastrapi-engine")
    result.assert_outcomes(passed=2)
    output = result.stdout.str()
    assert "none recorded" not in output and "no reason recorded" not in output, output
    if tier == "asgi":
        result.stdout.fnmatch_lines(
            [
                "native tier: 0 of 5 HTTP requests (0%)",
                "fallback reasons:",
                "       5  FASTRAPI_TIER=asgi: the native tier is off",
            ]
        )
    else:
        result.stdout.fnmatch_lines(
            [
                "native tier: 3 of 5 HTTP requests (60%)",
                "native routes run under the app's own middleware:",
                "       3  under 1 Python middleware: BaseHTTPMiddleware",
                "fallback reasons:",
                f"       2  {DENIED}",
            ]
        )


def test_summary_shows_a_fallback_without_reason() -> None:
    lines = pytest_plugin.summary_lines(1, Counter(http=4, websocket=0, native=1), Counter({"mount": 2}))
    assert lines[3:] == [
        "native tier: 1 of 4 HTTP requests (25%)",
        "fallback reasons:",
        "       2  mount",
        "       1  no reason recorded (a fastrapi-compat bug: please report it)",
    ]
