"""Python middleware that are not plain classes with an ``app`` attribute (a factory function,
a factory making two layers, a class keeping its app elsewhere): each app answers as under
uvicorn + stock FastAPI, and what the engine made of its built stack is what ``explain`` says
(:func:`fastrapi_compat.execute.under.fit`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from apps import stack_shapes
from support.compare import PairClients, Req
from support.native_middleware import rust_layers

from fastrapi_compat.execute.under import fit
from fastrapi_compat.plan.compiler import compile_app

from .conftest import pair_fixture

TESTS = Path(__file__).resolve().parents[1]
ORIGIN = stack_shapes.ORIGIN

factory = pair_fixture(stack_shapes.create_factory)
two_layer_factory = pair_fixture(stack_shapes.create_two_layer_factory)
hidden_app = pair_fixture(stack_shapes.create_hidden_app)

REQUESTS = [
    Req("GET", "/item", id="no Origin"),
    Req("GET", "/item", headers={"origin": ORIGIN}, id="CORS simple"),
    Req("GET", "/item", headers={"origin": "https://other.example"}, id="CORS other origin"),
    Req(
        "OPTIONS",
        "/item",
        headers={"origin": ORIGIN, "access-control-request-method": "GET"},
        id="CORS preflight",
    ),
    Req("GET", "/missing", headers={"origin": ORIGIN}, id="404 with Origin"),
]


def _explain(target: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "fastrapi_compat", "explain", target, "--app-dir", str(TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=TESTS,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: r.id)
@pytest.mark.parametrize("shape", ["factory", "two_layer_factory", "hidden_app"])
def test_answers_as_uvicorn(shape: str, req: Req, request: pytest.FixtureRequest) -> None:
    pair: PairClients = request.getfixturevalue(shape)
    pair.compare(req)


def test_a_factory_middleware_keeps_cors_in_rust_inside_it(factory: PairClients) -> None:
    factory.compare(Req("GET", "/item", headers={"origin": ORIGIN}))
    app = factory.pair.engine_app
    assert len(rust_layers(app)) == 1, "CORS was left to Starlette's class"
    reports = [(m.name, m.native, m.reason) for m in compile_app(app, fit).middleware]
    assert reports == [
        ("make_tag", False, "runs in Python, around the native routes"),
        ("CORSMiddleware", True, "runs in Rust, inside make_tag"),
    ]
    assert "middleware CORSMiddleware: native (runs in Rust, inside make_tag)" in _explain("apps.stack_shapes:factory")


def test_a_stack_not_laid_out_as_user_middleware_keeps_cors_in_python(two_layer_factory: PairClients) -> None:
    two_layer_factory.compare(Req("GET", "/item", headers={"origin": ORIGIN}))
    app = two_layer_factory.pair.engine_app
    assert rust_layers(app) == []
    compiled = compile_app(app, fit)
    assert all(route.tier == "native" for route in compiled.routes)
    cors = next(m for m in compiled.middleware if m.name == "CORSMiddleware")
    assert not cors.native
    assert "not built as Starlette builds user_middleware" in cors.reason
    out = _explain("apps.stack_shapes:two_layer_factory")
    assert "middleware CORSMiddleware: python (runs in Python: native routes run under 1 Python middleware" in out
    assert "routes native" in out and " 0 of " not in out


def test_a_middleware_hiding_its_app_sends_the_app_to_the_asgi_tier(hidden_app: PairClients) -> None:
    hidden_app.compare(Req("GET", "/item", headers={"origin": ORIGIN}))
    app = hidden_app.pair.engine_app
    compiled = compile_app(app, fit)
    assert "HiddenApp has no .app leading to the router" in compiled.app_reason
    assert {route.tier for route in compiled.routes} == {"asgi"}
    out = _explain("apps.stack_shapes:hidden_app")
    assert "0 of 5 routes native" in out, out
    assert "middleware CORSMiddleware: python (the app is served by the ASGI tier)" in out
    assert "middleware HiddenApp: python (runs in Python)" in out
